package leader

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy is a TCP proxy between a coordinator and etcd that a test can cut,
// like a network partition that drops packets: while cut, nothing is
// forwarded either way and nothing is closed, so the client sees silence,
// not an error. Heal closes the connections held during the cut (the client
// dials again) and forwards again.
type proxy struct {
	t        *testing.T
	l        net.Listener
	upstream string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both sides of every connection
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, upstream string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) Endpoint() string { return "http://" + p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if cut {
			p.wg.Add(1)
			go p.drain(c)
			continue
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[u] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c) // client -> etcd
		go p.pipe(c, u) // etcd -> client
	}
}

// pipe copies from src to dst until either fails or the proxy is cut; on a
// cut it stops, leaving both sides open and silent until Heal.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if cut {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if !cut {
		src.Close()
		dst.Close()
	}
}

// drain reads and drops what a client sends during a cut.
func (p *proxy) drain(c net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(io.Discard, c)
}

// Cut stops forwarding: bytes in either direction are dropped and
// connections stay open, so neither side sees an error.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

// Heal closes every connection (the client dials again) and forwards new
// connections again.
func (p *proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) close() {
	p.l.Close()
	p.Heal()
	p.wg.Wait()
}

package etcdtest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy between a client and etcd that a test can cut,
// like a network partition that drops packets: while cut, nothing is
// forwarded either way and nothing is closed, so the client sees silence,
// not an error. Heal closes the connections held during the cut (the client
// dials again) and forwards again.
type Proxy struct {
	t        testing.TB
	l        net.Listener
	upstream string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both sides of every connection
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to upstream
// (host:port) until the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Endpoint is the proxy's client URL, for clients of the etcd behind it.
func (p *Proxy) Endpoint() string { return "http://" + p.l.Addr().String() }

func (p *Proxy) accept() {
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
func (p *Proxy) pipe(dst, src net.Conn) {
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
func (p *Proxy) drain(c net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(io.Discard, c)
}

// Cut stops forwarding: bytes in either direction are dropped and
// connections stay open, so neither side sees an error.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

// Heal closes every connection (the client dials again) and forwards new
// connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) close() {
	p.l.Close()
	p.Heal()
	p.wg.Wait()
}

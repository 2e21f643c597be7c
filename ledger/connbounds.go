package ledger

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/proofs"
)

// Connection bounds.
//
// Before a request is authenticated, what bounds a client is its
// connections: 500 connections each sending a request body a byte at a
// time were held open indefinitely and used up the server's file
// descriptors. The server's own timeouts (http.Server ReadHeaderTimeout
// and IdleTimeout) bound the headers and the wait between requests;
// BodyDeadline bounds the time to send a request body; LimitListener
// bounds the connections open at once, from one IP address and in all.
// None of them is a write timeout: WatchCheckpoints streams and backups
// send for as long as the client reads.

// Defaults of serve's connection bounds.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxConns          = 4096
	DefaultMaxConnsPerIP     = 256
)

// BodyDeadline gives every request with a body d to send all of it: a
// body still unread after d fails to read (the handler sees an error, and
// the connection, or the HTTP/2 stream, is closed). Once the body is read
// to its end the deadline is lifted, so that a response may stream for as
// long as it needs (a WatchCheckpoints stream, whose request is one small
// message). Requests without a body (GET) get none: their headers are
// bounded by the server's ReadHeaderTimeout.
//
// Over HTTP/1.1 the deadline is the connection's read deadline. Over
// HTTP/2 it is a timer that closes the request body: a stream's read
// deadline is a message to the connection's one serve goroutine, which
// every frame of every stream of the connection goes through, and it was
// two messages a request (set, then lift).
func BodyDeadline(next http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			var lift func()
			if r.ProtoMajor == 2 {
				body := r.Body // closing an HTTP/2 body ends a blocked Read
				t := time.AfterFunc(d, func() { body.Close() })
				defer t.Stop()
				lift = func() { t.Stop() }
			} else if rc := http.NewResponseController(w); rc.SetReadDeadline(time.Now().Add(d)) == nil {
				lift = func() { rc.SetReadDeadline(time.Time{}) }
			}
			if lift != nil {
				// A copy of the request: the server looks at the original's
				// body after the handler, to decide to close the connection
				// when it was not read to its end.
				r = r.WithContext(r.Context())
				r.Body = &deadlineBody{ReadCloser: r.Body, lift: lift}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body is read to its end.
type deadlineBody struct {
	io.ReadCloser
	lift func()
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.lift()
	}
	return n, err
}

// LimitListener returns a listener that holds at most total connections
// open at once, and at most perIP from one IP address. A connection
// beyond either bound is closed as soon as it is accepted (rather than
// left waiting in the kernel's queue, where it would hold up the clients
// behind it). IPv6 addresses are counted by /64. The per-address counts are kept only for addresses with
// connections open, so they are at most total.
func LimitListener(ln net.Listener, total, perIP int) net.Listener {
	return &limitListener{Listener: ln, total: total, perIP: perIP, open: make(map[string]int)}
}

type limitListener struct {
	net.Listener
	total, perIP int

	mu    sync.Mutex
	count int
	open  map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.admit(ip) {
			return &limitConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		c.Close()
	}
}

func (l *limitListener) admit(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count >= l.total || l.open[ip] >= l.perIP {
		return false
	}
	l.count++
	l.open[ip]++
	return true
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count--
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// remoteIP is the IP address a connection comes from; for IPv6, its /64
// network (one host usually holds a whole /64).
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a.IP.To4() == nil {
			return a.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// limitConn gives its place back when it is closed (once).
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Defaults of the in-flight request bounds.
const (
	DefaultMaxRequests      = 4096
	DefaultMaxRequestsPerIP = 256
	// DefaultMaxStreamsPerConn bounds the concurrent HTTP/2 streams of one
	// connection (Go's default is 250): with the per-address connection
	// cap it bounds what one address can open, before the request caps.
	DefaultMaxStreamsPerConn = 100
)

// ReasonTooManyRequests refuses a request over the in-flight bounds of its
// address or of the server (ResourceExhausted; retry with back-off).
const ReasonTooManyRequests = proofs.ReasonTooManyRequests

// LimitRequests bounds the requests in flight (being read, handled or
// streamed): perIP from one address (IPv6: its /64), total in all. A
// connection cap alone does not bound them, since an HTTP/2 connection
// multiplexes many streams, each of which may send its body slowly. Over a
// bound the request is refused at once, before its body is read: an RPC
// with ResourceExhausted too_many_requests in its own protocol, anything
// else with 429.
func LimitRequests(next http.Handler, perIP, total int) http.Handler {
	ew := connect.NewErrorWriter()
	var mu sync.Mutex
	open := map[string]int{}
	all := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := budgetKey(r.RemoteAddr)
		mu.Lock()
		ok := all < total && open[peer] < perIP
		if ok {
			all++
			open[peer]++
		}
		mu.Unlock()
		if !ok {
			err := proofs.Errorf(ReasonTooManyRequests, "too many requests in flight from this address (at most %d) or in all (at most %d); retry with back-off", perIP, total)
			w.Header().Set("Retry-After", "1")
			if ew.IsSupported(r) {
				ew.Write(w, r, connectError(err))
			} else {
				http.Error(w, err.Error(), http.StatusTooManyRequests)
			}
			return
		}
		defer func() {
			mu.Lock()
			all--
			if open[peer]--; open[peer] == 0 {
				delete(open, peer)
			}
			mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

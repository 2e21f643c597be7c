package main

import (
	"flag"
	"net"
	"net/http"
	"time"

	"github.com/warrantlog/warrant/ledger"
)

// serveConns are serve's connection and stream bounds (see the README's
// Bounds section, and ledger/connbounds.go and ledger/watch.go).
type serveConns struct {
	readHeaderTimeout, bodyTimeout, idleTimeout time.Duration
	maxConns, maxConnsPerIP                     int
	maxRequests, maxRequestsPerIP               int
	watchStreams, watchStreamsPerPeer           int
}

func (c *serveConns) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", ledger.DefaultReadHeaderTimeout, "longest time a client may take to send a request's headers")
	fs.DurationVar(&c.bodyTimeout, "body-timeout", ledger.DefaultBodyTimeout, "longest time a client may take to send a request body (responses, such as checkpoint streams and backups, are not bounded)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", ledger.DefaultIdleTimeout, "longest time an idle keep-alive connection is held open")
	fs.IntVar(&c.maxConns, "max-conns", ledger.DefaultMaxConns, "most connections open at once; more are closed when accepted")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", ledger.DefaultMaxConnsPerIP, "most connections open at once from one IP address (IPv6: one /64)")
	fs.IntVar(&c.maxRequests, "max-requests", ledger.DefaultMaxRequests, "most requests in flight at once (HTTP/2 multiplexes many on a connection); more are refused too_many_requests")
	fs.IntVar(&c.maxRequestsPerIP, "max-requests-per-ip", ledger.DefaultMaxRequestsPerIP, "most requests in flight at once from one IP address (IPv6: one /64)")
	fs.IntVar(&c.watchStreams, "watch-max-streams", ledger.DefaultMaxWatchStreams, "most WatchCheckpoints streams open at once")
	fs.IntVar(&c.watchStreamsPerPeer, "watch-max-streams-per-peer", ledger.DefaultMaxWatchStreamsPerPeer, "most WatchCheckpoints streams open at once from one IP address (one SPIFFE ID under mutual TLS)")
}

// options checks the bounds and sets the stream bounds in o.
func (c *serveConns) options(o *ledger.Options) error {
	if c.readHeaderTimeout <= 0 || c.bodyTimeout <= 0 || c.idleTimeout <= 0 {
		return usagef("--read-header-timeout, --body-timeout and --idle-timeout must be positive")
	}
	if c.maxConns < 1 || c.maxConnsPerIP < 1 || c.maxRequests < 1 || c.maxRequestsPerIP < 1 || c.watchStreams < 1 || c.watchStreamsPerPeer < 1 {
		return usagef("--max-conns, --max-conns-per-ip, --max-requests, --max-requests-per-ip, --watch-max-streams and --watch-max-streams-per-peer must be at least 1")
	}
	o.MaxWatchStreams, o.MaxWatchStreamsPerPeer = c.watchStreams, c.watchStreamsPerPeer
	return nil
}

// bound applies the timeouts to srv and its handler, and the connection
// caps to ln.
func (c *serveConns) bound(srv *http.Server, ln net.Listener) net.Listener {
	srv.Handler = ledger.LimitRequests(ledger.BodyDeadline(srv.Handler, c.bodyTimeout), c.maxRequestsPerIP, c.maxRequests)
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: ledger.DefaultMaxStreamsPerConn}
	srv.ReadHeaderTimeout = c.readHeaderTimeout
	srv.IdleTimeout = c.idleTimeout
	return ledger.LimitListener(ln, c.maxConns, c.maxConnsPerIP)
}

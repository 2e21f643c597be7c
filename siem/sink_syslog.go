package siem

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

const (
	syslogDialTimeout  = 30 * time.Second
	syslogWriteTimeout = 30 * time.Second
	// syslogProbeWait bounds the liveness probe before each Write on a
	// reused connection (see syslogConnAlive).
	syslogProbeWait = time.Millisecond
)

// SyslogTCP returns a sink sending each record as one syslog message over
// TCP with RFC 5425 / RFC 6587 octet-counting framing ("MSG-LEN SP
// SYSLOG-MSG"), so records may contain any byte, line breaks included.
// With a nil tlsConfig the connection is plain TCP, otherwise TLS (RFC
// 5425); an empty ServerName is taken from addr.
//
// The sink connects on the first Write and again after any error. Before
// writing on an existing connection it probes it for an orderly close or
// reset by the receiver and reconnects if so; a Write that fails on a
// reused connection is retried once on a fresh one. A Write returns nil
// once every frame has been written to the connection; write deadlines
// come from ctx, or 30 s. Syslog has no application-level
// acknowledgement: "handed over" means accepted by the local TCP/TLS
// stack, and a receiver that dies right after can still lose what it had
// not read. Empty records cannot be framed (MSG-LEN is at least 1) and are
// refused (permanent).
func SyslogTCP(addr string, tlsConfig *tls.Config) Sink {
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
	}
	return &syslogSink{addr: addr, tlsConfig: tlsConfig}
}

type syslogSink struct {
	addr      string
	tlsConfig *tls.Config

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

func (s *syslogSink) scheme() string {
	if s.tlsConfig != nil {
		return "syslog+tls"
	}
	return "syslog+tcp"
}

// syslogFrames octet-counts the batch into one buffer.
func syslogFrames(records [][]byte) ([]byte, error) {
	n := 0
	for i, r := range records {
		if len(r) == 0 {
			return nil, Permanent(fmt.Errorf("siem: syslog: record %d of the batch is empty and cannot be framed", i))
		}
		n += len(r) + 12
	}
	buf := make([]byte, 0, n)
	for _, r := range records {
		buf = strconv.AppendInt(buf, int64(len(r)), 10)
		buf = append(buf, ' ')
		buf = append(buf, r...)
	}
	return buf, nil
}

func (s *syslogSink) Write(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	frames, err := syslogFrames(records)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	if len(frames) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		reused := s.conn != nil
		if reused && !syslogConnAlive(s.conn) {
			s.dropConn()
			reused = false
		}
		if s.conn == nil {
			if err := s.dial(ctx); err != nil {
				return err
			}
		}
		err := s.writeAll(ctx, frames)
		if err == nil {
			return nil
		}
		s.dropConn()
		if reused && attempt == 0 && ctx.Err() == nil {
			continue // a stale connection: once more on a fresh one
		}
		return err
	}
}

func (s *syslogSink) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: syslogDialTimeout}
	var (
		c   net.Conn
		err error
	)
	if s.tlsConfig == nil {
		c, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		td := &tls.Dialer{NetDialer: d, Config: s.tlsConfig}
		c, err = td.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("siem: %s %s: connect: %w", s.scheme(), s.addr, err)
	}
	s.conn = c
	return nil
}

func (s *syslogSink) writeAll(ctx context.Context, frames []byte) error {
	c := s.conn
	deadline := time.Now().Add(syslogWriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("siem: %s %s: %w", s.scheme(), s.addr, err)
	}
	// Cancellation interrupts a blocked write.
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	// net.Conn.Write writes everything or returns an error; a tls.Conn
	// splits it into records and writes them all.
	if _, err := c.Write(frames); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("siem: %s %s: write: %w: %w", s.scheme(), s.addr, cerr, err)
		}
		return fmt.Errorf("siem: %s %s: write: %w", s.scheme(), s.addr, err)
	}
	return nil
}

// syslogConnAlive probes a connection the receiver never writes to (a
// syslog receiver sends nothing back): a read that times out means it is
// still open; EOF or an error means the receiver closed or reset it, and
// writing to it would silently lose the first records. Data the receiver
// does send (TLS session tickets, say) is consumed and ignored.
func syslogConnAlive(c net.Conn) bool {
	if err := c.SetReadDeadline(time.Now().Add(syslogProbeWait)); err != nil {
		return false
	}
	var buf [256]byte
	_, err := c.Read(buf[:])
	if err == nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *syslogSink) dropConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (s *syslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

package ledger

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// clientFrom is an HTTP/1.1 client whose connections come from the
// loopback address ip (Linux routes all of 127.0.0.0/8 to lo), so that a
// test can be several peers.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// frozenWatchLog is a served fixture whose clock stands still and whose
// idle refresh is an hour away, so that streams send only when the log
// grows: what they send is then exactly countable.
func frozenWatchLog(t *testing.T, mod func(*Options)) (*fixture, *Metrics, string) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	f := newFixture(t, func(o *Options) {
		o.Metrics = m
		o.Now = func() time.Time { return frozen }
		o.CheckpointRefresh = time.Hour
		if mod != nil {
			mod(o)
		}
	})
	url, _ := serveLoopback(t, NewHandler(f.log))
	return f, m, url
}

// openStream opens a WatchCheckpoints stream from ip and waits for its
// first message (or its refusal).
func openStream(ctx context.Context, t *testing.T, url, ip string, from uint64) (*connect.ServerStreamForClient[warrantv1.WatchCheckpointsResponse], error) {
	t.Helper()
	rpc := warrantv1connect.NewLedgerServiceClient(clientFrom(ip), url)
	s, err := rpc.WatchCheckpoints(ctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{FromSize: from}))
	if err != nil {
		return nil, err
	}
	if !s.Receive() {
		err := s.Err()
		s.Close()
		if err == nil {
			err = errors.New("stream ended without a message")
		}
		return nil, err
	}
	return s, nil
}

func wantTooManyStreams(t *testing.T, err error, what string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || reasonOf(ce) != ReasonTooManyStreams {
		t.Fatalf("%s: %v, want ResourceExhausted %s", what, err, ReasonTooManyStreams)
	}
}

// TestWatchStreamsBounded opens streams over the real API until the
// per-peer and then the total bound refuse them, and checks that a closed
// stream frees its place.
func TestWatchStreamsBounded(t *testing.T) {
	f, _, url := frozenWatchLog(t, func(o *Options) {
		o.MaxWatchStreamsPerPeer = 3
		o.MaxWatchStreams = 5
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	size := f.log.Checkpoint().Size
	var open []*connect.ServerStreamForClient[warrantv1.WatchCheckpointsResponse]
	defer func() {
		for _, s := range open {
			s.Close()
		}
	}()
	for i := range 3 {
		s, err := openStream(ctx, t, url, "127.0.0.1", size)
		if err != nil {
			t.Fatalf("stream %d of peer 127.0.0.1: %v", i+1, err)
		}
		open = append(open, s)
	}
	_, err := openStream(ctx, t, url, "127.0.0.1", size)
	wantTooManyStreams(t, err, "the 4th stream of one peer")
	for i := range 2 {
		s, err := openStream(ctx, t, url, "127.0.0.2", size)
		if err != nil {
			t.Fatalf("stream %d of peer 127.0.0.2: %v", i+1, err)
		}
		open = append(open, s)
	}
	_, err = openStream(ctx, t, url, "127.0.0.3", size)
	wantTooManyStreams(t, err, "the 6th stream in all")
	if n := f.log.watch.open(); n != 5 {
		t.Fatalf("%d streams open, want 5", n)
	}

	// A closed stream frees its place (once the server sees it gone).
	open[0].Close()
	open = open[1:]
	for {
		s, err := openStream(ctx, t, url, "127.0.0.3", size)
		if err == nil {
			open = append(open, s)
			break
		}
		wantTooManyStreams(t, err, "a stream while the closed one is being released")
		if ctx.Err() != nil {
			t.Fatal("the closed stream's place was never freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchStreamsShareWork opens several streams at the same size and
// grows the log: one timestamp is signed per checkpoint for all streams
// (counted by the metric), and one consistency proof computed.
func TestWatchStreamsShareWork(t *testing.T) {
	const streams = 8
	f, m, url := frozenWatchLog(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	size := f.log.Checkpoint().Size
	var open []*connect.ServerStreamForClient[warrantv1.WatchCheckpointsResponse]
	defer func() {
		for _, s := range open {
			s.Close()
		}
	}()
	var first []byte
	for i := range streams {
		s, err := openStream(ctx, t, url, "127.0.0.1", size)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		open = append(open, s)
		ts := s.Msg().GetTimestamp()
		if first == nil {
			first = ts
		} else if !bytes.Equal(ts, first) {
			t.Errorf("stream %d got a timestamp of its own", i)
		}
	}
	if n := counterValue(t, m.timestamps); n != 1 {
		t.Fatalf("%d streams made %.0f timestamp signatures, want 1", streams, n)
	}

	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, "spiffe://example.org/agent/watched", newTestKey(t), proofs.TierDraft, false)); err != nil {
		t.Fatal(err)
	}
	verifier := f.verifier(t)
	var second []byte
	for i, s := range open {
		if !s.Receive() {
			t.Fatalf("stream %d after an append: %v", i, s.Err())
		}
		msg := s.Msg()
		cp, err := proofs.OpenCheckpoint(msg.GetCheckpoint(), verifier)
		if err != nil {
			t.Fatal(err)
		}
		if msg.GetFromSize() != size || cp.Size != size+1 || len(msg.GetConsistencyProof()) == 0 {
			t.Fatalf("stream %d: from %d to %d with %d proof hashes, want %d to %d with a proof", i, msg.GetFromSize(), cp.Size, len(msg.GetConsistencyProof()), size, size+1)
		}
		if second == nil {
			second = msg.GetTimestamp()
		} else if !bytes.Equal(msg.GetTimestamp(), second) {
			t.Errorf("stream %d got a timestamp of its own", i)
		}
	}
	if n := counterValue(t, m.timestamps); n != 2 {
		t.Errorf("%d streams over 2 checkpoints made %.0f timestamp signatures, want 2", streams, n)
	}
	if n := f.log.watch.proved.Load(); n != 1 {
		t.Errorf("%d streams at the same size computed %d consistency proofs, want 1", streams, n)
	}
}

// TestWatchOutlivesBodyDeadline checks that the request body deadline of
// serve (BodyDeadline) does not cut streams: over each protocol a stream
// keeps receiving idle refreshes well past the deadline.
func TestWatchOutlivesBodyDeadline(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.CheckpointRefresh = 100 * time.Millisecond })
	url, h2c := serveLoopback(t, BodyDeadline(NewHandler(f.log), 50*time.Millisecond))
	for _, c := range []struct {
		name  string
		httpc *http.Client
		opts  []connect.ClientOption
	}{
		{"connect-http1", &http.Client{}, nil},
		{"connect-h2c", h2c, nil},
		{"grpc", h2c, []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", &http.Client{}, []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rpc := warrantv1connect.NewLedgerServiceClient(c.httpc, url, c.opts...)
			s, err := rpc.WatchCheckpoints(ctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Each refresh comes a tick (100 ms) after the last, so the
			// tenth comes at least 900 ms after the first: many deadlines.
			for i := range 10 {
				if !s.Receive() {
					t.Fatalf("stream ended after %d messages: %v", i, s.Err())
				}
			}
		})
	}
}

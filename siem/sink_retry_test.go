package siem_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/siem"
)

type sinkTestFlaky struct {
	failures int
	err      error
	calls    int
	closed   bool
}

func (f *sinkTestFlaky) Write(ctx context.Context, records [][]byte) error {
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *sinkTestFlaky) Close() error { f.closed = true; return nil }

func TestWithRetrySinkRecovers(t *testing.T) {
	ctx := sinkTestCtx(t)
	f := &sinkTestFlaky{failures: 3, err: errors.New("transient")}
	s := siem.WithRetry(f, 4, time.Millisecond)
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	if f.calls != 4 {
		t.Fatalf("%d calls, want 4", f.calls)
	}
	if err := s.Close(); err != nil || !f.closed {
		t.Fatal("Close not passed on")
	}
}

func TestWithRetrySinkGivesUp(t *testing.T) {
	ctx := sinkTestCtx(t)
	transient := errors.New("transient")
	f := &sinkTestFlaky{failures: 100, err: transient}
	s := siem.WithRetry(f, 3, time.Millisecond)
	err := s.Write(ctx, sinkTestRecords("x"))
	if !errors.Is(err, transient) || errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("err = %v", err)
	}
	if f.calls != 3 {
		t.Fatalf("%d calls, want 3", f.calls)
	}
}

func TestWithRetrySinkStopsAtPermanent(t *testing.T) {
	ctx := sinkTestCtx(t)
	f := &sinkTestFlaky{failures: 100, err: siem.Permanent(errors.New("rejected"))}
	s := siem.WithRetry(f, 10, time.Millisecond)
	err := s.Write(ctx, sinkTestRecords("x"))
	if !errors.Is(err, siem.ErrPermanent) || f.calls != 1 {
		t.Fatalf("err = %v after %d calls, want permanent after 1", err, f.calls)
	}
}

func TestWithRetrySinkBackoffGrows(t *testing.T) {
	ctx := sinkTestCtx(t)
	f := &sinkTestFlaky{failures: 4, err: errors.New("transient")}
	s := siem.WithRetry(f, 5, 20*time.Millisecond)
	start := time.Now()
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	// Waits of at least 10, 20, 40, 80 ms (half of 20·2^n, by the jitter).
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("four retries took %v", d)
	}
}

func TestWithRetrySinkHonoursRetryAfter(t *testing.T) {
	ctx := sinkTestCtx(t)
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"text":"slow down","code":9}`)
			return
		}
		io.WriteString(w, sinkTestHECOK)
	}))
	defer srv.Close()
	// The receiver's Retry-After: 1 stretches a 1 ms back-off to 1 s.
	s := siem.WithRetry(siem.HEC(srv.URL, sinkTestToken, srv.Client()), 3, time.Millisecond)
	start := time.Now()
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("retried after %v, before the receiver's Retry-After", d)
	}
	if n.Load() != 2 {
		t.Fatalf("%d requests, want 2", n.Load())
	}
}

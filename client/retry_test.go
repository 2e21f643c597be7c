package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// openLimitedLog is openLog with per-agent rate limits.
func openLimitedLog(t testing.TB, rate float64, burst int) *testEnv {
	t.Helper()
	dir := t.TempDir()
	reg := newEd25519(t)
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir: dir, RegistrarKeys: []*proofs.PublicKey{reg.Public()}, Logger: slog.New(slog.DiscardHandler), Badger: smallBadger,
		AgentRate: rate, AgentBurst: burst,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{dir: dir, log: l, registrar: reg, verifier: v, now: time.Now}
}

// TestRetryTurnsRateLimitedIntoSuccess: an agent over a tiny rate limit
// (5/s, burst 1) is refused with rate_limited; the client's default
// retries wait the limit out and the append succeeds, once.
func TestRetryTurnsRateLimitedIntoSuccess(t *testing.T) {
	e := openLimitedLog(t, 5, 1)
	url := e.serve(t)
	ctx := context.Background()
	c := client.New(url, e.verifier) // retries on by default
	k := register(t, e, c)           // the registrar's three bindings: limited too, and retried
	noRetry := client.New(url, e.verifier, client.WithRetry(1, 0))

	first := sign(t, k.alice, e.rootGrant(t, "dlg_1", k.alice, k.bob))
	mustAppend(t, c, first)
	_, err := noRetry.Append(ctx, sign(t, k.alice, e.rootGrant(t, "dlg_2", k.alice, k.bob)))
	wantReason(t, err, ledger.ReasonRateLimited)
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("code %v, want ResourceExhausted", connect.CodeOf(err))
	}
	size := e.log.Checkpoint().Size

	start := time.Now()
	got, err := c.Append(ctx, sign(t, k.alice, e.rootGrant(t, "dlg_3", k.alice, k.bob)))
	if err != nil {
		t.Fatalf("append with retries: %v", err)
	}
	if got.Duplicate || got.Leaf.Delegation.ID != "dlg_3" || e.log.Checkpoint().Size != size+1 {
		t.Fatalf("appended %s (duplicate %v), log size %d -> %d", got.ID, got.Duplicate, size, e.log.Checkpoint().Size)
	}
	t.Logf("rate limited, then appended after %v", time.Since(start).Round(time.Millisecond))
}

// TestRetryHonoursContext: retries stop when the context ends.
func TestRetryHonoursContext(t *testing.T) {
	e := openLimitedLog(t, 1e-6, 1) // one append, then none for days
	url := e.serve(t)
	c := client.New(url, e.verifier, client.WithRetry(100, 50*time.Millisecond))
	k := &cast{alice: newAgent(t, "alice", false), bob: newAgent(t, "bob", false)}
	mustAppend(t, c, e.bindingEnvelope(t, k.alice, true)) // the registrar's one append
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Append(ctx, e.bindingEnvelope(t, k.bob, false)) // the registrar again: limited
	if err == nil {
		t.Fatal("appended past the limit")
	}
	// 100 retries from 50 ms would take far longer than this bound.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("retries went on %v after the context ended", d)
	}
	if r := proofs.Reason(err); r != ledger.ReasonRateLimited && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v (reason %q), want rate_limited or the deadline", err, r)
	}
}

// TestRetryOnlyTransientFailures: Unavailable is retried up to the
// attempts given; a refusal that would only repeat (Unauthenticated, a
// ResourceExhausted without a shedding reason) is not.
func TestRetryOnlyTransientFailures(t *testing.T) {
	e := openLog(t, envOptions{})
	k := &cast{alice: newAgent(t, "alice", false), bob: newAgent(t, "bob", false)}
	for _, tc := range []struct {
		name     string
		status   int // the stub's answer; 0: pass to the log
		body     string
		attempts int32
	}{
		{"unavailable", http.StatusServiceUnavailable, "", 4},
		{"unauthenticated", 0, "", 1},
		{"resource exhausted without a reason", http.StatusTooManyRequests, `{"code":"resource_exhausted","message":"too big"}`, 1},
		{"queue full", http.StatusTooManyRequests, `{"code":"resource_exhausted","message":"full","details":[{"type":"warrant.v1.ErrorDetail","value":"CgpxdWV1ZV9mdWxs"}]}`, 4},
		{"checkpoint pending", http.StatusServiceUnavailable, `{"code":"unavailable","message":"pending","details":[{"type":"warrant.v1.ErrorDetail","value":"ChJjaGVja3BvaW50X3BlbmRpbmc="}]}`, 4},
		// A sync-witnessing server answers this after its whole witness
		// timeout: retrying would wait it again, attempts times over.
		{"witness unavailable", http.StatusServiceUnavailable, `{"code":"unavailable","message":"entry 8 is committed","details":[{"type":"warrant.v1.ErrorDetail","value":"ChN3aXRuZXNzX3VuYXZhaWxhYmxl"}]}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			real := ledger.NewHandler(e.log)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/Append") {
					calls.Add(1)
					if tc.status != 0 {
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(tc.status)
						w.Write([]byte(tc.body))
						return
					}
				}
				real.ServeHTTP(w, r)
			}))
			defer srv.Close()
			c := client.New(srv.URL, e.verifier, client.WithRetry(4, time.Millisecond))
			_, err := c.Append(context.Background(), sign(t, k.alice, e.rootGrant(t, "dlg_1", k.alice, k.bob)))
			if err == nil {
				t.Fatal("no error")
			}
			if got := calls.Load(); got != tc.attempts {
				t.Fatalf("%d attempts (last error %v), want %d", got, err, tc.attempts)
			}
		})
	}
}

package ledger

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrantlog/warrant/proofs"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClockSetBackIsBounded: finding 10 of issue 11. Log time never
// decreases, so after the clock jumped forward and was set back every
// entry's log time stayed pinned at the future time. Now appends are
// refused (clock_behind, nothing written) while the clock is more than
// MaxLogTimeAhead behind log time, with an error logged and the gap on
// warrant_log_time_ahead_seconds; within the bound they are appended again.
func TestClockSetBackIsBounded(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Metrics = m
	})
	ctx := context.Background()
	ahead := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "warrant_log_time_ahead_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no warrant_log_time_ahead_seconds")
		return 0
	}
	bind := func() (*Appended, error) {
		return f.log.Append(ctx, bindingEnvelope(t, f.registrar, "spiffe://example.org/agent/c"+time.Now().Format("150405.000000000"), newTestKey(t), proofs.TierDraft, false))
	}

	start := now
	set(start.Add(2 * time.Hour)) // the clock jumps forward…
	a, err := bind()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := proofs.ParseLeaf(a.Leaf); !p.Time.Equal(start.Add(2 * time.Hour)) {
		t.Fatalf("log time %v", p.Time)
	}
	set(start.Add(time.Minute)) // …and is set back
	size := f.log.Checkpoint().Size
	_, err = bind()
	if proofs.Reason(err) != ReasonClockBehind {
		t.Fatalf("append with the clock 1h59m behind log time: %v, want %s", err, ReasonClockBehind)
	}
	if !strings.Contains(err.Error(), "ahead of the server clock") {
		t.Errorf("error does not say what is wrong: %v", err)
	}
	if got := f.log.Checkpoint().Size; got != size {
		t.Errorf("a refused append wrote %d entries", got-size)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "clock is behind log time") {
		t.Errorf("no error logged:\n%s", logs.String())
	}
	if got := ahead(); got < 7000 || got > 7200 {
		t.Errorf("warrant_log_time_ahead_seconds = %v, want 7140", got)
	}
	// A delegation is held off too (it is what log time judges).
	_, err = f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_clock", humanID, agentID, "nonce-clock-1")))
	if proofs.Reason(err) != ReasonClockBehind {
		t.Errorf("delegation: %v, want %s", err, ReasonClockBehind)
	}

	// Within the bound the log time is pinned, briefly, as before.
	set(start.Add(2*time.Hour - 30*time.Second))
	a, err = bind()
	if err != nil {
		t.Fatalf("append within the bound: %v", err)
	}
	if p, _ := proofs.ParseLeaf(a.Leaf); !p.Time.Equal(start.Add(2 * time.Hour)) {
		t.Errorf("log time %v, want pinned at %v", p.Time, start.Add(2*time.Hour))
	}
	set(start.Add(3 * time.Hour))
	if _, err := bind(); err != nil {
		t.Fatal(err)
	}
	if got := ahead(); got != 0 {
		t.Errorf("warrant_log_time_ahead_seconds = %v after the clock caught up", got)
	}
}

// TestClockBehindAtOpen: a log reopened with its clock set back says so
// when it starts, and refuses appends until the clock catches up.
func TestClockBehindAtOpen(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFixture(t, func(o *Options) { o.Now = func() time.Time { return start.Add(2 * time.Hour) } })
	f.log.Close()
	var logs syncBuffer
	l := openTestLog(t, f.dir, f.registrar, func(o *Options) {
		f.withAdmin(o)
		o.Now = func() time.Time { return start }
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	defer l.Close()
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "clock is behind") {
		t.Errorf("no error logged at open:\n%s", logs.String())
	}
	_, err := l.Append(context.Background(), bindingEnvelope(t, f.registrar, "spiffe://example.org/agent/late", newTestKey(t), proofs.TierDraft, false))
	if proofs.Reason(err) != ReasonClockBehind {
		t.Errorf("append after reopening with the clock 2h back: %v, want %s", err, ReasonClockBehind)
	}
}

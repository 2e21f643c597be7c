package loadgen

import (
	"context"
	"testing"
	"time"
)

// The pacer gives out slots at the rate asked for, whatever the callers'
// lateness: slots already past are taken at once, not dropped.
func TestPacerSlots(t *testing.T) {
	p := &Pacer{start: time.Now().Add(-time.Hour), per: 1000}
	for range 5000 {
		if !p.Wait(t.Context()) {
			t.Fatal("wait refused with a live context")
		}
	}
	if got := p.next.Load(); got != 5000 {
		t.Fatalf("slots taken = %d, want 5000", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	far := &Pacer{start: time.Now().Add(time.Hour), per: 1}
	if far.Wait(ctx) {
		t.Error("wait for a slot an hour away returned true with a cancelled context")
	}
}

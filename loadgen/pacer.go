package loadgen

import (
	"context"
	"sync/atomic"
	"time"
)

// Pacer spaces operations at a fixed rate across the clients: operation i
// may start at start + i/per. Each client takes the next slot and sleeps
// until it, or starts at once if the slot has passed. A ticker would not
// do: it drops the ticks its receivers were late for, and at thousands a
// second on a busy machine (timers fire late) it delivered a third of the
// rate asked for. Slots missed while every client was busy are made up as
// soon as one is free, so the rate asked for is the rate attempted.
type Pacer struct {
	start time.Time
	per   float64 // operations a second
	next  atomic.Int64
}

// NewPacer paces operations at per a second from start. The bench module
// paces its Tessera runs with it, so both systems are offered load the
// same way.
func NewPacer(start time.Time, per float64) *Pacer {
	return &Pacer{start: start, per: per}
}

// Wait blocks until the caller's slot, and reports false if ctx ended
// first.
func (p *Pacer) Wait(ctx context.Context) bool {
	i := p.next.Add(1) - 1
	at := p.start.Add(time.Duration(float64(i) / p.per * float64(time.Second)))
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FollowOptions configure Follower.Follow. Zero values are the defaults.
type FollowOptions struct {
	// StallAfter is how old the log's latest signed timestamp may get
	// before Follow returns a ReasonStalled alert (default one minute).
	StallAfter time.Duration
	// Poll is the interval of rounds while the checkpoint feed is
	// unavailable (default five seconds).
	Poll time.Duration
	// Warn, if not nil, is told of the failures Follow recovers from: the
	// feed breaking (the error says "checkpoint stream" and the polling
	// interval; Follow polls, and reconnects after four intervals), a
	// server without a feed (the error wraps ErrNoFeed: Follow polls for
	// good, and cannot detect a stall, since nothing signed shows that the
	// log is live), and a polling round that failed without an alert.
	Warn func(error)
	// Now is the clock the log's signed timestamps are compared with
	// (default time.Now).
	Now func() time.Time
	// WitnessConflict, if not nil, is how Follow reports the witnesses the
	// server says are in conflict with the log (CheckWitnesses: each
	// conflict once). Follow reads the server's witness report after its
	// first round and then once every Poll, never more often, and goes on
	// whatever it says: the report is the server's, unverified, and
	// nothing the follower verified failed. A failed check (the report
	// unreadable, or this function's error) goes to Warn and is retried at
	// the next interval.
	WitnessConflict func(context.Context, *WitnessConflict) error
}

// Follow runs the follower until ctx ends (it then returns nil) or the log
// fails verification (it returns the *AlertError, the state left as it
// was): a first round, then a round whenever the checkpoint feed (Watch)
// shows a larger tree. The feed also proves the log live: when its latest
// signed timestamp is older than StallAfter, or no fresh one came for that
// long, Follow returns a ReasonStalled alert. When the feed breaks, Follow
// polls (a round every Poll) and reconnects. A round that fails ends Follow
// with its error (an *AlertError or not), except a polling round that
// fails without an alert: that one goes to Warn, and the next poll retries.
func (f *Follower) Follow(ctx context.Context, o FollowOptions) error {
	if o.StallAfter <= 0 {
		o.StallAfter = time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Warn == nil {
		o.Warn = func(error) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if _, err := f.Round(ctx); err != nil {
		return err
	}
	var witnessC <-chan time.Time
	if o.WitnessConflict != nil {
		f.checkWitnesses(ctx, o)
		t := time.NewTicker(o.Poll)
		defer t.Stop()
		witnessC = t.C
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the feed's goroutine
	ticks := make(chan Tick, 16)
	streamErr := make(chan error, 1)
	watch := func() {
		go func() {
			streamErr <- f.Watch(ctx, func(t Tick) error {
				select {
				case ticks <- t:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
	}
	watch()
	lastAlive := o.Now()
	stall := time.NewTicker(min(o.StallAfter/4, 5*time.Second))
	defer stall.Stop()
	var pollC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-ticks:
			lastAlive = t.At
			if age := o.Now().Sub(t.At); age > o.StallAfter {
				return &AlertError{Reason: ReasonStalled, Err: fmt.Errorf("the log's signed timestamp is %v old", age.Round(time.Second)), Evidence: t.Checkpoint.Note}
			}
			if t.Checkpoint.Size > f.State().Next {
				if _, err := f.Round(ctx); err != nil {
					return err
				}
			}
		case err := <-streamErr:
			if ctx.Err() != nil {
				return nil
			}
			var a *AlertError
			if errors.As(err, &a) {
				return err
			}
			if pollC == nil {
				p := time.NewTicker(o.Poll)
				defer p.Stop()
				pollC = p.C
			}
			o.Warn(fmt.Errorf("checkpoint stream: %w; polling every %v", err, o.Poll))
			if errors.Is(err, ErrNoFeed) {
				// A static tlog-tiles mirror: poll it for good. It carries
				// no signed timestamps, so nothing shows the log is live.
				stall.Stop()
				continue
			}
			go func() {
				select {
				case <-time.After(o.Poll * 4):
					watch()
				case <-ctx.Done():
				}
			}()
		case <-pollC:
			if _, err := f.Round(ctx); err != nil {
				var a *AlertError
				if errors.As(err, &a) {
					return err
				}
				if ctx.Err() != nil {
					continue // the follow is ending: not a failure to warn of
				}
				o.Warn(err)
			}
		case <-witnessC:
			f.checkWitnesses(ctx, o)
		case <-stall.C:
			if quiet := o.Now().Sub(lastAlive); quiet > o.StallAfter {
				return &AlertError{Reason: ReasonStalled, Err: fmt.Errorf("no fresh signed timestamp from the log for %v", quiet.Round(time.Second))}
			}
		}
	}
}

// witnessCheckTimeout bounds one read of the server's witness report, so
// that a server slow to answer it does not hold up the follower.
const witnessCheckTimeout = 30 * time.Second

// checkWitnesses runs one CheckWitnesses for Follow.
func (f *Follower) checkWitnesses(ctx context.Context, o FollowOptions) {
	cctx, cancel := context.WithTimeout(ctx, witnessCheckTimeout)
	defer cancel()
	if _, err := f.CheckWitnesses(cctx, o.WitnessConflict); err != nil && ctx.Err() == nil {
		o.Warn(fmt.Errorf("checking the server's witness report: %w", err))
	}
}

package siem

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

const (
	retryMaxBackoff     = 30 * time.Second
	retryDefaultBackoff = 100 * time.Millisecond
)

// WithRetry returns a sink that tries s.Write up to attempts times in all
// (attempts < 1 means once), waiting between tries with exponential
// back-off from backoff (≤ 0 means 100 ms), doubled each time, with
// jitter (each wait is between half and all of the nominal one), capped
// at 30 s (or backoff, if larger), and stretched to a receiver's
// Retry-After within that cap. It stops at once on success, on a
// permanent error (ErrPermanent), and when ctx is done. Each try sends
// the whole batch again. The returned error is the last one, and also
// matches ctx.Err() when ctx ended the retries.
func WithRetry(s Sink, attempts int, backoff time.Duration) Sink {
	if attempts < 1 {
		attempts = 1
	}
	if backoff <= 0 {
		backoff = retryDefaultBackoff
	}
	return &retrySink{s: s, attempts: attempts, backoff: backoff}
}

type retrySink struct {
	s        Sink
	attempts int
	backoff  time.Duration
}

func (r *retrySink) Write(ctx context.Context, records [][]byte) error {
	var err error
	for i := 0; i < r.attempts; i++ {
		if i > 0 {
			t := time.NewTimer(retryDelay(r.backoff, i-1, err))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("siem: delivery abandoned: %w; last error: %w", ctx.Err(), err)
			case <-t.C:
			}
		}
		err = r.s.Write(ctx, records)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrPermanent) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("siem: delivery abandoned: %w; last error: %w", cerr, err)
		}
	}
	if r.attempts == 1 {
		return err
	}
	return fmt.Errorf("siem: delivery failed after %d attempts: %w", r.attempts, err)
}

// retryDelay is the wait before retry n (0-based) after err.
func retryDelay(base time.Duration, n int, err error) time.Duration {
	limit := max(retryMaxBackoff, base)
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	d = half + rand.N(d-half+1)
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if hint := ra.RetryAfter(); hint > d {
			d = min(hint, limit)
		}
	}
	return d
}

func (r *retrySink) Close() error { return r.s.Close() }

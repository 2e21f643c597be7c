package objstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrInjected is wrapped by every failure Faults makes up, so a test can tell
// an injected failure from a real one.
var ErrInjected = errors.New("injected object store failure")

// Fault is how Faults fails one Put. An object store's client sees two kinds
// of failed write, and a log must survive both: the request never reached the
// store, or it did and only the answer was lost. Code that passes with Lost
// alone usually assumes a failed Put stored nothing.
type Fault int

const (
	// NoFault lets the Put through.
	NoFault Fault = iota
	// Lost fails the Put without storing the object ("failed and not
	// persisted": a refused connection, a 503 before the write).
	Lost
	// Persisted stores the object, then fails the Put ("failed but
	// persisted": a timeout or a reset after the store wrote it).
	Persisted
)

// Faults is a Store decorator for unit tests that fails the operations a test
// picks, as Sunlight tests its backends. The zero rules let everything
// through; the rules may be changed while the store is in use.
type Faults struct {
	store Store

	mu      sync.Mutex
	putRule func(key string) Fault
	getRule func(key string) bool
}

// NewFaults wraps s.
func NewFaults(s Store) *Faults { return &Faults{store: s} }

// FailPuts sets the rule for Puts: rule(key) says how the Put of key fails
// (NoFault to let it through). A nil rule lets every Put through.
func (f *Faults) FailPuts(rule func(key string) Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putRule = rule
}

// FailGets sets the rule for Gets: rule(key) true fails the Get of key
// without reading. A nil rule lets every Get through.
func (f *Faults) FailGets(rule func(key string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getRule = rule
}

// Get fails as the Get rule says, or reads from the wrapped store.
func (f *Faults) Get(ctx context.Context, key string) ([]byte, error) {
	f.mu.Lock()
	rule := f.getRule
	f.mu.Unlock()
	if rule != nil && rule(key) {
		return nil, fmt.Errorf("objstore: get %s: %w", key, ErrInjected)
	}
	return f.store.Get(ctx, key)
}

// Put fails as the Put rule says, or writes to the wrapped store.
func (f *Faults) Put(ctx context.Context, key string, data []byte) error {
	f.mu.Lock()
	rule := f.putRule
	f.mu.Unlock()
	fault := NoFault
	if rule != nil {
		fault = rule(key)
	}
	switch fault {
	case NoFault:
		return f.store.Put(ctx, key, data)
	case Lost:
		return fmt.Errorf("objstore: put %s: %w (not stored)", key, ErrInjected)
	case Persisted:
		if err := f.store.Put(ctx, key, data); err != nil {
			return err
		}
		return fmt.Errorf("objstore: put %s: %w (stored)", key, ErrInjected)
	}
	return fmt.Errorf("objstore: put %s: unknown fault %d", key, fault)
}

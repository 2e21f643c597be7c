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

// Fault is how Faults fails one write (Put, Create or Replace). An object store's client sees two kinds
// of failed write, and a log must survive both: the request never reached the
// store, or it did and only the answer was lost. Code that passes with Lost
// alone usually assumes a failed Put stored nothing.
type Fault int

const (
	// NoFault lets the write through.
	NoFault Fault = iota
	// Lost fails the write without storing the object ("failed and not
	// persisted": a refused connection, a 503 before the write).
	Lost
	// Persisted lets the write through, then fails it ("failed but
	// persisted": a timeout or a reset after the store wrote it). A
	// conditional write whose condition failed returns its own ErrExists
	// or ErrChanged: nothing was stored, and the store said so.
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

// FailPuts sets the rule for writes (Put, Create and Replace): rule(key)
// says how a write of key fails (NoFault to let it through). A nil rule lets
// every write through.
func (f *Faults) FailPuts(rule func(key string) Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putRule = rule
}

// FailGets sets the rule for Gets and GetWithETags: rule(key) true fails
// the read of key without reading. A nil rule lets every read through.
func (f *Faults) FailGets(rule func(key string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getRule = rule
}

// Get fails as the Get rule says, or reads from the wrapped store.
func (f *Faults) Get(ctx context.Context, key string) ([]byte, error) {
	if f.getFails(key) {
		return nil, fmt.Errorf("objstore: get %s: %w", key, ErrInjected)
	}
	return f.store.Get(ctx, key)
}

// GetWithETag fails as the Get rule says, or reads from the wrapped store.
func (f *Faults) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	if f.getFails(key) {
		return nil, "", fmt.Errorf("objstore: get %s: %w", key, ErrInjected)
	}
	return f.store.GetWithETag(ctx, key)
}

func (f *Faults) getFails(key string) bool {
	f.mu.Lock()
	rule := f.getRule
	f.mu.Unlock()
	return rule != nil && rule(key)
}

// Put fails as the write rule says, or writes to the wrapped store.
func (f *Faults) Put(ctx context.Context, key string, data []byte) error {
	return f.write("put", key, func() error { return f.store.Put(ctx, key, data) })
}

// Create fails as the write rule says, or creates in the wrapped store.
func (f *Faults) Create(ctx context.Context, key string, data []byte) error {
	return f.write("create", key, func() error { return f.store.Create(ctx, key, data) })
}

// Replace fails as the write rule says, or replaces in the wrapped store.
func (f *Faults) Replace(ctx context.Context, key string, data []byte, etag string) error {
	return f.write("replace", key, func() error { return f.store.Replace(ctx, key, data, etag) })
}

// write runs do, the write of key to the wrapped store, as the rule says.
func (f *Faults) write(op, key string, do func() error) error {
	f.mu.Lock()
	rule := f.putRule
	f.mu.Unlock()
	fault := NoFault
	if rule != nil {
		fault = rule(key)
	}
	switch fault {
	case NoFault:
		return do()
	case Lost:
		return fmt.Errorf("objstore: %s %s: %w (not stored)", op, key, ErrInjected)
	case Persisted:
		if err := do(); err != nil {
			return err
		}
		return fmt.Errorf("objstore: %s %s: %w (stored)", op, key, ErrInjected)
	}
	return fmt.Errorf("objstore: %s %s: unknown fault %d", op, key, fault)
}

package objstore

import (
	"context"
	"fmt"
	"sync"
)

// Memory is a Store in a map, for unit tests of the code that uses a Store
// (with Faults around it to make it fail). It keeps Store's contract
// trivially: a Put is visible to every later Get.
type Memory struct {
	mu      sync.Mutex
	objects map[string][]byte
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{objects: map[string][]byte{}} }

// Get returns a copy of the object at key.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("objstore: get %s: %w", key, ErrNotFound)
	}
	return append([]byte(nil), data...), nil
}

// Put stores a copy of data at key.
func (m *Memory) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if len(data) > MaxObjectBytes {
		return fmt.Errorf("objstore: put %s: %w: %d bytes, limit %d", key, ErrTooLarge, len(data), MaxObjectBytes)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = append([]byte(nil), data...)
	return nil
}

// Len returns the number of objects stored, for tests that check nothing
// more was written than they expect.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objects)
}

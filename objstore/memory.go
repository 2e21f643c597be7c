package objstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"sync"
)

// Memory is a Store in a map, for unit tests of the code that uses a Store
// (with Faults around it to make it fail). It keeps Store's contract
// trivially: every write is applied at once and visible to every later Get,
// and its ETags are S3's for a single-part upload (the quoted hex MD5 of the
// bytes), so a test cannot come to rely on a version counter S3 does not
// have.
type Memory struct {
	mu      sync.Mutex
	objects map[string][]byte
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{objects: map[string][]byte{}} }

// Get returns a copy of the object at key.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	data, _, err := m.get(ctx, "get", key)
	return data, err
}

// GetWithETag returns a copy of the object at key and its ETag.
func (m *Memory) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	return m.get(ctx, "get", key)
}

func (m *Memory) get(ctx context.Context, op, key string) ([]byte, string, error) {
	if err := checkKey(key); err != nil {
		return nil, "", fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[key]
	if !ok {
		return nil, "", fmt.Errorf("objstore: %s %s: %w", op, key, ErrNotFound)
	}
	return append([]byte(nil), data...), etagOf(data), nil
}

// Put stores a copy of data at key.
func (m *Memory) Put(ctx context.Context, key string, data []byte) error {
	return m.write(ctx, "put", key, data, func(old []byte, exists bool) error { return nil })
}

// Create stores a copy of data at key if key holds no object.
func (m *Memory) Create(ctx context.Context, key string, data []byte) error {
	return m.write(ctx, "create", key, data, func(old []byte, exists bool) error {
		if exists {
			return ErrExists
		}
		return nil
	})
}

// Replace stores a copy of data at key if key holds the object tagged etag.
func (m *Memory) Replace(ctx context.Context, key string, data []byte, etag string) error {
	return m.write(ctx, "replace", key, data, func(old []byte, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: no object", ErrChanged)
		}
		if etagOf(old) != etag {
			return fmt.Errorf("%w: ETag %s, not %s", ErrChanged, etagOf(old), etag)
		}
		return nil
	})
}

// write stores data at key if cond, called under the lock with what key
// holds, returns nil.
func (m *Memory) write(ctx context.Context, op, key string, data []byte, cond func(old []byte, exists bool) error) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	if len(data) > MaxObjectBytes {
		return fmt.Errorf("objstore: %s %s: %w: %d bytes, limit %d", op, key, ErrTooLarge, len(data), MaxObjectBytes)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, exists := m.objects[key]
	if err := cond(old, exists); err != nil {
		return fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	m.objects[key] = append([]byte(nil), data...)
	return nil
}

// etagOf is S3's ETag of an object stored by one PutObject: its MD5, in hex,
// in double quotes.
func etagOf(data []byte) string {
	sum := md5.Sum(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// Len returns the number of objects stored, for tests that check nothing
// more was written than they expect.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objects)
}

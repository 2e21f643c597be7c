package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// State stores the checkpoint a client trusts: the last one it verified.
// Storage is supplied by the caller, so one trusted state can be shared by
// the goroutines of a process (MemoryState) or by several processes
// (FileState).
//
// Load returns the stored signed checkpoint, or nil when there is none
// (trust on first use). Update atomically replaces it with what fn returns
// given the current content; fn returning nil leaves it unchanged, and an
// error from fn leaves it unchanged and is returned. Update must be atomic
// with respect to every other user of the same state: fn sees the latest
// content, and no other update lands between fn's read and its write.
type State interface {
	Load() ([]byte, error)
	Update(fn func(current []byte) ([]byte, error)) error
}

// MemoryState is a State held in memory.
type MemoryState struct {
	mu  sync.Mutex
	cur []byte
}

// Load implements State.
func (m *MemoryState) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur, nil
}

// Update implements State.
func (m *MemoryState) Update(fn func([]byte) ([]byte, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := fn(m.cur)
	if err != nil {
		return err
	}
	if next != nil {
		m.cur = next
	}
	return nil
}

// FileState is a State in a file, safe for several processes: updates hold
// an exclusive lock on PATH.lock and replace the file atomically (write to a
// temporary file, sync, rename), so a reader sees the old or the new
// checkpoint, never a mix, and a crash never leaves a torn state.
type FileState struct {
	Path string
}

// Load implements State.
func (f FileState) Load() ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading trusted state: %w", err)
	}
	return b, nil
}

// Update implements State.
func (f FileState) Update(fn func([]byte) ([]byte, error)) error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	lock, err := os.OpenFile(f.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("opening state lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking trusted state: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	cur, err := f.Load()
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing trusted state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(next); err != nil {
		tmp.Close()
		return fmt.Errorf("writing trusted state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing trusted state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing trusted state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("replacing trusted state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

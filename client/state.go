package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/warrantlog/warrant/internal/atomicfile"
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
	b, err := f.read()
	if err != nil {
		return nil, fmt.Errorf("reading trusted state: %w", err)
	}
	return b, nil
}

// read returns the file's content, or nil when there is none.
func (f FileState) read() ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Update implements State.
func (f FileState) Update(fn func([]byte) ([]byte, error)) error {
	lock, err := f.lock(true)
	if err != nil {
		return err
	}
	defer lock.Close() // closing releases the lock
	cur, err := f.Load()
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	if err := f.replace(next); err != nil {
		return fmt.Errorf("writing trusted state: %w", err)
	}
	return nil
}

// errLocked is lock's error when another holder has the lock and the
// caller would not wait.
var errLocked = errors.New("locked by another holder")

// lock takes the exclusive lock on PATH.lock, creating the directory and
// the lock file as needed; closing the returned file releases it. Without
// wait it fails at once with errLocked if another holder has the lock. The
// lock is advisory (flock): it orders the processes that use FileState or
// a Follower, nothing else.
func (f FileState) lock(wait bool) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	lock, err := os.OpenFile(f.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening state lock: %w", err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(lock.Fd()), how); err != nil {
		lock.Close()
		if !wait && errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("locking %s: %w", f.Path, err)
	}
	return lock, nil
}

// replace writes b as the file's content, atomically (mode 0600). The
// caller holds the lock.
func (f FileState) replace(b []byte) error {
	return atomicfile.WriteFile(f.Path, b, 0o600)
}

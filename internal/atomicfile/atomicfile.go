// Package atomicfile replaces files so that a reader, and the file system
// after a crash, sees the old content or the new one, never a mix and never
// a torn file: the new content goes to a temporary file in the same
// directory (so the rename cannot cross file systems), which is synced,
// renamed over the target, and whose directory is then synced so the rename
// itself is durable.
//
// It is the one place the module writes files this way: trusted states,
// follower states, the log key, exports, backups, proofs and bundles.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// File is the new content of a path while it is written. Nothing is
// visible at the path until Commit succeeds; Abort, or a failed Commit,
// removes the temporary file and leaves the path as it was.
type File struct {
	f    *os.File
	path string
	done bool
}

// Create starts replacing path with a temporary file ".BASE.tmp*" in the
// same directory, with permissions perm (not subject to the umask).
func Create(path string, perm os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{f: f, path: path}, nil
}

// Write appends to the new content.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, errors.New("atomicfile: write after Commit or Abort")
	}
	return f.f.Write(p)
}

// Commit syncs the new content, renames it over the path and syncs the
// directory. After an error the path is unchanged (unless the rename
// happened and only the directory sync failed, which is not reported: some
// file systems cannot sync a directory, and the content is durable).
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: Commit after Commit or Abort")
	}
	defer f.Abort()
	if err := f.f.Sync(); err != nil {
		return err
	}
	if err := f.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.f.Name(), f.path); err != nil {
		return err
	}
	f.done = true
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort discards the new content, unless Commit succeeded. It is safe to
// call more than once, so it can be deferred right after Create.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.f.Close()
	os.Remove(f.f.Name())
}

// WriteFile replaces path with data, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

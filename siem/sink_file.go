package siem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File returns a sink appending to the file at path, created with mode
// 0600 if it does not exist (an existing file keeps its mode; a new file's
// directory is synced too). Each record is written followed by a newline;
// a Write is a single write call of the whole batch followed by fsync, and
// returns only after the fsync.
//
// Crash behaviour: a crash during a Write leaves a prefix of the batch in
// the file, possibly ending in a torn, unterminated line. Before writing
// to a file it has not yet written successfully (on open, and after any
// failed Write) the sink checks the file's last byte and, if it is not a
// newline, first writes one, so a torn fragment stays on its own line and
// never glues onto the retried records. Readers should skip lines that do
// not parse; the retried batch repeats the lost records in full.
// A record containing a line break is refused (permanent).
func File(path string) (Sink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if errors.Is(err, fs.ErrPermission) {
			// Write-only access still allows appending; the torn-line
			// check is then skipped.
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				return &fileSink{f: f, path: path, noTail: true}, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("siem: file sink: %w", err)
	}
	if created {
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("siem: file sink: %w", err)
		}
		fileSyncDir(filepath.Dir(path))
	}
	return &fileSink{f: f, path: path, checkTail: !created}, nil
}

// fileSyncDir makes a new directory entry durable where the platform
// allows it (best effort: not every system can fsync a directory).
func fileSyncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

type fileSink struct {
	mu        sync.Mutex
	f         *os.File
	path      string
	checkTail bool // check for a torn last line before the next write
	noTail    bool // opened write-only: cannot check
	closed    bool
}

func (s *fileSink) Write(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sinkCheckLines(records); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	if len(records) == 0 {
		return nil
	}
	var prefix []byte
	if s.checkTail && !s.noTail {
		torn, err := s.tornTail()
		if err != nil {
			return fmt.Errorf("siem: file %s: %w", s.path, err)
		}
		if torn {
			prefix = []byte{'\n'}
		}
	}
	s.checkTail = true // until this Write has succeeded
	if _, err := s.f.Write(sinkLines(prefix, records)); err != nil {
		return fmt.Errorf("siem: file %s: write: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("siem: file %s: fsync: %w", s.path, err)
	}
	s.checkTail = false
	return nil
}

// tornTail reports whether the file is non-empty and does not end in a
// newline.
func (s *fileSink) tornTail() (bool, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() == 0 {
		return false, nil
	}
	var b [1]byte
	if _, err := s.f.ReadAt(b[:], fi.Size()-1); err != nil {
		return false, err
	}
	return b[0] != '\n', nil
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

package siem

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
)

// Stdout returns a sink that writes each record and a newline to w (nil
// means os.Stdout), the whole batch in one Write call, and flushes w when
// it has a Flush() error method (a *bufio.Writer). Close flushes but does
// not close w. A record containing a line break is refused (permanent).
func Stdout(w io.Writer) Sink {
	if w == nil {
		w = os.Stdout
	}
	return &stdoutSink{w: w}
}

type stdoutSink struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (s *stdoutSink) Write(ctx context.Context, records [][]byte) error {
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
	if len(records) > 0 {
		if _, err := s.w.Write(sinkLines(nil, records)); err != nil {
			return fmt.Errorf("siem: stdout: %w", err)
		}
	}
	return s.flush()
}

func (s *stdoutSink) flush() error {
	if f, ok := s.w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return fmt.Errorf("siem: stdout: flush: %w", err)
		}
	}
	return nil
}

func (s *stdoutSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.flush()
}

package siem_test

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/warrantlog/warrant/siem"
)

func TestStdoutSink(t *testing.T) {
	ctx := sinkTestCtx(t)
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 1<<16)
	s := siem.Stdout(bw)
	if err := s.Write(ctx, sinkTestRecords(`{"a":1}`, "CEF:0|x")); err != nil {
		t.Fatal(err)
	}
	// Flushed by Write: the buffered writer holds nothing back.
	if got, want := out.String(), "{\"a\":1}\nCEF:0|x\n"; got != want {
		t.Fatalf("stdout = %q, want %q", got, want)
	}
	if err := s.Write(ctx, sinkTestRecords("two\nlines")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("record with a line break: err = %v, want permanent", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sinkTestRecords("late")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("write after close: err = %v, want permanent", err)
	}
}

package siem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/warrantlog/warrant/siem"
)

func TestFileSinkAppendsAndSurvivesReopen(t *testing.T) {
	ctx := sinkTestCtx(t)
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	first := sinkTestRecords(`{"time":1,"id":"o/0"}`, `CEF:0|warrantlog|warrant|0.1.0|x|y|3|a=b c`)
	if err := s.Write(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("mode = %o, want 600", perm)
		}
	}

	// Reopen: appended, not truncated.
	s, err = siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	second := sinkTestRecords(`<134>1 2024-01-01T00:00:00Z h warrant - - - msg with "quotes" and ünïcode`)
	if err := s.Write(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sinkTestRecords("a\nb")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("record with a line break: err = %v, want permanent", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := string(first[0]) + "\n" + string(first[1]) + "\n" + string(second[0]) + "\n"
	if string(got) != want {
		t.Fatalf("file =\n%q\nwant\n%q", got, want)
	}
}

func TestFileSinkTerminatesTornLine(t *testing.T) {
	ctx := sinkTestCtx(t)
	path := filepath.Join(t.TempDir(), "events.log")
	// What a crash in the middle of a batch leaves: a prefix ending in a
	// torn record.
	if err := os.WriteFile(path, []byte("{\"id\":\"o/0\"}\n{\"id\":\"o/"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(ctx, sinkTestRecords(`{"id":"o/1"}`, `{"id":"o/2"}`)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	want := []string{`{"id":"o/0"}`, `{"id":"o/`, `{"id":"o/1"}`, `{"id":"o/2"}`}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("lines = %q, want %q", lines, want)
	}
}

func TestFileSinkConcurrentWritesKeepLinesIntact(t *testing.T) {
	ctx := sinkTestCtx(t)
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				rec := fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("x", 500))
				if err := s.Write(ctx, sinkTestRecords(rec, rec)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	got, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 80 {
		t.Fatalf("%d lines, want 80", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("torn line %q", l)
		}
	}
}

package objstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFaults(t *testing.T) {
	ctx := context.Background()
	mem := NewMemory()
	f := NewFaults(mem)

	if err := f.Put(ctx, "tile/0/000", []byte("a")); err != nil {
		t.Fatalf("Put with no rule: %v", err)
	}
	f.FailPuts(func(key string) Fault {
		switch {
		case strings.HasPrefix(key, "tile/entries/"):
			return Lost
		case key == "checkpoint":
			return Persisted
		}
		return NoFault
	})

	err := f.Put(ctx, "tile/entries/000", []byte("bundle"))
	if !errors.Is(err, ErrInjected) {
		t.Fatalf("Lost Put: %v, want ErrInjected", err)
	}
	if _, err := mem.Get(ctx, "tile/entries/000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a Lost Put stored the object: %v", err)
	}

	err = f.Put(ctx, "checkpoint", []byte("cp"))
	if !errors.Is(err, ErrInjected) {
		t.Fatalf("Persisted Put: %v, want ErrInjected", err)
	}
	if got, err := mem.Get(ctx, "checkpoint"); err != nil || string(got) != "cp" {
		t.Errorf("a Persisted Put did not store the object: %q, %v", got, err)
	}

	if err := f.Put(ctx, "tile/0/001", []byte("b")); err != nil {
		t.Errorf("Put of a key the rule lets through: %v", err)
	}

	f.FailGets(func(key string) bool { return key == "checkpoint" })
	if _, err := f.Get(ctx, "checkpoint"); !errors.Is(err, ErrInjected) {
		t.Errorf("failed Get: %v, want ErrInjected", err)
	}
	if got, err := f.Get(ctx, "tile/0/001"); err != nil || string(got) != "b" {
		t.Errorf("Get the rule lets through = %q, %v", got, err)
	}

	f.FailPuts(nil)
	f.FailGets(nil)
	if err := f.Put(ctx, "tile/entries/000", []byte("bundle")); err != nil {
		t.Errorf("Put after clearing the rule: %v", err)
	}
	if got, err := f.Get(ctx, "checkpoint"); err != nil || string(got) != "cp" {
		t.Errorf("Get after clearing the rule = %q, %v", got, err)
	}
	if mem.Len() != 4 {
		t.Errorf("memory holds %d objects, want 4", mem.Len())
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	data := []byte("entries")
	if err := m.Put(ctx, "tile/entries/000", data); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the store keeps its own copy
	got, err := m.Get(ctx, "tile/entries/000")
	if err != nil || !bytes.Equal(got, []byte("entries")) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	got[0] = 'Y'
	if again, _ := m.Get(ctx, "tile/entries/000"); string(again) != "entries" {
		t.Errorf("Get returned the store's own slice")
	}
	if _, err := m.Get(ctx, "checkpoint"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if err := m.Put(ctx, "../x", nil); err == nil {
		t.Error("invalid key accepted")
	}
	if err := m.Put(ctx, "big", make([]byte, MaxObjectBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized Put: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Put(cancelled, "checkpoint", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
}

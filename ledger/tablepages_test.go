//go:build linux

package ledger

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// TestTrimTablePages writes tables through Badger, as the ledger does, and
// checks that their pages count in the resident set and that
// trimTablePages hands them back without changing what the store reads.
func TestTrimTablePages(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(BadgerOptions(dir, slog.New(slog.DiscardHandler)).WithMemTableSize(1 << 20).WithValueThreshold(100 << 10).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	values := map[string][]byte{}
	for i := range 64 { // 8 MiB of incompressible values: several memtable flushes
		err := db.Update(func(txn *badger.Txn) error {
			for j := range 16 {
				k, v := fmt.Sprintf("k%03d-%02d", i, j), make([]byte, 8<<10)
				rand.Read(v)
				values[k] = v
				if err := txn.Set([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var before int64
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		maps, resident, err := tableMappings(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(maps) >= 2 && resident > 0 {
			before = resident
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no table of %s is mapped and resident after 2 minutes (%d mappings)", dir, len(maps))
		}
	}
	files, err := residentFileBytes()
	if err != nil || files < before {
		t.Fatalf("residentFileBytes = %d, %v; the tables alone have %d bytes resident", files, err, before)
	}
	b, a, err := trimTablePages(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.TMPFS_MAGIC && a >= b { // tmpfs pages have nowhere to go without swap
		t.Errorf("resident table bytes %d before, %d after trimTablePages", b, a)
	}
	t.Logf("resident table bytes: %d before, %d after", b, a)
	err = db.View(func(txn *badger.Txn) error {
		for k, v := range values {
			got, err := getValue(txn, []byte(k))
			if err != nil {
				return err
			}
			if string(got) != string(v) {
				return fmt.Errorf("%s changed", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSmapsHeader(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		path string
	}{
		{"7f12a0000000-7f12a0200000 rw-s 00000000 fd:00 1234 /data/000001.sst", true, "/data/000001.sst"},
		{"7f12a0000000-7f12a0200000 rw-s 00000000 fd:00 1234 /a dir/000001.sst", true, "/a dir/000001.sst"},
		{"c000000000-c004000000 rw-p 00000000 00:00 0 ", true, ""},
		{"Rss:                 120 kB", false, ""},
		{"VmFlags: rd wr sh mr mw me ms sd", false, ""},
	} {
		m, ok := smapsHeader([]byte(c.line))
		if ok != c.ok || m.path != c.path {
			t.Errorf("smapsHeader(%q) = %+v, %v; want path %q, %v", c.line, m, ok, c.path, c.ok)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/ledger"
)

// TestServeRefusesMismatchedStore: `warrant serve` on a store whose tree no
// longer matches its last signed checkpoint refuses to start, exits
// non-zero, and says what is wrong and what to do (restore from a backup),
// rather than signing anything inconsistent with what it signed before.
func TestServeRefusesMismatchedStore(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	mustWarrant(t, dir, env, "keygen", "--out", "registrar")
	srv := startServer(t, dir, env, addr, "--registrar-key", "registrar.pub")
	srv.kill(syscall.SIGTERM)
	data := filepath.Join(dir, "warrant-data")

	// Damage the stored tree head's root (ledger/store.go: key "Mhead",
	// size(8) || root(32) || log time(8)).
	db, err := badger.Open(ledger.BadgerOptions(data, slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("Mhead"))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[8] ^= 1
		return txn.Set([]byte("Mhead"), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, warrantBin, "serve", "--registrar-key", "registrar.pub")
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("serve did not exit on a mismatched store:\n%s", stderr.String())
	}
	if err == nil {
		t.Fatalf("serve exited 0 on a mismatched store:\n%s", stderr.String())
	}
	msg := stderr.String()
	for _, want := range []string{
		"error: store_mismatch: ",
		"store does not match the last signed checkpoint",
		"stored tiles give root",
		"Refusing to serve",
		"restore ./warrant-data from a backup", // the --data it was given
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("serve's refusal does not say %q:\n%s", want, msg)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("serve printed on stdout: %q", stdout.String())
	}
}

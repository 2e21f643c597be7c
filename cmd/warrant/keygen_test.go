package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestKeygenLogKey checks that a log key made by keygen --type log, installed
// as a data directory's log.key before the first start, is the key the server
// signs its checkpoints with: how the nodes of a cluster share one log key.
func TestKeygenLogKey(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	out := mustWarrant(t, dir, env, "keygen", "--type", "log", "--origin", "example.test/cluster", "--out", "logkey", "--json")
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["key"] != "logkey.key" || res["vkey"] != "logkey.vkey" || res["origin"] != "example.test/cluster" {
		t.Fatalf("keygen --json: %q (%v)", out, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "logkey.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("logkey.key: %v, %v", fi.Mode(), err)
	}
	vkey, err := os.ReadFile(filepath.Join(dir, "logkey.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	skey, err := os.ReadFile(filepath.Join(dir, "logkey.key"))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "warrant-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "log.key"), skey, 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, dir, env, addr)
	if served, _ := os.ReadFile(filepath.Join(data, "log.vkey")); !bytes.Equal(served, vkey) {
		t.Fatalf("the server's log.vkey %q is not keygen's %q", served, vkey)
	}
	resp, err := http.Get("http://" + addr + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(body, note.VerifierList(v)); err != nil {
		t.Fatalf("the checkpoint does not verify with keygen's key: %v\n%s", err, body)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keygen", "--type", "log", "--out", "x"}, "needs --origin"},
		{[]string{"keygen", "--type", "log", "--origin", "bad origin", "--out", "x"}, "cannot name a key"},
		{[]string{"keygen", "--origin", "example.test/x", "--out", "x"}, "--type log only"},
		{[]string{"keygen", "--type", "log", "--origin", "example.test/cluster", "--out", "logkey"}, "file_exists"},
	} {
		r := warrant(t, dir, env, c.args...)
		wantCode := 2
		if c.want == "file_exists" {
			wantCode = 1
		}
		if r.code != wantCode || !strings.Contains(r.stderr, c.want) {
			t.Errorf("warrant %s: exit %d, %q; want exit %d saying %q", strings.Join(c.args, " "), r.code, r.stderr, wantCode, c.want)
		}
	}
}

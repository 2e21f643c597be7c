package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestServersList: client commands take a cluster's node URLs from
// WARRANT_SERVERS or a comma-separated --server and fail over between
// them; --server wins over WARRANT_SERVERS, which wins over
// WARRANT_SERVER; every URL of a list is checked.
func TestServersList(t *testing.T) {
	e := newE2E(t)
	down1, down2 := "http://"+freeAddr(t), "http://"+freeAddr(t)
	withEnv := func(kv ...string) []string { return append(append([]string{}, e.env...), kv...) }
	size := func(out string) uint64 {
		var v struct {
			Size uint64 `json:"size"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("checkpoint --json printed %q: %v", out, err)
		}
		return v.Size
	}

	// WARRANT_SERVERS, its first node down, wins over WARRANT_SERVER.
	env := withEnv("WARRANT_SERVER="+down2, "WARRANT_SERVERS="+down1+","+e.url())
	want, _ := e.checkpointSize()
	if got := size(mustWarrant(t, e.dir, env, "checkpoint", "--json")); got != want {
		t.Fatalf("checkpoint through WARRANT_SERVERS: size %d, want %d", got, want)
	}
	// An append through the list.
	mustWarrant(t, e.dir, env, "keygen", "--out", "bob")
	mustWarrant(t, e.dir, env, "register", "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/agent/bob", "--pub", "bob.pub")
	if got, _ := e.checkpointSize(); got != want+1 {
		t.Fatalf("size %d after a register through WARRANT_SERVERS, want %d", got, want+1)
	}
	// --server, given, wins over WARRANT_SERVERS, and takes a list too.
	r := warrant(t, e.dir, env, "checkpoint", "--server", down2)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: unavailable: ") {
		t.Fatalf("--server of a stopped server: exit %d, stderr %q", r.code, r.stderr)
	}
	mustWarrant(t, e.dir, withEnv("WARRANT_SERVERS="+down1), "checkpoint", "--server", down2+","+e.url())
	// Every URL of a list is checked.
	r = warrant(t, e.dir, withEnv("WARRANT_SERVERS="+e.url()+",127.0.0.1:1"), "checkpoint")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") || !strings.Contains(r.stderr, "WARRANT_SERVERS") || !strings.Contains(r.stderr, "http://127.0.0.1:1") {
		t.Fatalf("a list with a URL without scheme: exit %d, stderr %q", r.code, r.stderr)
	}
	// backup reads one server.
	r = warrant(t, e.dir, env, "backup", "--out", "b.backup")
	if r.code != 2 || !strings.Contains(r.stderr, "one URL") {
		t.Fatalf("backup from a list: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestServersOtherLogFirst: `warrant get ID` with a node of another log
// first in WARRANT_SERVERS answers from the log's node, not the other
// log's not_found; with only the other log's node, and with it alone as
// --server, the error is checkpoint_signature_invalid, not not_found.
func TestServersOtherLogFirst(t *testing.T) {
	e, other := newE2E(t), newE2E(t)
	d := e.delegate("state.json")
	env := append(append([]string{}, e.env...), "WARRANT_SERVERS="+other.url()+","+e.url())
	out := mustWarrant(t, e.dir, env, "get", d.ID, "--json")
	if !strings.Contains(out, d.ID) {
		t.Fatalf("get %s through a list with another log's node first: %q", d.ID, out)
	}
	for _, servers := range []string{other.url() + "," + other.url() + "/", other.url()} {
		r := warrant(t, e.dir, append(append([]string{}, e.env...), "WARRANT_SERVERS="+servers), "get", d.ID)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "error: checkpoint_signature_invalid: ") {
			t.Fatalf("get %s from another log's node (%s): exit %d, stderr %q", d.ID, servers, r.code, r.stderr)
		}
	}
}

package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/internal/testpki"
)

// tlsUser is a user's directory with keys, a test PKI and a server
// started with extra flags over TLS.
type tlsUser struct {
	t   *testing.T
	dir string
	env []string
	ca  *testpki.CA
}

func newTLSUser(t *testing.T, serveArgs ...string) *tlsUser {
	dir := t.TempDir()
	addr := freeAddr(t)
	u := &tlsUser{t: t, dir: dir, ca: testpki.NewCA(t, "warrant test CA")}
	u.env = append(userEnv(t, dir, addr), "WARRANT_SERVER=https://"+addr)
	for _, k := range []string{"registrar", "alice", "planner"} {
		mustWarrant(t, dir, u.env, "keygen", "--out", k)
	}
	u.ca.Write(t, dir, "ca")
	u.ca.Server(t).Write(t, dir, "server")
	for name, id := range map[string]string{"svid-registrar": "spiffe://example.org/registrar", "svid-alice": alice, "svid-planner": planner} {
		u.ca.SVID(t, id).Write(t, dir, name)
	}
	args := append([]string{"--registrar-key", "registrar.pub", "--tls-cert", "server.crt", "--tls-key", "server.key"}, serveArgs...)
	startServer(t, dir, u.env, addr, args...)
	u.env = append(u.env, "WARRANT_LOG_KEY=@"+filepath.Join(dir, "warrant-data", "log.vkey"), "WARRANT_TLS_CA=ca.crt")
	return u
}

// as returns the client flags presenting the named SVID.
func as(svid string) []string {
	return []string{"--tls-cert", svid + ".crt", "--tls-key", svid + ".key"}
}

func (u *tlsUser) size(args ...string) uint64 {
	u.t.Helper()
	var cp struct{ Size uint64 }
	if err := json.Unmarshal([]byte(mustWarrant(u.t, u.dir, u.env, append([]string{"checkpoint", "--json"}, args...)...)), &cp); err != nil {
		u.t.Fatal(err)
	}
	return cp.Size
}

func (u *tlsUser) register(svid string) {
	u.t.Helper()
	mustWarrant(u.t, u.dir, u.env, append([]string{"register", "--registrar-key", "registrar.key", "--agent", alice, "--pub", "alice.pub", "--human"}, as(svid)...)...)
	mustWarrant(u.t, u.dir, u.env, append([]string{"register", "--registrar-key", "registrar.key", "--agent", planner, "--pub", "planner.pub", "--tier", "execute"}, as(svid)...)...)
}

func delegateArgs(id string) []string {
	return []string{"delegate", "--key", "alice.key", "--issuer", alice, "--to", planner, "--task", "/tickets", "--ttl", "10m", "--id", id, "--json"}
}

// TestServeMutualTLS: serve --client-ca requires client certificates; an
// agent appends its own delegations over a connection with its SVID, a
// delegation over another agent's connection is refused
// (peer_identity_mismatch) and writes nothing, and a client without a
// certificate is refused by the TLS layer.
func TestServeMutualTLS(t *testing.T) {
	u := newTLSUser(t, "--client-ca", "ca.crt")
	u.register("svid-registrar") // bindings: signed by the registrar, not tied to a SPIFFE ID

	out := mustWarrant(t, u.dir, u.env, append(delegateArgs("dlg_root"), as("svid-alice")...)...)
	if !strings.Contains(out, `"id":"dlg_root"`) {
		t.Fatalf("delegate over alice's connection: %s", out)
	}
	size := u.size(as("svid-alice")...)

	r := warrant(t, u.dir, u.env, append(delegateArgs("dlg_stolen"), as("svid-planner")...)...)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: peer_identity_mismatch: ") {
		t.Fatalf("alice's delegation over the planner's connection: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := u.size(as("svid-planner")...); got != size {
		t.Fatalf("the refused delegation changed the log size from %d to %d", size, got)
	}

	r = warrant(t, u.dir, u.env, "checkpoint")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: unavailable: ") {
		t.Fatalf("checkpoint without a client certificate: exit %d, stderr %q", r.code, r.stderr)
	}
	r = warrant(t, u.dir, u.env, append([]string{"checkpoint", "--tls-cert", "svid-alice.crt"}, "--tls-key", "")...)
	if r.code != 2 {
		t.Fatalf("--tls-cert without --tls-key: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestServeTLS: serve with --tls-cert and --tls-key only serves HTTPS; the
// CLI reaches it with --tls-ca (or WARRANT_TLS_CA) and refuses a server
// it cannot authenticate.
func TestServeTLS(t *testing.T) {
	u := newTLSUser(t)
	u.register("svid-registrar") // a client certificate the server does not ask for is not sent
	mustWarrant(t, u.dir, u.env, delegateArgs("dlg_root")...)
	if got := u.size(); got < 4 {
		t.Fatalf("log size %d after two bindings and a delegation", got)
	}
	env := append(u.env[:len(u.env):len(u.env)], "WARRANT_TLS_CA=")
	r := warrant(t, u.dir, env, "checkpoint")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: unavailable: ") || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("checkpoint without trusting the server's CA: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestServeRateLimitFlags: the CLI rides out a tight per-agent limit by
// retrying; bad limit or TLS flags are usage errors.
func TestServeRateLimitFlags(t *testing.T) {
	u := newTLSUser(t, "--agent-rate", "2", "--agent-burst", "1")
	u.register("svid-registrar") // the registrar is limited too: the second binding waits
	for _, id := range []string{"dlg_1", "dlg_2", "dlg_3"} {
		mustWarrant(t, u.dir, u.env, delegateArgs(id)...)
	}
	for _, args := range [][]string{
		{"--agent-burst", "0"},
		{"--agent-rate", "-1"},
		{"--client-ca", "ca.crt"},
		{"--tls-cert", "server.crt"},
		{"--tree-cache-mb", "-1"},
	} {
		r := warrant(t, u.dir, u.env, append([]string{"serve", "--listen", freeAddr(t), "--data", t.TempDir()}, args...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") {
			t.Errorf("serve %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

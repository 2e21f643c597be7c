package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A first run without stumbles: the mistakes a new user makes get an
// answer that says what to do, and nothing hangs.

// TestServePortTaken: a second serve on a taken address fails at once, on
// stderr, without creating a data directory.
func TestServePortTaken(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	startServer(t, dir, env, addr)
	for _, args := range [][]string{
		{"--data", "second"},
		{"--data", "second", "--listen", freeAddr(t), "--ops-listen", addr},
	} {
		r := warrant(t, dir, env, append([]string{"serve"}, args...)...)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "error: listen_failed: "+addr+": address in use") ||
			!strings.Contains(r.stderr, "is another warrant serve running?") {
			t.Errorf("serve %v on a taken address: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "second")); !os.IsNotExist(err) {
			t.Errorf("serve %v on a taken address created its data directory (%v)", args, err)
		}
	}
}

// TestREADMEQuickstartPortTaken runs the quickstart while another warrant
// serve holds its port (the Set-up's, say): the wait loop gives up and
// shows serve.log instead of waiting forever.
func TestREADMEQuickstartPortTaken(t *testing.T) {
	addr := freeAddr(t)
	other := t.TempDir()
	startServer(t, other, userEnv(t, other, addr), addr)

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", quickstartScript(t))
	cmd.Dir = dir
	cmd.Env = userEnv(t, dir, addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if ctx.Err() != nil {
		t.Fatalf("the quickstart hung with its port taken:\n%s", out)
	}
	if err == nil {
		t.Fatalf("the quickstart succeeded with its port taken:\n%s", out)
	}
	if !strings.Contains(string(out), "error: listen_failed: "+addr+": address in use (is another warrant serve running?") {
		t.Fatalf("the quickstart did not show serve.log's reason:\n%s", out)
	}
	if strings.Contains(string(out), "registered ") {
		t.Fatalf("the quickstart went on past the wait loop:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "warrant-data")); !os.IsNotExist(err) {
		t.Fatalf("serve created warrant-data although it could not listen (%v)", err)
	}
}

// TestErrorsSayWhatToDo: each setup mistake keeps its reason code and exit
// status, and its message names the fix.
func TestErrorsSayWhatToDo(t *testing.T) {
	e := newE2E(t)
	mustWarrant(t, e.dir, e.env, "keygen", "--out", "stranger")
	_, otherKey, err := note.GenerateKey(rand.Reader, "other.example/log")
	if err != nil {
		t.Fatal(err)
	}
	down := freeAddr(t)
	hostPort := strings.TrimPrefix(e.url(), "http://")
	for _, c := range []struct {
		name   string
		env    []string
		args   []string
		code   int
		prefix string
		want   []string
	}{
		{"unreachable server", nil, []string{"checkpoint", "--server", "http://" + down},
			1, "error: unavailable: ", []string{"http://" + down, "--server", "WARRANT_SERVER", "`warrant serve`"}},
		{"--server without scheme", nil, []string{"checkpoint", "--server", hostPort},
			2, "error: usage: ", []string{"http://" + hostPort}},
		{"WARRANT_SERVER without scheme", []string{"WARRANT_SERVER=" + hostPort}, []string{"checkpoint"},
			2, "error: usage: ", []string{"WARRANT_SERVER", "http://" + hostPort}},
		{"serve --tokens on all interfaces without --token-issuer", nil, []string{"serve", "--tokens", "--listen", "0.0.0.0:0", "--data", "tokens-data"},
			2, "error: usage: ", []string{"--token-issuer URL", "0.0.0.0:0", "Host header"}},
		{"serve --token-issuer not a URL", nil, []string{"serve", "--tokens", "--listen", "0.0.0.0:0", "--data", "tokens-data", "--token-issuer", "warrant.example"},
			2, "error: usage: ", []string{"--token-issuer", "http(s) URL"}},
		{"--log-key file without @", nil, []string{"checkpoint", "--log-key", "warrant-data/log.vkey"},
			2, "error: usage: ", []string{"--log-key @warrant-data/log.vkey"}},
		{"--log-key path without @", nil, []string{"checkpoint", "--log-key", "elsewhere/log.vkey"},
			2, "error: usage: ", []string{"--log-key @elsewhere/log.vkey"}},
		{"wrong log key", nil, []string{"checkpoint", "--log-key", otherKey},
			1, "error: checkpoint_signature_invalid: ", []string{
				"signs the log \"" + strings.SplitN(e.vkey, "+", 2)[0] + "\"", "is the key of other.example/log+", "--log-key @FILE"}},
		{"unknown registrar", nil, []string{"register", "--registrar-key", "stranger.key", "--agent", "spiffe://example.org/agent/x", "--pub", "stranger.pub"},
			1, "error: registrar_unknown: ", []string{"`warrant serve --registrar-key PUB`"}},
		{"--ttl without unit", nil, []string{"delegate", "--key", "alice.key", "--issuer", alice, "--to", planner, "--task", "/t", "--ttl", "10"},
			2, "error: usage: ", []string{"--ttl 10m"}},
	} {
		r := warrant(t, e.dir, append(append([]string{}, e.env...), c.env...), c.args...)
		if r.code != c.code || !strings.HasPrefix(r.stderr, c.prefix) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and one line %s…", c.name, r.code, r.stdout, r.stderr, c.code, c.prefix)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: %q does not say %q", c.name, r.stderr, w)
			}
		}
	}

	// blast-radius: nothing to show is not_found; not an agent is usage.
	mustWarrant(t, e.dir, e.env, "delegate", "--key", "alice.key", "--issuer", alice, "--to", planner,
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "dlg_first")
	for _, c := range []struct {
		args   []string
		code   int
		prefix string
	}{
		{[]string{"blast-radius", "spiffe://example.org/agent/nobody"}, 1, "error: not_found: "},
		{[]string{"blast-radius", "spiffe://example.org/agent/nobody", "--json"}, 1, "error: not_found: "},
		{[]string{"blast-radius", planner, "--since", "2099-01-01T00:00:00Z"}, 1, "error: not_found: "},
		{[]string{"blast-radius", "planner"}, 2, "error: usage: "},
	} {
		if r := warrant(t, e.dir, e.env, c.args...); r.code != c.code || !strings.HasPrefix(r.stderr, c.prefix) || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, %s…", c.args, r.code, r.stdout, r.stderr, c.code, c.prefix)
		}
	}
	if out := mustWarrant(t, e.dir, e.env, "blast-radius", planner); !strings.Contains(out, "dlg_first") {
		t.Errorf("blast-radius %s: %q", planner, out)
	}

	// trace: the readable chain by default, the bundle with --json.
	out := mustWarrant(t, e.dir, e.env, "trace", "dlg_first")
	if !strings.HasPrefix(out, "the chain of dlg_first: 1 links") || !strings.Contains(out, "dlg_first: "+alice+" -> "+planner) || strings.Contains(out, "{") {
		t.Errorf("trace without --out printed %q, want the chain summary", out)
	}
	bundle := mustWarrant(t, e.dir, e.env, "trace", "dlg_first", "--json")
	var b struct {
		Format     string `json:"format"`
		Delegation string `json:"delegation"`
	}
	if strings.Count(bundle, "\n") != 1 || json.Unmarshal([]byte(bundle), &b) != nil || b.Format != "warrant-chain-bundle/v1" || b.Delegation != "dlg_first" {
		t.Fatalf("trace --json printed %.200q, want the bundle on one line", bundle)
	}
	path := filepath.Join(e.dir, "first.bundle")
	// The file --out would write: the bundle's canonical form has no newline.
	if err := os.WriteFile(path, []byte(strings.TrimSuffix(bundle, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustWarrant(t, e.dir, e.env, "verify", path); !strings.HasPrefix(out, "verified: the chain of dlg_first") {
		t.Errorf("verify of trace --json's bundle: %q", out)
	}
}

// runHere runs a command line in-process with no environment.
func runHere(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	env := &cmdEnv{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}
	code = run(context.Background(), env, args)
	return o.String(), e.String(), code
}

// descriptionColumns returns, for each "  NAME  description" line after
// header, the column where the description starts.
func descriptionColumns(t *testing.T, text, header string) map[int]bool {
	t.Helper()
	_, body, ok := strings.Cut(text, header+"\n")
	if !ok {
		t.Fatalf("no %q in %q", header, text)
	}
	cols := map[int]bool{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		rest := line[2:]
		gap := strings.Index(rest, "  ")
		if gap < 0 {
			t.Fatalf("%q: no two-space gap before the description", line)
		}
		cols[2+gap+len(rest[gap:])-len(strings.TrimLeft(rest[gap:], " "))] = true
	}
	return cols
}

// TestHelp: every command's -h prints its own usage once, with aligned
// columns, and exits 0; so does the top-level list.
func TestHelp(t *testing.T) {
	_, top, code := runHere("help")
	if code != 0 || len(descriptionColumns(t, top, "commands:")) != 1 {
		t.Errorf("warrant help: exit %d, columns not aligned:\n%s", code, top)
	}
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			stdout, stderr, code := runHere(c.name, h)
			name := c.name
			if name == "policy" {
				name = "policy set"
			}
			if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "usage: warrant "+name+" ") || strings.Count(stderr, "usage:") != 1 {
				t.Errorf("warrant %s %s: exit %d, stdout %q, stderr:\n%s", c.name, h, code, stdout, stderr)
				continue
			}
			if cols := descriptionColumns(t, stderr, "flags:"); len(cols) != 1 {
				t.Errorf("warrant %s %s: flag descriptions start at columns %v:\n%s", c.name, h, cols, stderr)
			}
		}
	}
	// What the help must say.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"siem", "-h"}, "--state string           required:"},
		{[]string{"verify", "-h"}, "PROOF is a C2SP tlog-proof"},
		{[]string{"verify", "-h"}, "BUNDLE a chain bundle"},
		{[]string{"restore", "-h"}, "--from FILE "},
		{[]string{"policy", "set", "--help"}, "usage: warrant policy set --key ADMIN_KEY FILE.cedar\n"},
	} {
		if _, stderr, _ := runHere(c.args...); !strings.Contains(stderr, c.want) || strings.Count(stderr, "usage:") != 1 {
			t.Errorf("warrant %v does not say %q:\n%s", c.args, c.want, stderr)
		}
	}
	// Usage errors are one line, exit 2, and say what is expected.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "--log-key", "x+00000000+AQ"}, "audit needs a source: --export FILE"},
		{[]string{"verify", "--log-key", "x+00000000+AQ"}, "a tlog-proof file (from warrant prove) or a chain bundle"},
		{[]string{"policy"}, "warrant policy set --key ADMIN_KEY FILE.cedar"},
		{[]string{"delegate", "--bogus"}, "run `warrant delegate -h`"},
	} {
		stdout, stderr, code := runHere(c.args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "error: usage: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("warrant %v: exit %d, stdout %q, stderr %q; want exit 2 and one line saying %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestVersion: `warrant version` prints the build information the go
// command recorded in the binary.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	out := mustWarrant(t, dir, env, "version")
	for _, want := range []string{"warrant ", "module    github.com/warrantlog/warrant\n", "go        " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("version printed %q, lacking %q", out, want)
		}
	}
	if alias := mustWarrant(t, dir, env, "--version"); alias != out {
		t.Errorf("--version printed %q, version %q", alias, out)
	}
	js := mustWarrant(t, dir, env, "version", "--json")
	var v versionInfo
	if strings.Count(js, "\n") != 1 || json.Unmarshal([]byte(js), &v) != nil {
		t.Fatalf("version --json printed %q", js)
	}
	if v.Version == "" || v.Module != "github.com/warrantlog/warrant" || v.Go != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version --json = %+v", v)
	}
	if v.Revision != "" && (len(v.Revision) < 40 || v.Time == "" || v.Modified == nil) { // stamped when built in a checkout with -buildvcs
		t.Errorf("version --json has partial VCS information: %+v", v)
	}
}

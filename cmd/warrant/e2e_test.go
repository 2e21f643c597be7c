package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/grpcreflect"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/merkleref"
	"github.com/warrantlog/warrant/proofs"
)

const (
	alice   = "spiffe://example.org/human/alice"
	planner = "spiffe://example.org/agent/planner"
)

// e2e is a user's working directory with keys and a running server.
type e2e struct {
	t    *testing.T
	dir  string
	addr string
	env  []string
	srv  *server
	vkey string
}

func newE2E(t *testing.T) *e2e {
	dir := t.TempDir()
	addr := freeAddr(t)
	e := &e2e{t: t, dir: dir, addr: addr, env: userEnv(t, dir, addr)}
	for _, k := range []string{"registrar", "alice", "planner"} {
		mustWarrant(t, dir, e.env, "keygen", "--out", k)
	}
	e.start()
	e.env = append(e.env, "WARRANT_LOG_KEY=@"+filepath.Join(dir, "warrant-data", "log.vkey"))
	mustWarrant(t, dir, e.env, "register", "--registrar-key", "registrar.key", "--agent", alice, "--pub", "alice.pub", "--human")
	mustWarrant(t, dir, e.env, "register", "--tier", "execute", "--registrar-key", "registrar.key", "--pub", "planner.pub", "--agent", planner)
	return e
}

func (e *e2e) start() {
	e.srv = startServer(e.t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub")
	vkey, err := os.ReadFile(filepath.Join(e.dir, "warrant-data", "log.vkey"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.vkey = strings.TrimSpace(string(vkey))
}

func (e *e2e) url() string { return "http://" + e.addr }

// checkpointSize reads /checkpoint and verifies it with x/mod's note
// package alone, parsing the C2SP body by hand: an independent verifier.
func (e *e2e) checkpointSize() (uint64, []byte) {
	e.t.Helper()
	resp, err := http.Get(e.url() + "/checkpoint")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		e.t.Fatalf("/checkpoint Content-Type %q", ct)
	}
	v, err := note.NewVerifier(e.vkey)
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := note.Open(body, note.VerifierList(v))
	if err != nil {
		e.t.Fatalf("/checkpoint does not verify: %v\n%s", err, body)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != v.Name() || lines[3] != "" {
		e.t.Fatalf("checkpoint body %q is not origin/size/root", n.Text)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		e.t.Fatal(err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		e.t.Fatalf("root %q: %v", lines[2], err)
	}
	return size, root
}

type appended struct {
	ID    string `json:"id"`
	Index uint64 `json:"index"`
}

func (e *e2e) delegate(state string, extra ...string) appended {
	e.t.Helper()
	args := append([]string{"delegate", "--key", "alice.key", "--issuer", alice, "--to", planner,
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--json", "--state", state}, extra...)
	out := mustWarrant(e.t, e.dir, e.env, args...)
	if strings.Count(out, "\n") != 1 {
		e.t.Fatalf("--json printed more than one line: %q", out)
	}
	var a appended
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.ID == "" {
		e.t.Fatalf("delegate --json: %q: %v", out, err)
	}
	return a
}

// TestEndToEnd walks the life of a log as users and adversaries see it:
// concurrent client processes with their own trusted state, an independent
// check of checkpoints and proofs, bad requests, restarts and a crash.
func TestEndToEnd(t *testing.T) {
	e := newE2E(t)

	// Concurrent client processes, each with its own state file.
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			state := filepath.Join(e.dir, fmt.Sprintf("state%d", p))
			for i := 0; i < 5; i++ {
				a := e.delegate(state)
				mu.Lock()
				if prev, dup := acked[a.Index]; dup {
					t.Errorf("index %d acknowledged twice (%s, %s)", a.Index, prev, a.ID)
				}
				acked[a.Index] = a.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(acked) != 20 {
		t.Fatalf("%d acknowledged appends, want 20", len(acked))
	}
	size, _ := e.checkpointSize()
	if size != 24 {
		t.Fatalf("log size %d, want 24 (config, policy, 2 bindings, 20 delegations)", size)
	}

	// Every acknowledged entry, as exact bytes.
	leaves := map[uint64][]byte{}
	for idx, id := range acked {
		raw := mustWarrant(t, e.dir, e.env, "get", strconv.FormatUint(idx, 10), "--raw", "--state", filepath.Join(e.dir, "state0"))
		p, err := proofs.ParseLeaf([]byte(raw))
		if err != nil || p.ID() != id {
			t.Fatalf("entry %d: %v, id %q want %q", idx, err, p.ID(), id)
		}
		leaves[idx] = []byte(raw)
	}

	// prove output, checked with an independent RFC 6962 implementation.
	var some uint64
	for idx := range acked {
		some = idx
		break
	}
	proofPath := filepath.Join(e.dir, "one.proof")
	mustWarrant(t, e.dir, e.env, "prove", acked[some], "--out", proofPath)
	checkProofIndependently(t, e.vkey, proofPath, leaves[some])
	out := mustWarrant(t, e.dir, e.env, "verify", proofPath, "--json")
	var vr struct {
		ID       string `json:"id"`
		Index    uint64 `json:"index"`
		Verified bool   `json:"verified"`
	}
	if err := json.Unmarshal([]byte(out), &vr); err != nil || !vr.Verified || vr.Index != some || vr.ID != acked[some] {
		t.Fatalf("verify --json = %q", out)
	}

	// Bad requests write nothing.
	t.Run("bad requests", func(t *testing.T) { e.badRequests(t) })

	// Protocols on the one port.
	t.Run("protocols", func(t *testing.T) { e.protocols(t) })

	// Restart with the same flags: nothing appended, nothing changed, the
	// new checkpoint consistent with every client's trusted state.
	sizeBefore, rootBefore := e.checkpointSize()
	e.srv.kill(syscall.SIGTERM)
	e.start()
	if s, r := e.checkpointSize(); s != sizeBefore || !bytes.Equal(r, rootBefore) {
		t.Fatalf("restart changed the log: %d/%x -> %d/%x", sizeBefore, rootBefore, s, r)
	}
	a := e.delegate(filepath.Join(e.dir, "state1"))
	e.srv.kill(syscall.SIGKILL)
	e.start()
	if s, _ := e.checkpointSize(); s != a.Index+1 {
		t.Fatalf("after kill -9: size %d, want %d", s, a.Index+1)
	}
	for idx, want := range leaves {
		got := mustWarrant(t, e.dir, e.env, "get", strconv.FormatUint(idx, 10), "--raw", "--state", filepath.Join(e.dir, "state2"))
		if got != string(want) {
			t.Fatalf("entry %d changed across restarts", idx)
		}
	}
	for p := 0; p < 4; p++ {
		mustWarrant(t, e.dir, e.env, "checkpoint", "--state", filepath.Join(e.dir, fmt.Sprintf("state%d", p)))
	}
}

// checkProofIndependently parses a tlog-proof by hand and checks it with
// x/mod's note and the naive RFC 6962 reference.
func checkProofIndependently(t *testing.T, vkey, path string, leaf []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, cp, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		t.Fatalf("tlog-proof has no blank line: %q", data)
	}
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "extra ") || !strings.HasPrefix(lines[2], "index ") {
		t.Fatalf("tlog-proof header: %q", lines)
	}
	extra, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
	if !bytes.Equal(extra, leaf) {
		t.Fatal("tlog-proof extra is not the entry's leaf")
	}
	index, _ := strconv.Atoi(strings.TrimPrefix(lines[2], "index "))
	var path2 [][]byte
	for _, l := range lines[3:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		path2 = append(path2, h)
	}
	v, _ := note.NewVerifier(vkey)
	n, err := note.Open([]byte(cp), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint in the proof: %v", err)
	}
	body := strings.Split(n.Text, "\n")
	size, _ := strconv.Atoi(body[1])
	root, _ := base64.StdEncoding.DecodeString(body[2])
	if got := merkleref.RootFromInclusion(index, size, merkleref.LeafHash(leaf), path2); !bytes.Equal(got, root) {
		t.Fatal("the inclusion proof does not lead to the checkpoint root")
	}
}

// connectPost makes a Connect unary call with the JSON codec and returns
// the HTTP status and the decoded body.
func connectPost(t *testing.T, url, procedure string, msg any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(msg)
	resp, err := http.Post(url+procedure, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func (e *e2e) badRequests(t *testing.T) {
	size, _ := e.checkpointSize()
	sign := func(keyFile, typ string, payload []byte) []byte {
		b, err := os.ReadFile(filepath.Join(e.dir, keyFile))
		if err != nil {
			t.Fatal(err)
		}
		s, err := client.LoadSigner(b)
		if err != nil {
			t.Fatal(err)
		}
		env, err := s.SignEnvelope(typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	now := time.Now()
	payload, _ := proofs.MarshalPayload(&proofs.Delegation{
		ID: "dlg_bad", Issuer: alice, Delegate: planner, RootSubject: alice, Task: "/tickets",
		NotBefore: proofs.FormatTime(now), ExpiresAt: proofs.FormatTime(now.Add(time.Hour)), Nonce: "nonce-bad-00001",
	})
	good := sign("alice.key", proofs.PayloadTypeDelegation, payload)
	aliceKeyID := between(string(good), `"keyid":"`, `"`)
	forged := sign("planner.key", proofs.PayloadTypeDelegation, payload)
	forged = []byte(strings.Replace(string(forged), between(string(forged), `"keyid":"`, `"`), aliceKeyID, 1))
	misTyped := sign("alice.key", proofs.PayloadTypeAgent, payload)
	big := bytes.Repeat([]byte("a"), 40<<10)
	huge := bytes.Repeat([]byte("a"), 100<<10)
	cases := []struct {
		name   string
		env    []byte
		status int
		code   string
		reason string
	}{
		{"forged", forged, 401, "unauthenticated", "signature_invalid"},
		{"wrong payload type", misTyped, 400, "invalid_argument", "payload_malformed"},
		{"oversized envelope", big, 400, "invalid_argument", "envelope_too_large"},
		{"oversized request", huge, 429, "resource_exhausted", ""},
		{"malformed", []byte(`{"payloadType":`), 400, "invalid_argument", "envelope_malformed"},
		{"unknown field", []byte(strings.Replace(string(good), `"payload":`, `"extra":1,"payload":`, 1)), 400, "invalid_argument", "envelope_malformed"},
	}
	for _, tc := range cases {
		status, body := connectPost(t, e.url(), "/warrant.v1.LedgerService/Append", map[string]any{"envelope": tc.env})
		if status != tc.status || body["code"] != tc.code {
			t.Errorf("%s: HTTP %d %v, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
		if tc.reason != "" {
			if d := fmt.Sprint(body["details"]); !strings.Contains(d, "ErrorDetail") {
				t.Errorf("%s: no ErrorDetail in %v", tc.name, body)
			}
		}
	}
	// The CLI prints the reason: a denial exits 1 with error: <code>:.
	r := warrant(t, e.dir, e.env, "delegate", "--key", "alice.key", "--issuer", alice, "--to", planner,
		"--task", "/tickets", "--ttl", "1h", "--id", "dlg_twice")
	if r.code != 0 {
		t.Fatalf("first dlg_twice: %+v", r)
	}
	size++
	r = warrant(t, e.dir, e.env, "delegate", "--key", "alice.key", "--issuer", alice, "--to", planner,
		"--task", "/tickets", "--ttl", "1h", "--id", "dlg_twice", "--json")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: id_reused: ") || r.stdout != "" {
		t.Fatalf("reused id: exit %d stdout %q stderr %q; want exit 1, error: id_reused:, no stdout", r.code, r.stdout, r.stderr)
	}
	size++ // the denial is on the record
	r = warrant(t, e.dir, e.env, "delegate", "--key", "planner.key", "--issuer", alice, "--to", planner, "--task", "/tickets", "--ttl", "1h")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: signature_missing: ") {
		t.Fatalf("signing as someone else: exit %d stderr %q", r.code, r.stderr)
	}
	if r := warrant(t, e.dir, e.env, "delegate", "--issuer", alice); r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") {
		t.Fatalf("usage error: exit %d stderr %q; want 2, error: usage:", r.code, r.stderr)
	}
	if got, _ := e.checkpointSize(); got != size {
		t.Fatalf("log size %d after bad requests, want %d", got, size)
	}
	// Flags after the positional argument; --json carries id and index.
	out := mustWarrant(t, e.dir, e.env, "get", "dlg_twice", "--json")
	var g struct {
		ID      string         `json:"id"`
		Index   uint64         `json:"index"`
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.ID != "dlg_twice" || g.Payload["issuer"] != alice {
		t.Fatalf("get --json = %q", out)
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from) + len(from)
	j := strings.Index(s[i:], to)
	return s[i : i+j]
}

func (e *e2e) protocols(t *testing.T) {
	ctx := context.Background()
	v, _ := proofs.ParseVerifierKey(e.vkey)
	h2c := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		return &p
	}()}}
	c := client.New(e.url(), v, client.WithGRPC(), client.WithHTTPClient(h2c))
	if _, err := c.Checkpoint(ctx); err != nil {
		t.Fatalf("gRPC over h2c: %v", err)
	}
	// gRPC-Web: an empty GetCheckpointRequest in one frame.
	req, _ := http.NewRequest("POST", e.url()+"/warrant.v1.LedgerService/GetCheckpoint", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("grpc-status: 0")) || !bytes.Contains(body, []byte(v.Name())) {
		t.Fatalf("gRPC-Web: HTTP %d %q", resp.StatusCode, body)
	}
	// Health.
	status, hb := connectPost(t, e.url(), "/grpc.health.v1.Health/Check", map[string]any{"service": "warrant.v1.LedgerService"})
	if status != 200 || hb["status"] != "SERVING_STATUS_SERVING" {
		t.Fatalf("health: %d %v", status, hb)
	}
	// Reflection.
	stream := grpcreflect.NewClient(h2c, e.url()).NewStream(ctx)
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == "warrant.v1.LedgerService"
	}
	if !found {
		t.Fatalf("reflection lists %v", names)
	}
}

// TestForkIsDetected serves, with the same log key, a copy of the log that
// diverged; a client that trusted the original refuses it and keeps its
// state.
func TestForkIsDetected(t *testing.T) {
	e := newE2E(t)
	state := filepath.Join(e.dir, "state")
	e.delegate(state)
	e.srv.kill(syscall.SIGTERM)
	// A copy of the data dir, with the same key, taken now.
	fork := filepath.Join(e.dir, "fork")
	if out, err := exec.Command("cp", "-a", filepath.Join(e.dir, "warrant-data"), fork).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	e.start()
	e.delegate(state, "--id", "dlg_original")
	before, _ := os.ReadFile(state)
	e.srv.kill(syscall.SIGTERM)

	// The fork appends something else and is served at the same address.
	e.srv = startServer(t, e.dir, e.env, e.addr, "--data", fork, "--registrar-key", "registrar.pub")
	e.delegate(filepath.Join(e.dir, "fork-state"), "--id", "dlg_forked", "--scope", "tickets:write")
	e.delegate(filepath.Join(e.dir, "fork-state"), "--id", "dlg_forked2")
	r := warrant(t, e.dir, e.env, "checkpoint", "--state", state)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: fork_detected: ") {
		t.Fatalf("checkpoint against a fork: exit %d stderr %q", r.code, r.stderr)
	}
	after, _ := os.ReadFile(state)
	if !bytes.Equal(before, after) {
		t.Fatal("the trusted state changed after a fork was detected")
	}
}

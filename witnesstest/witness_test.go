package witnesstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/witness/persistence/inmemory"
	"github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// warrantBin is the warrant binary, built from the main module (its own
// go.mod and versions), as users run it.
var warrantBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warrant-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	warrantBin = filepath.Join(dir, "warrant")
	build := exec.Command("go", "build", "-o", warrantBin, "./cmd/warrant")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building warrant: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// realWitness is a transparency-dev witness serving C2SP tlog-witness on
// loopback, following one log.
type realWitness struct {
	w      *witness.Witness
	url    string
	name   string
	vkey   string // its cosignature verifier key
	policy string // a tlog-policy requiring this witness
}

func startWitness(t *testing.T, name string, logKey note.Verifier) *realWitness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return startWitnessWith(t, name, signer, cv, logKey)
}

// startMLDSAWitness starts a witness whose key is ML-DSA-44: it cosigns
// with C2SP tlog-cosignature's subtree/v1 type.
func startMLDSAWitness(t *testing.T, name string, logKey note.Verifier) *realWitness {
	t.Helper()
	skey, vkey, err := fnote.GenerateMLDSAKey(name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return startWitnessWith(t, name, signer, vkey, logKey)
}

// startWitnessWith starts a witness signing with signer, whose
// cosignature verifier key is cv.
func startWitnessWith(t *testing.T, name string, signer note.Signer, cv string, logKey note.Verifier) *realWitness {
	t.Helper()
	ctx := context.Background()
	w, err := witness.New(ctx, witness.Opts{
		Persistence: inmemory.New(),
		Signers:     []note.Signer{signer},
		VerifierForLog: func(_ context.Context, origin string) (note.Verifier, bool, error) {
			return logKey, origin == logKey.Name(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", witness.NewHTTPHandler(w).AddCheckpoint)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &realWitness{w: w, url: srv.URL, name: name, vkey: cv,
		policy: fmt.Sprintf("witness w %s %s\nquorum w\n", cv, srv.URL)}
}

// user runs the warrant binary as a user would, in dir.
type user struct {
	t   *testing.T
	dir string
	env []string
}

type result struct {
	stdout, stderr string
	code           int
}

func (u *user) run(args ...string) result {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, warrantBin, args...)
	cmd.Dir, cmd.Env = u.dir, u.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		u.t.Fatalf("running warrant %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func (u *user) must(args ...string) string {
	u.t.Helper()
	r := u.run(args...)
	if r.code != 0 {
		u.t.Fatalf("warrant %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// startServe runs `warrant serve` on a free loopback port and waits until
// it answers.
func startServe(t *testing.T, u *user, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(warrantBin, append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Dir, cmd.Env = u.dir, u.env
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// serve binds its port before it opens the log: it is ready when it
	// answers, not when the port accepts.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if resp, err := http.Get("http://" + addr + "/checkpoint"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("warrant serve did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWitnessCosignedCheckpoints drives a real warrant server's checkpoints
// through a real C2SP tlog-witness (transparency-dev's, in process): a
// proxy in front of the server sends each new checkpoint to the witness
// with add-checkpoint and a consistency proof, and passes it on with the
// witness's cosignature, as a witnessed log serves it. Every consumer of
// checkpoints must accept them, knowing the witness or not (C2SP
// signed-note: signatures by unknown keys are ignored): the CLI's trusted
// state, `verify` of a tlog-proof and of a chain bundle (where, under a
// witness policy, the cosignature must count), the SIEM follower and
// audit, online and from an export.
func TestWitnessCosignedCheckpoints(t *testing.T) {
	dir := t.TempDir()
	u := &user{t: t, dir: dir, env: append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir,
		"WARRANT_SERVER=", "WARRANT_LOG_KEY=", "WARRANT_LISTEN=")}
	for _, k := range []string{"registrar", "alice", "planner", "executor"} {
		u.must("keygen", "--out", k)
	}
	server := startServe(t, u, "--registrar-key", "registrar.pub")
	vkeyPath := filepath.Join(dir, "warrant-data", "log.vkey")
	vkey, err := os.ReadFile(vkeyPath)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := proofs.ParseVerifierKey(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	w := startWitness(t, "witness.example/w1", logKey)
	wp, handler := newWitnessingProxy(t, server, logKey, w.url)
	proxy := httptest.NewServer(handler)
	t.Cleanup(proxy.Close)
	u.env = append(u.env, "WARRANT_SERVER="+proxy.URL, "WARRANT_LOG_KEY=@"+vkeyPath)
	policy := filepath.Join(dir, "witness.policy")
	if err := os.WriteFile(policy, []byte(w.policy), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "trusted.checkpoint")
	cosigned := func(what string, note []byte) {
		t.Helper()
		if !bytes.Contains(note, []byte("\n\u2014 "+w.name+" ")) {
			t.Fatalf("%s carries no cosignature by %s:\n%.2000s", what, w.name, note)
		}
	}

	// The CLI's trusted state: every command below goes through it, each
	// answer's checkpoint cosigned by a witness the CLI does not know.
	u.must("register", "--state", state, "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/human/alice", "--pub", "alice.pub", "--human")
	for _, a := range []string{"planner", "executor"} {
		u.must("register", "--state", state, "--tier", "execute", "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/agent/"+a, "--pub", a+".pub")
	}
	u.must("delegate", "--state", state, "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/planner",
		"--task", "/tickets", "--scope", "tickets:read", "--scope", "tickets:write", "--ttl", "1h", "--id", "dlg_root")
	u.must("delegate", "--state", state, "--key", "planner.key", "--issuer", "spiffe://example.org/agent/planner", "--to", "spiffe://example.org/agent/executor",
		"--parent", "dlg_root", "--task", "/tickets", "--scope", "tickets:read", "--ttl", "14m", "--id", "dlg_a")
	var cp struct {
		Size       uint64 `json:"size"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(u.must("checkpoint", "--state", state, "--json")), &cp); err != nil {
		t.Fatal(err)
	}
	cosigned("`warrant checkpoint`", []byte(cp.Checkpoint))
	trusted, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	cosigned("the trusted state", trusted)
	// The witness cosigned the log as it grew, and holds its latest size.
	latest, err := w.w.GetCheckpoint(context.Background(), logKey.Name())
	if err != nil {
		t.Fatal(err)
	}
	if wcp, err := proofs.OpenCheckpoint(latest, logKey); err != nil || wcp.Size != cp.Size {
		t.Fatalf("the witness's latest checkpoint: %v, %v; want size %d", wcp, err, cp.Size)
	}

	// The Go SDK's trusted state, in a file, with the same checkpoints.
	sdkState := filepath.Join(dir, "sdk.checkpoint")
	c := client.New(proxy.URL, logKey, client.WithState(client.FileState{Path: sdkState}))
	if _, err := c.Delegation(context.Background(), "dlg_root"); err != nil {
		t.Fatalf("SDK: %v", err)
	}
	if got, err := c.Checkpoint(context.Background()); err != nil || got.Size != cp.Size {
		t.Fatalf("SDK checkpoint: %v, %v", got, err)
	}
	sdkTrusted, _ := os.ReadFile(sdkState)
	cosigned("the SDK's trusted state", sdkTrusted)

	// A tlog-proof whose checkpoint is cosigned verifies offline.
	proofPath := filepath.Join(dir, "dlg_a.tlog")
	u.must("prove", "--state", state, "dlg_a", "--out", proofPath)
	proofFile, _ := os.ReadFile(proofPath)
	cosigned("the tlog-proof", proofFile)
	if out := u.must("verify", proofPath); !strings.Contains(out, "verified: entry") {
		t.Fatalf("verify of a cosigned tlog-proof:\n%s", out)
	}
	if _, err := proofs.VerifyTLogProof(proofFile, logKey); err != nil {
		t.Fatalf("proofs.VerifyTLogProof: %v", err)
	}

	// A chain bundle whose checkpoints are cosigned verifies without a
	// witness policy (the witness is unknown: ignored) and under one that
	// requires the witness (its cosignature counts), but not under a policy
	// requiring a witness that did not cosign.
	bundlePath := filepath.Join(dir, "dlg_a.bundle")
	u.must("trace", "--state", state, "dlg_a", "--out", bundlePath)
	bundle, _ := os.ReadFile(bundlePath)
	b, err := proofs.ParseBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range b.Proofs {
		cosigned(fmt.Sprintf("the chain bundle's proof %d", i), []byte(p))
	}
	for _, args := range [][]string{{"verify", bundlePath}, {"verify", bundlePath, "--witness-policy", policy}} {
		if out := u.must(args...); !strings.Contains(out, "verified: the chain of dlg_a, 2 links") {
			t.Fatalf("%v:\n%s", args, out)
		}
	}
	// A forged cosignature under the witness's name and key hash: ignored
	// by a verifier that does not know the witness, refused by one that
	// does (a known key's signature must verify).
	for i, p := range b.Proofs {
		at := strings.Index(p, "\u2014 "+w.name+" ") + len("\u2014 "+w.name+" ") + 20
		c := "A"
		if p[at] == 'A' {
			c = "B"
		}
		b.Proofs[i] = p[:at] + c + p[at+1:]
	}
	forged := filepath.Join(dir, "forged.bundle")
	os.WriteFile(forged, b.Marshal(), 0o644)
	u.must("verify", forged)
	if r := u.run("verify", forged, "--witness-policy", policy); r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonCheckpointSignature+": ") {
		t.Fatalf("bundle with a forged cosignature under the witness policy: exit %d %q", r.code, r.stderr)
	}
	other := startWitness(t, "witness.example/w2", logKey)
	otherPolicy := filepath.Join(dir, "other.policy")
	os.WriteFile(otherPolicy, []byte(other.policy), 0o644)
	if r := u.run("verify", bundlePath, "--witness-policy", otherPolicy); r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonBundleWitness+": ") {
		t.Fatalf("bundle under a policy requiring another witness: exit %d %q", r.code, r.stderr)
	}
	// The same bundle as the log signed it, straight from the server,
	// carries no cosignature: the policy refuses it.
	plain := filepath.Join(dir, "plain.bundle")
	u.must("trace", "--server", server, "--state", filepath.Join(dir, "plain.checkpoint"), "dlg_a", "--out", plain)
	if r := u.run("verify", plain, "--witness-policy", policy); r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonBundleWitness+": ") {
		t.Fatalf("uncosigned bundle under the witness policy: exit %d %q", r.code, r.stderr)
	}

	// The SIEM follower: every entry once, and it resumes from its state,
	// whose checkpoint is cosigned, after the log grows.
	siemState, events := filepath.Join(dir, "siem.state"), filepath.Join(dir, "events.jsonl")
	u.must("siem", "--state", siemState, "--once", "--out", events)
	st, _ := os.ReadFile(siemState)
	cosigned("the SIEM state", []byte(jsonString(t, st, "checkpoint")))
	u.must("delegate", "--state", state, "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/executor",
		"--task", "/billing", "--ttl", "1h", "--id", "dlg_other")
	u.must("siem", "--state", siemState, "--once", "--out", events)
	out, _ := os.ReadFile(events)
	if n := bytes.Count(out, []byte("\n")); n != int(cp.Size)+1 {
		t.Fatalf("SIEM: %d events for %d entries", n, cp.Size+1)
	}

	// Following: the checkpoint feed (a stream, each message cosigned, its
	// timestamp the log's own) and then the entries; a new entry arrives.
	followEvents := filepath.Join(dir, "follow.jsonl")
	follow := exec.Command(warrantBin, "siem", "--state", filepath.Join(dir, "follow.state"), "--out", followEvents)
	follow.Dir, follow.Env = u.dir, u.env
	var followErr bytes.Buffer
	follow.Stderr = &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { follow.Wait(); close(exited) }()
	t.Cleanup(func() { follow.Process.Kill(); <-exited })
	waitLines := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; {
			got, _ := os.ReadFile(followEvents)
			if bytes.Count(got, []byte("\n")) >= n {
				return
			}
			select {
			case <-exited:
				t.Fatalf("siem exited: %s", followErr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("siem (following) wrote %d events, want %d: %s", bytes.Count(got, []byte("\n")), n, followErr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLines(int(cp.Size) + 1)
	u.must("delegate", "--state", state, "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/planner",
		"--task", "/billing", "--ttl", "1h", "--id", "dlg_last")
	waitLines(int(cp.Size) + 2)
	if wp.streamedMessages() == 0 {
		t.Fatal("siem followed without the checkpoint feed")
	}

	// Audit, online (through the trusted state) and from an export whose
	// checkpoint is cosigned.
	var rep proofs.AuditReport
	if err := json.Unmarshal([]byte(u.must("audit", "--state", state, "--json")), &rep); err != nil || !rep.Verified {
		t.Fatalf("audit: %+v %v", rep, err)
	}
	exportPath := filepath.Join(dir, "log.export")
	u.must("export", "--state", state, "--out", exportPath)
	export, _ := os.ReadFile(exportPath)
	cosigned("the export", export)
	if out := u.must("audit", "--state", state, "--export", exportPath); !strings.Contains(out, "verified: the entries hash to the signed checkpoint") {
		t.Fatalf("audit --export:\n%s", out)
	}
}

// jsonString reads a string field of a JSON object.
func jsonString(t *testing.T, data []byte, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[field].(string)
	return s
}

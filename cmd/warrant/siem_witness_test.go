package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/ocsfschema"
	"github.com/warrantlog/warrant/proofs"
)

// startLiteWitness runs torchwood's litewitness (env WARRANT_LITEWITNESS,
// witnessctl next to it) knowing the log of logVKey, its key in an
// in-process ssh-agent. It returns the witness's URL and its cosignature
// verifier key.
func startLiteWitness(t *testing.T, name, logVKey string) (url, vkey string) {
	t.Helper()
	lw := os.Getenv("WARRANT_LITEWITNESS")
	if lw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("WARRANT_LITEWITNESS is not set: CI must install filippo.io/torchwood/cmd/litewitness and witnessctl @v0.9.0")
		}
		t.Skip("WARRANT_LITEWITNESS is not set (the path of torchwood's litewitness, witnessctl next to it)")
	}
	ctl := filepath.Join(filepath.Dir(lw), "witnessctl")
	dir, err := os.MkdirTemp("", "lw") // short: the socket path must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "a.sock")
	agentLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentLn.Close() })
	go func() {
		for {
			c, err := agentLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(keyring, c) }()
		}
	}()
	vk, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	if vkey, err = fnote.VKeyToCosignatureV1(vk); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	origin, _, _ := strings.Cut(logVKey, "+")
	for _, args := range [][]string{
		{"add-log", "-db", db, "-origin", origin},
		{"add-key", "-db", db, "-origin", origin, "-key", logVKey},
	} {
		if out, err := exec.Command(ctl, args...).CombinedOutput(); err != nil {
			t.Fatalf("witnessctl %v: %v\n%s", args, err, out)
		}
	}
	addr := freeAddr(t)
	var stderr bytes.Buffer
	cmd := exec.Command(lw, "-db", db, "-name", name, "-key", ssh.FingerprintSHA256(sshPub), "-ssh-agent", sock, "-listen", addr)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "http://" + addr, vkey
		}
		if time.Now().After(deadline) {
			t.Fatalf("litewitness did not start: %s", stderr.String())
		}
	}
}

// witnessReport reads a server's GET /witnesses.
func witnessReport(t *testing.T, addr string) proofs.WitnessReport {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/witnesses")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r proofs.WitnessReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Witnesses) == 0 {
		t.Fatalf("GET /witnesses: %d %v", resp.StatusCode, err)
	}
	return r
}

// waitUntil polls cond until it holds, failing after a generous bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// witnessAlerts returns the witness_conflict records of a sink file.
func witnessAlerts(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, client.ReasonWitnessConflict) {
			out = append(out, line)
		}
	}
	return out
}

// TestSIEMWitnessConflictAlert: a witness that cosigned a fork of the log
// (a second log holding the same key, grown beyond the first) answers the
// real log's checkpoints with 409 and its larger size: a conflict the
// server reports at GET /witnesses. `warrant siem` turns it into one alert
// (a valid OCSF 1.3.0 Detection Finding, severity High, naming the witness
// and saying the report is the server's), exits 0, and does not alert
// again on the same conflict: not on another --once run with the same
// state, nor while following, although the server retries the witness and
// its last_error_at keeps changing. A fresh state alerts once more.
func TestSIEMWitnessConflictAlert(t *testing.T) {
	schema, err := ocsfschema.Load(filepath.Join("..", "..", "siem", "testdata", "ocsf-1.3.0"))
	if err != nil {
		t.Fatal(err)
	}
	e := newE2E(t)
	e.delegate(filepath.Join(e.dir, "s"))
	e.srv.kill(syscall.SIGTERM)
	fork := filepath.Join(e.dir, "fork")
	if out, err := exec.Command("cp", "-a", filepath.Join(e.dir, "warrant-data"), fork).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	wURL, wKey := startLiteWitness(t, "witness.example/w1", e.vkey)
	policy := filepath.Join(e.dir, "witnesses.policy")
	if err := os.WriteFile(policy, []byte("witness w1 "+wKey+" "+wURL+"\nquorum w1\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The fork, witnessed, grows beyond the log.
	e.srv = startServer(t, e.dir, e.env, e.addr, "--data", fork, "--registrar-key", "registrar.pub", "--witness-policy", policy)
	e.delegate(filepath.Join(e.dir, "fs"), "--id", "dlg_forked")
	e.delegate(filepath.Join(e.dir, "fs"), "--id", "dlg_forked2")
	forkSize := witnessReport(t, e.addr).Size
	waitUntil(t, "the witness to cosign the fork", func() bool { return witnessReport(t, e.addr).Witnesses[0].CosignedSize == forkSize })
	e.srv.kill(syscall.SIGTERM)

	// The log itself, smaller: the witness holds a size it never signed.
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--witness-policy", policy)
	waitUntil(t, "the server to report the conflict", func() bool { return witnessReport(t, e.addr).Witnesses[0].LastErrorKind == "conflict" })

	state, events := filepath.Join(e.dir, "siem.state"), filepath.Join(e.dir, "events.jsonl")
	r := warrant(t, e.dir, e.env, "siem", "--state", state, "--once", "--out", events, "--json")
	if r.code != 0 || !strings.Contains(r.stderr, `"witness_alerts":1`) {
		t.Fatalf("siem --once: exit %d, stderr %q", r.code, r.stderr)
	}
	alerts := witnessAlerts(t, events)
	if len(alerts) != 1 {
		t.Fatalf("%d witness alerts, want 1:\n%s", len(alerts), strings.Join(alerts, "\n"))
	}
	if err := schema.Validate([]byte(alerts[0])); err != nil {
		t.Fatalf("the alert is not valid OCSF 1.3.0: %v\n%s", err, alerts[0])
	}
	var rec struct {
		ClassUID   int `json:"class_uid"`
		SeverityID int `json:"severity_id"`
		Unmapped   struct {
			Witness    string `json:"witness"`
			Kind       string `json:"witness_error_kind"`
			ReportedBy string `json:"reported_by"`
		} `json:"unmapped"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(alerts[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ClassUID != 2004 || rec.SeverityID != 4 || rec.Unmapped.Witness != "w1" || rec.Unmapped.Kind != "conflict" ||
		rec.Unmapped.ReportedBy != "server" || !strings.Contains(rec.Message, "not verified") {
		t.Fatalf("alert %s", alerts[0])
	}
	// Every entry was emitted too: the conflict stops nothing.
	if b, _ := os.ReadFile(events); bytes.Count(b, []byte("\n")) < 4 {
		t.Fatalf("events: %s", b)
	}

	// The same conflict, reported again with a later last_error_at: no
	// second alert.
	first := witnessReport(t, e.addr).Witnesses[0].LastErrorAt
	waitUntil(t, "the server to retry the witness", func() bool { return witnessReport(t, e.addr).Witnesses[0].LastErrorAt.After(first) })
	r = warrant(t, e.dir, e.env, "siem", "--state", state, "--once", "--out", events, "--json")
	if r.code != 0 || !strings.Contains(r.stderr, `"witness_alerts":0`) || len(witnessAlerts(t, events)) != 1 {
		t.Fatalf("siem --once again: exit %d, stderr %q, %d alerts", r.code, r.stderr, len(witnessAlerts(t, events)))
	}

	// Following, from a fresh state, in CEF: one alert, however many
	// reports.
	cef := filepath.Join(e.dir, "events.cef")
	follow := exec.Command(warrantBin, "siem", "--state", filepath.Join(e.dir, "follow.state"), "--out", cef, "--format", "cef", "--poll", "200ms")
	follow.Dir, follow.Env = e.dir, e.env
	var followErr bytes.Buffer
	follow.Stderr = &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	waitUntil(t, "the follower's alert", func() bool { return len(witnessAlerts(t, cef)) > 0 })
	seen := witnessReport(t, e.addr).Witnesses[0].LastErrorAt
	waitUntil(t, "another retry of the witness", func() bool { return witnessReport(t, e.addr).Witnesses[0].LastErrorAt.After(seen) })
	time.Sleep(time.Second) // five more polls
	if got := witnessAlerts(t, cef); len(got) != 1 || !strings.HasPrefix(got[0], "CEF:0|warrantlog|warrant|") || !strings.Contains(got[0], "|witness-conflict|") {
		t.Fatalf("following: %d witness alerts, want 1:\n%s\nstderr: %s", len(got), strings.Join(got, "\n"), followErr.String())
	}
	if follow.ProcessState != nil {
		t.Fatalf("the follower exited: %s", followErr.String())
	}
}

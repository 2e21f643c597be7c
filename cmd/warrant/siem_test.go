package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ocsfIDs reads an OCSF JSON-lines file and returns each record's event id
// (metadata.uid) in order, checking the class of every record.
func ocsfIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			ClassUID int `json:"class_uid"`
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: not JSON: %q", path, sc.Text())
		}
		if rec.ClassUID != 3005 && rec.ClassUID != 6003 && rec.ClassUID != 3001 {
			t.Fatalf("record of class %d: %s", rec.ClassUID, sc.Text())
		}
		ids = append(ids, rec.Metadata.UID)
	}
	return ids
}

// wantExactlyOnce checks that ids cover entries 0..size-1 of origin, in log
// order, each exactly once (dups allowed only when allowDups).
func wantExactlyOnce(t *testing.T, ids []string, origin string, size int, allowDups bool) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for i := 0; i < size; i++ {
		id := fmt.Sprintf("%s/%d", origin, i)
		switch {
		case seen[id] == 0:
			t.Fatalf("entry %d (%s) has no event", i, id)
		case seen[id] > 1 && !allowDups:
			t.Fatalf("entry %d has %d events", i, seen[id])
		}
	}
	if len(seen) != size {
		t.Fatalf("%d distinct events for %d entries", len(seen), size)
	}
	if !allowDups {
		for i, id := range ids {
			if id != fmt.Sprintf("%s/%d", origin, i) {
				t.Fatalf("event %d is %s: not in log order", i, id)
			}
		}
	}
}

func TestSIEMOnceAndResume(t *testing.T) {
	g := newGovernance(t)
	buildTree(t, g)
	state, out := filepath.Join(g.dir, "siem.state"), filepath.Join(g.dir, "events.jsonl")
	mustWarrant(t, g.dir, g.env, "siem", "--state", state, "--once", "--out", out)
	size, _ := g.checkpointSize()
	vkey := strings.SplitN(g.vkey, "+", 2)[0]
	wantExactlyOnce(t, ocsfIDs(t, out), vkey, int(size), false)
	g.mustAccept("alice", "a6", "--task", "/billing", "--ttl", "1h")
	mustWarrant(t, g.dir, g.env, "siem", "--state", state, "--once", "--out", out)
	size2, _ := g.checkpointSize()
	wantExactlyOnce(t, ocsfIDs(t, out), vkey, int(size2), false)
	// CEF and syslog render every entry too.
	for _, format := range []string{"cef", "syslog"} {
		got := mustWarrant(t, g.dir, g.env, "siem", "--state", filepath.Join(g.dir, format+".state"), "--once", "--format", format)
		if n := strings.Count(got, "\n"); n != int(size2) {
			t.Fatalf("%s: %d records for %d entries", format, n, size2)
		}
	}
}

// TestSIEMKilledAtRandom: a following SIEM process is killed with SIGKILL
// at random moments while the log grows and restarted each time; in the end
// no entry is lost, and duplicates (only across crashes) carry the same id.
func TestSIEMKilledAtRandom(t *testing.T) {
	g := newGovernance(t)
	g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "1h", "--id", "dlg_root")
	state, out := filepath.Join(g.dir, "siem.state"), filepath.Join(g.dir, "events.jsonl")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < 6; round++ {
		cmd := exec.Command(warrantBin, "siem", "--state", state, "--out", out, "--poll", "100ms")
		cmd.Dir, cmd.Env = g.dir, g.env
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "30m")
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	mustWarrant(t, g.dir, g.env, "siem", "--state", state, "--once", "--out", out)
	size, _ := g.checkpointSize()
	wantExactlyOnce(t, ocsfIDs(t, out), strings.SplitN(g.vkey, "+", 2)[0], int(size), true)
}

// hecReceiver is a Splunk HEC-compatible receiver on loopback TLS.
type hecReceiver struct {
	mu     sync.Mutex
	events []json.RawMessage
	token  string
}

func (h *hecReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Splunk "+h.token {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"text":"Invalid token","code":4}`)
		return
	}
	dec := json.NewDecoder(r.Body)
	var got []json.RawMessage
	for dec.More() {
		var ev struct {
			Event json.RawMessage `json:"event"`
		}
		if err := dec.Decode(&ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got = append(got, ev.Event)
	}
	h.mu.Lock()
	h.events = append(h.events, got...)
	h.mu.Unlock()
	io.WriteString(w, `{"text":"Success","code":0}`)
}

func TestSIEMToHEC(t *testing.T) {
	g := newGovernance(t)
	buildTree(t, g)
	recv := &hecReceiver{token: "test-token-123"}
	srv := httptest.NewTLSServer(recv)
	defer srv.Close()
	ca := filepath.Join(g.dir, "hec-ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	env := append(g.env, "WARRANT_HEC_TOKEN="+recv.token)
	r := warrant(t, g.dir, env, "siem", "--state", filepath.Join(g.dir, "hec.state"), "--once", "--out", srv.URL+"/services/collector/event", "--ca", ca)
	if r.code != 0 {
		t.Fatalf("siem to HEC: exit %d %s", r.code, r.stderr)
	}
	size, _ := g.checkpointSize()
	if len(recv.events) != int(size) {
		t.Fatalf("HEC received %d events for %d entries", len(recv.events), size)
	}
	// A wrong token is refused, and the state does not advance.
	env = append(g.env, "WARRANT_HEC_TOKEN=wrong")
	state := filepath.Join(g.dir, "hec2.state")
	r = warrant(t, g.dir, env, "siem", "--state", state, "--once", "--out", srv.URL+"/services/collector/event", "--ca", ca)
	if r.code == 0 || strings.Contains(r.stderr, "wrong") {
		t.Fatalf("wrong token: exit %d stderr %q (must fail and never echo the token)", r.code, r.stderr)
	}
	if b, err := os.ReadFile(state); err == nil && bytes.Contains(b, []byte(`"next":`)) && !bytes.Contains(b, []byte(`"next":0`)) {
		t.Fatalf("the state advanced although the sink refused: %s", b)
	}
}

// TestSIEMForkAlert points a follower at a forked copy of the log (same
// key, different history): it alerts, exits non-zero and leaves its state.
func TestSIEMForkAlert(t *testing.T) {
	e := newE2E(t)
	state := filepath.Join(e.dir, "siem.state")
	e.delegate(filepath.Join(e.dir, "s"))
	e.srv.kill(syscall.SIGTERM)
	fork := filepath.Join(e.dir, "fork")
	if out, err := exec.Command("cp", "-a", filepath.Join(e.dir, "warrant-data"), fork).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	e.start()
	e.delegate(filepath.Join(e.dir, "s"), "--id", "dlg_original")
	mustWarrant(t, e.dir, e.env, "siem", "--state", state, "--once", "--out", filepath.Join(e.dir, "ev"))
	before, _ := os.ReadFile(state)
	e.srv.kill(syscall.SIGTERM)
	e.srv = startServer(t, e.dir, e.env, e.addr, "--data", fork, "--registrar-key", "registrar.pub")
	e.delegate(filepath.Join(e.dir, "fs"), "--id", "dlg_forked")
	e.delegate(filepath.Join(e.dir, "fs"), "--id", "dlg_forked2")
	r := warrant(t, e.dir, e.env, "siem", "--state", state, "--once", "--out", filepath.Join(e.dir, "ev"))
	if r.code == 0 || !strings.Contains(r.stderr, "error: fork_detected: ") {
		t.Fatalf("siem against a fork: exit %d stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "fork_detected") || !strings.Contains(strings.SplitN(r.stderr, "\n", 2)[0], "fork") {
		t.Fatalf("no alert record on stderr: %q", r.stderr)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(before, after) {
		t.Fatal("the follower's state changed after the alert")
	}
}

package witnesstest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"github.com/transparency-dev/witness/persistence/inmemory"
	"github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// lazyWitness is a transparency-dev witness, in process, for a log whose
// key is known only once the log has created it (set logKey then); until
// then it answers 404 (unknown log), which the log retries.
type lazyWitness struct {
	srv    *httptest.Server
	name   string
	vkey   string // the key the policy names
	logKey atomic.Pointer[note.Verifier]
	// down makes the witness answer 503 to everything, as one that is
	// down behind a proxy; it keeps its state, and comes back on Store(false).
	down atomic.Bool
}

// startLazyWitness starts a witness signing with an Ed25519 key and, with
// mldsa, an ML-DSA-44 key too; the policy names the ML-DSA one then (a
// witness may hold several keys: the log must pick the one it knows).
func startLazyWitness(t *testing.T, name string, mldsa bool) *lazyWitness {
	t.Helper()
	w := &lazyWitness{name: name}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	signers := []note.Signer{ed}
	if w.vkey, err = fnote.VKeyToCosignatureV1(vkey); err != nil {
		t.Fatal(err)
	}
	if mldsa {
		mskey, mvkey, err := fnote.GenerateMLDSAKey(name)
		if err != nil {
			t.Fatal(err)
		}
		ml, err := fnote.NewSignerForCosignatureV1(mskey)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, ml)
		w.vkey = mvkey
	}
	wit, err := witness.New(context.Background(), witness.Opts{
		Persistence: inmemory.New(),
		Signers:     signers,
		VerifierForLog: func(_ context.Context, origin string) (note.Verifier, bool, error) {
			v := w.logKey.Load()
			if v == nil {
				return nil, false, nil
			}
			return *v, origin == (*v).Name(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", witness.NewHTTPHandler(wit).AddCheckpoint)
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.down.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// TestServeWitnessed runs `warrant serve --witness-policy` against three
// transparency-dev witnesses in process, a quorum of two, one of them
// cosigning with ML-DSA-44: in sync mode every answer carries a checkpoint
// that satisfies the policy (checked with formats/witness, a third-party
// policy implementation), GET /checkpoint serves it cosigned, and `warrant
// checkpoint --witnesses` shows each witness's state, including one that is
// down; with two down an append fails witness_unavailable.
func TestServeWitnessed(t *testing.T) {
	dir := t.TempDir()
	u := &user{t: t, dir: dir, env: append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir,
		"WARRANT_SERVER=", "WARRANT_LOG_KEY=", "WARRANT_LISTEN=")}
	for _, k := range []string{"registrar", "alice", "planner"} {
		u.must("keygen", "--out", k)
	}
	ws := []*lazyWitness{
		startLazyWitness(t, "witness.example/w1", false),
		startLazyWitness(t, "witness.example/w2", false),
		startLazyWitness(t, "witness.example/pq", true),
	}
	var policy strings.Builder
	for i, w := range ws {
		fmt.Fprintf(&policy, "witness w%d %s %s\n", i+1, w.vkey, w.srv.URL)
	}
	policy.WriteString("group two 2 w1 w2 w3\nquorum two\n")
	policyPath := filepath.Join(dir, "witness.policy")
	if err := os.WriteFile(policyPath, []byte(policy.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	server := startServe(t, u, "--registrar-key", "registrar.pub", "--witness-policy", policyPath,
		"--witness-mode", "sync", "--witness-timeout", "3s")
	vkeyPath := filepath.Join(dir, "warrant-data", "log.vkey")
	vkey, err := os.ReadFile(vkeyPath)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := proofs.ParseVerifierKey(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		w.logKey.Store(&logKey)
	}
	quorum, err := fwitness.ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	u.env = append(u.env, "WARRANT_SERVER="+server, "WARRANT_LOG_KEY=@"+vkeyPath)
	state := filepath.Join(dir, "trusted.checkpoint")

	// Sync mode: the receipt's checkpoint is witnessed (the CLI keeps it
	// as its trusted state).
	u.must("register", "--state", state, "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/human/alice", "--pub", "alice.pub", "--human")
	if trusted, err := os.ReadFile(state); err != nil || !quorum.Satisfied(trusted) {
		t.Fatalf("the receipt's checkpoint (the trusted state) is not witnessed: %v\n%s", err, trusted)
	}
	served := getCheckpoint(t, server)
	if !quorum.Satisfied(served) {
		t.Fatalf("GET /checkpoint is not witnessed:\n%s", served)
	}
	// The quorum is two of three: the ML-DSA witness's cosignature may come
	// after the first two, so wait for it, boundedly.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(string(served), "\u2014 witness.example/pq ") && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		served = getCheckpoint(t, server)
	}
	if cp, err := proofs.OpenCheckpoint(served, logKey); err != nil || !strings.Contains(string(served), "\u2014 witness.example/pq ") {
		t.Fatalf("GET /checkpoint: %v, %v; want it to open under the log key, with the ML-DSA cosignature:\n%s", cp, err, served)
	}

	var st struct {
		Size      uint64 `json:"size"`
		Note      string `json:"checkpoint"`
		Mode      string `json:"witness_mode"`
		Witnessed uint64 `json:"witnessed_size"`
		Witnesses []struct {
			Name      string `json:"name"`
			URL       string `json:"url"`
			Cosigned  uint64 `json:"cosigned_size"`
			LastError string `json:"last_error"`
			Kind      string `json:"last_error_kind"`
		} `json:"witnesses"`
	}
	// The quorum is two: the third witness may cosign later (its first
	// request can go before the test gave it the log key, and is then
	// retried after a back-off), so wait for all three, boundedly.
	var out string
	for deadline := time.Now().Add(60 * time.Second); ; {
		out = u.must("checkpoint", "--state", state, "--witnesses", "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil || strings.Count(out, "\n") != 1 {
			t.Fatalf("checkpoint --witnesses --json: %v\n%s", err, out)
		}
		if st.Mode != "sync" || st.Witnessed != st.Size || len(st.Witnesses) != 3 || !quorum.Satisfied([]byte(st.Note)) {
			t.Fatalf("checkpoint --witnesses --json: %s", out)
		}
		all := true
		for _, w := range st.Witnesses {
			all = all && w.Cosigned == st.Size
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, w := range st.Witnesses {
		if w.Name != fmt.Sprintf("w%d", i+1) || w.URL != ws[i].srv.URL || w.Cosigned != st.Size {
			t.Fatalf("witness %d: %+v (log size %d)", i, w, st.Size)
		}
	}

	// One witness down: appends still succeed, witnessed; the status says
	// which is down.
	ws[0].srv.Close()
	u.must("register", "--state", state, "--tier", "execute", "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/agent/planner", "--pub", "planner.pub")
	if !quorum.Satisfied(getCheckpoint(t, server)) {
		t.Fatal("not witnessed with one witness down")
	}
	out = u.must("checkpoint", "--state", state, "--witnesses")
	if !strings.Contains(out, "w1\t"+ws[0].srv.URL) || !strings.Contains(out, "error (unreachable") {
		t.Fatalf("checkpoint --witnesses with w1 down:\n%s", out)
	}

	// Two down: the append is committed but answered witness_unavailable,
	// without hanging.
	ws[1].down.Store(true)
	start := time.Now()
	r := u.run("delegate", "--state", state, "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/planner",
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "dlg_unwitnessed")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessUnavailable+": ") {
		t.Fatalf("delegate with two witnesses down: exit %d %q", r.code, r.stderr)
	}
	t.Logf("answered after %v", time.Since(start))
	if took := time.Since(start); took > 90*time.Second {
		t.Fatalf("delegate with two witnesses down took %v", took)
	}
	t.Logf("delegate with two witnesses down: %s", r.stderr)
	// The server says "resubmit the same envelope", but delegate signs a
	// new one each time (running it again would record an id_reused
	// denial): the advice says how to see the entry and how to be able to
	// resubmit, and not to run the command again.
	for _, want := range []string{"`warrant get dlg_unwitnessed`", "do not run this command again", "id_reused", "--request-out FILE", "`warrant submit FILE`"} {
		if !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("delegate with two witnesses down: stderr %q lacks %q", r.stderr, want)
		}
	}
	// A request file resubmitted is the same envelope: submit's advice
	// is to submit it again.
	u.must("delegate", "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/planner",
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "dlg_file", "--request-out", "dlg_file.json")
	r = u.run("submit", "dlg_file.json", "--state", state)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessUnavailable+": ") ||
		!strings.Contains(r.stderr, "`warrant get dlg_file`") || !strings.Contains(r.stderr, "resubmit the same envelope later with `warrant submit dlg_file.json`") {
		t.Errorf("submit with two witnesses down: exit %d %q", r.code, r.stderr)
	}
	// w2 back: the same file resubmitted returns the entry, witnessed.
	ws[1].down.Store(false)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		r = u.run("submit", "dlg_file.json", "--state", state)
		if r.code == 0 {
			if !strings.HasPrefix(r.stdout, "already in the log: ") {
				t.Errorf("submit again with w2 back: %q", r.stdout)
			}
			break
		}
		if time.Now().After(deadline) || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessUnavailable+": ") {
			t.Fatalf("submit again with w2 back: exit %d %q", r.code, r.stderr)
		}
	}
	if trusted, err := os.ReadFile(state); err != nil || !quorum.Satisfied(trusted) {
		t.Fatalf("the trusted state is not witnessed: %v\n%s", err, trusted)
	}
}

func getCheckpoint(t *testing.T, server string) []byte {
	t.Helper()
	resp, err := http.Get(server + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

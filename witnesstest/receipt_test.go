package witnesstest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestAsyncWitnessedReceipts: a client with a witness policy appending to
// a server that witnesses asynchronously (its answers carry the
// log-signed checkpoint) gets its receipt proven against a witnessed
// checkpoint once the witnesses cosign one; when they do not within its
// wait, the command fails witness_unavailable saying that the entry is
// committed, under which id, and how to fetch it later (never to run the
// command again), and `warrant get` with the policy returns it once the
// witnesses are back. The SDK waits for a witness that comes back while
// it waits. Three transparency-dev witnesses in process, quorum two.
func TestAsyncWitnessedReceipts(t *testing.T) {
	dir := t.TempDir()
	u := &user{t: t, dir: dir, env: append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir,
		"WARRANT_SERVER=", "WARRANT_LOG_KEY=", "WARRANT_LISTEN=", "WARRANT_WITNESS_POLICY=")}
	for _, k := range []string{"registrar", "alice", "planner"} {
		u.must("keygen", "--out", k)
	}
	ws := []*lazyWitness{
		startLazyWitness(t, "witness.example/w1", false),
		startLazyWitness(t, "witness.example/w2", false),
		startLazyWitness(t, "witness.example/w3", false),
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
	server := startServe(t, u, "--registrar-key", "registrar.pub", "--witness-policy", policyPath, "--witness-mode", "async")
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
	state := filepath.Join(dir, "trusted.checkpoint")
	u.env = append(u.env, "WARRANT_SERVER="+server, "WARRANT_LOG_KEY=@"+vkeyPath, "WARRANT_WITNESS_POLICY="+policyPath)
	alice, planner := "spiffe://example.org/human/alice", "spiffe://example.org/agent/planner"

	// Witnesses up: every append's receipt is witnessed (the trusted
	// state is the witnessed checkpoint it was proven against).
	u.must("register", "--state", state, "--registrar-key", "registrar.key", "--agent", alice, "--pub", "alice.pub", "--human")
	u.must("register", "--state", state, "--tier", "execute", "--registrar-key", "registrar.key", "--agent", planner, "--pub", "planner.pub")
	out := u.must("delegate", "--state", state, "--key", "alice.key", "--issuer", alice, "--to", planner,
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "dlg_async1")
	if !strings.HasPrefix(out, "appended: delegation dlg_async1") {
		t.Fatalf("delegate: %s", out)
	}
	if trusted, err := os.ReadFile(state); err != nil || !quorum.Satisfied(trusted) {
		t.Fatalf("the receipt's checkpoint (the trusted state) is not witnessed: %v\n%s", err, trusted)
	}

	// Two of three down: the entry is committed, but no witnessed
	// checkpoint comes; the error says so, with the command that fetches
	// it later.
	ws[0].down.Store(true)
	ws[1].down.Store(true)
	r := u.run("delegate", "--state", state, "--key", "alice.key", "--issuer", alice, "--to", planner,
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "dlg_async2")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessUnavailable+": entry ") ||
		!strings.Contains(r.stderr, " is committed, accepted (id dlg_async2); its checkpoint is not witnessed yet") ||
		!strings.Contains(r.stderr, "`warrant get dlg_async2 --witness-policy "+policyPath+"`") ||
		!strings.Contains(r.stderr, "do not run this command again") {
		t.Fatalf("delegate with two witnesses down: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Logf("delegate with two witnesses down: %s", r.stderr)
	// It is in the log (without the policy, the log's signature suffices).
	if out := u.must("get", "dlg_async2", "--state", filepath.Join(dir, "unwitnessed.checkpoint"), "--witness-policy", ""); !strings.Contains(out, "dlg_async2") {
		t.Fatalf("get without the policy: %s", out)
	}
	// One back: the quorum is met again, and get proves the entry against
	// a witnessed checkpoint (the log retries the witness after a back-off).
	ws[0].down.Store(false)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		r := u.run("get", "dlg_async2", "--state", state, "--json")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessQuorum+": ") && !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessUnavailable+": ") {
			t.Fatalf("get dlg_async2 with the witnesses back: exit %d %q", r.code, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if trusted, err := os.ReadFile(state); err != nil || !quorum.Satisfied(trusted) {
		t.Fatalf("the trusted state is not witnessed: %v\n%s", err, trusted)
	}

	// The SDK waits for a witness that comes back while it waits.
	wp, err := proofs.ParseWitnessPolicy([]byte(policy.String()), string(vkey), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(server, logKey, client.WithWitnessPolicy(wp), client.WithWitnessWait(2*time.Minute))
	if _, err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := client.LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	env, err := signer.SignDelegation(&proofs.Delegation{ID: "dlg_async3", Issuer: alice, Delegate: planner, Task: "/tickets",
		Scopes: []string{"tickets:read"}, ExpiresAt: proofs.FormatTime(time.Now().Add(time.Hour))}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ws[0].down.Store(true)
	before := logSize(t, server, logKey)
	type answer struct {
		e   *client.Entry
		err error
	}
	done := make(chan answer, 1)
	go func() {
		e, err := c.Append(context.Background(), env)
		done <- answer{e, err}
	}()
	// Once the entry is committed (the log's checkpoint grows), bring w1
	// back.
	for logSize(t, server, logKey) == before {
		select {
		case a := <-done:
			t.Fatalf("Append answered before the witness came back: %v %v", a.e, a.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	ws[0].down.Store(false)
	a := <-done
	if a.err != nil {
		t.Fatalf("Append with a witness back during the wait: %v", a.err)
	}
	if a.e.ID != "dlg_async3" || a.e.Checkpoint.Size <= a.e.Index || !quorum.Satisfied(a.e.Checkpoint.Note) {
		t.Fatalf("Append: entry %d %s, checkpoint %v (witnessed %v)", a.e.Index, a.e.ID, a.e.Checkpoint, quorum.Satisfied(a.e.Checkpoint.Note))
	}
	if err := proofs.VerifyInclusion(a.e.Index, a.e.Checkpoint.Size, proofs.LeafHash(a.e.Leaf.Raw), a.e.InclusionProof, a.e.Checkpoint.Root); err != nil {
		t.Fatalf("the receipt's inclusion proof: %v", err)
	}
}

// logSize is the size of the server's latest checkpoint (GET /checkpoint).
func logSize(t *testing.T, server string, logKey note.Verifier) uint64 {
	t.Helper()
	cp, err := proofs.OpenCheckpoint(getCheckpoint(t, server), logKey)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

package ledger

// Tests of the witness client against real C2SP tlog-witness witnesses:
// torchwood's litewitness, run as a process (its SQLite store, its key in
// an ssh-agent, here one served in process by golang.org/x/crypto's agent
// keyring). The binary is found through WARRANT_LITEWITNESS (witnessctl,
// which adds the log to a witness's store, next to it); without it the
// tests are skipped, and with CI=true they fail.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// litewitnessBin returns the litewitness and witnessctl binaries.
func litewitnessBin(t *testing.T) (lw, ctl string) {
	t.Helper()
	lw = os.Getenv("WARRANT_LITEWITNESS")
	if lw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("WARRANT_LITEWITNESS is not set: CI must install filippo.io/torchwood/cmd/litewitness and witnessctl @v0.9.0 and point it at litewitness")
		}
		t.Skip("WARRANT_LITEWITNESS is not set (the path of torchwood's litewitness, witnessctl next to it)")
	}
	ctl = filepath.Join(filepath.Dir(lw), "witnessctl")
	for _, p := range []string{lw, ctl} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("WARRANT_LITEWITNESS: %v", err)
		}
	}
	return lw, ctl
}

// liteWitness is one litewitness process and its state.
type liteWitness struct {
	t        *testing.T
	bin      string
	name     string
	dir      string // its database and agent socket
	addr     string // 127.0.0.1:port, kept across restarts
	sock     string
	keyFP    string
	vkey     string // cosignature/v1 verifier key, for policies
	cmd      *exec.Cmd
	exited   chan struct{}
	stderr   *bytes.Buffer
	agentLn  net.Listener
	requests atomic.Int64 // add-checkpoint requests the log sent it (countingTransport)
}

// startLiteWitness starts a litewitness that knows the log with verifier
// key logVKey.
func startLiteWitness(t *testing.T, name, logVKey string) *liteWitness {
	t.Helper()
	bin, ctl := litewitnessBin(t)
	// A short directory: the agent's socket path must fit sun_path.
	dir, err := os.MkdirTemp("", "lw")
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
	w := &liteWitness{t: t, bin: bin, name: name, dir: dir, sock: filepath.Join(dir, "a.sock"), keyFP: ssh.FingerprintSHA256(sshPub)}
	if w.agentLn, err = net.Listen("unix", w.sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.agentLn.Close() })
	go func() {
		for {
			c, err := w.agentLn.Accept()
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
	if w.vkey, err = fnote.VKeyToCosignatureV1(vk); err != nil {
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	ln.Close()
	w.start()
	t.Cleanup(w.stop)
	return w
}

func (w *liteWitness) url() string { return "http://" + w.addr }

// start runs the process and waits until it answers.
func (w *liteWitness) start() {
	t := w.t
	t.Helper()
	w.stderr = &bytes.Buffer{}
	w.cmd = exec.Command(w.bin, "-db", filepath.Join(w.dir, "w.db"), "-name", w.name, "-key", w.keyFP,
		"-ssh-agent", w.sock, "-listen", w.addr)
	w.cmd.Stderr = w.stderr
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(w.cmd, w.exited)
	for deadline := time.Now().Add(time.Minute); ; {
		if c, err := net.DialTimeout("tcp", w.addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-w.exited:
			t.Fatalf("litewitness %s exited: %s", w.name, w.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("litewitness %s did not start: %s", w.name, w.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process (SIGTERM, then SIGKILL) and waits for it.
func (w *liteWitness) stop() {
	if w.cmd == nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(30 * time.Second):
		w.cmd.Process.Kill()
		<-w.exited
	}
	w.cmd = nil
}

// countingTransport counts the add-checkpoint requests sent to each
// witness, by host.
type countingTransport struct {
	mu     sync.Mutex
	counts map[string]*atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	n := c.counts[r.URL.Host]
	c.mu.Unlock()
	if n != nil {
		n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// witnessTrio is three litewitnesses for one log, under a policy of two of
// three.
type witnessTrio struct {
	ws     []*liteWitness
	policy *WitnessPolicy
	text   string
	http   *http.Client
}

func newWitnessTrio(t *testing.T, logVKey string) *witnessTrio {
	t.Helper()
	tr := &countingTransport{counts: map[string]*atomic.Int64{}}
	trio := &witnessTrio{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	text := "log " + logVKey + "\n"
	for i := range 3 {
		w := startLiteWitness(t, fmt.Sprintf("witness.example/w%d", i+1), logVKey)
		tr.counts[w.addr] = &w.requests
		trio.ws = append(trio.ws, w)
		text += fmt.Sprintf("witness w%d %s %s\n", i+1, w.vkey, w.url())
	}
	text += "group two 2 w1 w2 w3\nquorum two\n"
	p, err := ParseWitnessPolicy([]byte(text), logVKey)
	if err != nil {
		t.Fatal(err)
	}
	trio.policy, trio.text = p, text
	return trio
}

func (trio *witnessTrio) options(mode WitnessMode, timeout time.Duration) func(*Options) {
	return func(o *Options) {
		o.WitnessPolicy, o.WitnessMode, o.WitnessTimeout, o.WitnessHTTP = []byte(trio.text), mode, timeout, trio.http
		o.WitnessRate = -1
	}
}

// logVKeyFor creates the log key of a log in dir (the one Open will use)
// and returns its verifier key.
func logVKeyFor(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, vkey, err := loadOrCreateLogKey(dir, "test.example/log")
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// waitFor polls cond until it holds, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// witnessedLatest reports whether the log serves its latest checkpoint
// with cosignatures satisfying the policy.
func witnessedLatest(l *Log, p *WitnessPolicy) bool {
	cp := l.Checkpoint()
	return p.Satisfied(cp.Note) && l.Cosigned() != nil && l.Cosigned().Size == cp.Size
}

// fixtureIn is newFixture with the log in dir (whose log key a witness
// policy names).
func fixtureIn(t *testing.T, dir string, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{dir: dir, registrar: newTestKey(t), admin: newTestKey(t), human: newTestKey(t), agent: newTestKey(t)}
	f.log = openTestLog(t, dir, f.registrar, func(o *Options) {
		f.withAdmin(o)
		mod(o)
	})
	t.Cleanup(func() { f.log.Close() })
	ctx := context.Background()
	for _, env := range [][]byte{
		bindingEnvelope(t, f.registrar, humanID, f.human, proofs.TierDraft, true),
		bindingEnvelope(t, f.registrar, agentID, f.agent, proofs.TierExecute, false),
	} {
		if _, err := f.log.Append(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func newDelegation(t *testing.T, f *fixture, id string) []byte {
	return signDelegation(t, f.human, delegation(id, humanID, agentID, fmt.Sprintf("n%015x", randUint(t))))
}

// TestWitnessQuorumLitewitness: three litewitnesses, a quorum of two. The
// log's checkpoints get cosigned and served cosigned (log signature first),
// and the log keeps being witnessed with one witness down, which the
// status and the log show.
func TestWitnessQuorumLitewitness(t *testing.T) {
	dir := t.TempDir()
	trio := newWitnessTrio(t, logVKeyFor(t, dir))
	f := fixtureIn(t, dir, trio.options(WitnessAsync, 0))
	ctx := context.Background()
	waitFor(t, "the latest checkpoint to be witnessed", func() bool { return witnessedLatest(f.log, trio.policy) })
	cp := f.log.Checkpoint()
	if _, err := proofs.OpenCheckpoint(cp.Note, f.log.verifier); err != nil {
		t.Fatalf("the cosigned checkpoint does not open under the log key: %v", err)
	}
	if !bytes.HasPrefix(cp.Note[bytes.Index(cp.Note, []byte("\n\n"))+2:], []byte("\u2014 "+f.log.Origin()+" ")) {
		t.Fatalf("the log's signature is not first:\n%s", cp.Note)
	}

	// One witness down: still witnessed.
	trio.ws[2].stop()
	if _, err := f.log.Append(ctx, newDelegation(t, f, "dlg_one_down")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "witnessing with one witness down", func() bool { return witnessedLatest(f.log, trio.policy) })
	waitFor(t, "the status to show the witness down", func() bool {
		st := f.log.Witnesses()
		return st.Witnesses[2].LastErrorKind == witnessUnreachable
	})
	st := f.log.Witnesses()
	if st.CosignedSize != f.log.Checkpoint().Size || st.Witnesses[0].CosignedSize != st.CosignedSize || st.Witnesses[0].Name != "w1" || st.Witnesses[0].URL != trio.ws[0].url() {
		t.Fatalf("status: %+v", st)
	}

	// Back: it catches up without another append (retries).
	trio.ws[2].start()
	waitFor(t, "the witness back to catch up", func() bool {
		return f.log.Witnesses().Witnesses[2].CosignedSize == f.log.Checkpoint().Size
	})
	if !bytes.Contains(f.log.Checkpoint().Note, []byte("\u2014 witness.example/w3 ")) {
		t.Fatalf("the third cosignature is not served:\n%s", f.log.Checkpoint().Note)
	}
}

// TestWitnessSyncLitewitness: in sync mode an append is answered with a
// witnessed checkpoint; with two of three witnesses down it fails with
// witness_unavailable (Unavailable) after the timeout, not hanging; the
// entry stays committed and, once a witness is back, resubmitting the same
// envelope returns it with a witnessed checkpoint.
func TestWitnessSyncLitewitness(t *testing.T) {
	dir := t.TempDir()
	trio := newWitnessTrio(t, logVKeyFor(t, dir))
	const timeout = 2 * time.Second
	// fixtureIn's appends are answered in sync mode.
	f := fixtureIn(t, dir, trio.options(WitnessSync, timeout))
	ctx := context.Background()
	a, err := f.log.Append(ctx, newDelegation(t, f, "dlg_witnessed"))
	if err != nil {
		t.Fatalf("sync append: %v", err)
	}
	if !trio.policy.Satisfied(a.Checkpoint.Note) || a.Checkpoint.Size <= a.Index {
		t.Fatalf("sync append answered with an unwitnessed checkpoint:\n%s", a.Checkpoint.Note)
	}

	trio.ws[1].stop()
	trio.ws[2].stop()
	env := newDelegation(t, f, "dlg_two_down")
	start := time.Now()
	_, err = f.log.Append(ctx, env)
	took := time.Since(start)
	if proofs.Reason(err) != ReasonWitnessUnavailable {
		t.Fatalf("append with two witnesses down: %v, want %s", err, ReasonWitnessUnavailable)
	}
	var ce *connect.Error
	if !errors.As(connectError(err), &ce) || ce.Code() != connect.CodeUnavailable {
		t.Fatalf("connect error %v, want Unavailable", connectError(err))
	}
	if took < timeout || took > timeout+30*time.Second {
		t.Fatalf("append with two witnesses down answered after %v (timeout %v)", took, timeout)
	}
	committed := f.log.Checkpoint().Size

	// One comes back: resubmitting returns the committed entry, witnessed.
	trio.ws[1].start()
	waitFor(t, "a resubmission to be answered", func() bool {
		a, err = f.log.Append(ctx, env)
		if err != nil && proofs.Reason(err) != ReasonWitnessUnavailable {
			t.Fatalf("resubmission: %v", err)
		}
		return err == nil
	})
	if !a.Duplicate || a.Index != committed-1 || !trio.policy.Satisfied(a.Checkpoint.Note) || a.Checkpoint.Size < committed {
		t.Fatalf("resubmission: duplicate %v index %d (log size %d) checkpoint:\n%s", a.Duplicate, a.Index, committed, a.Checkpoint.Note)
	}

	// AppendBatch over the RPC service: every entry, and the batch, are
	// answered with a witnessed checkpoint.
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	rpc := warrantv1connect.NewLedgerServiceClient(srv.Client(), srv.URL)
	var envs [][]byte
	for i := range 3 {
		envs = append(envs, newDelegation(t, f, fmt.Sprintf("dlg_batch_%d", i)))
	}
	resp, err := rpc.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: envs}))
	if err != nil {
		t.Fatal(err)
	}
	if !trio.policy.Satisfied(resp.Msg.GetCheckpoint()) {
		t.Fatalf("AppendBatch's checkpoint is not witnessed:\n%s", resp.Msg.GetCheckpoint())
	}
	for i, r := range resp.Msg.GetResults() {
		if r.GetEntry() == nil || !trio.policy.Satisfied(r.GetEntry().GetCheckpoint()) {
			t.Fatalf("AppendBatch result %d: %v", i, r)
		}
	}
}

// TestWitnessStaleLitewitness: a witness restarted with older state (its
// store restored from a copy) is caught up through its 409 in at most two
// requests.
func TestWitnessStaleLitewitness(t *testing.T) {
	dir := t.TempDir()
	trio := newWitnessTrio(t, logVKeyFor(t, dir))
	f := &fixture{dir: dir, registrar: newTestKey(t), admin: newTestKey(t), human: newTestKey(t), agent: newTestKey(t)}
	f.log = openTestLog(t, dir, f.registrar, func(o *Options) {
		f.withAdmin(o)
		trio.options(WitnessAsync, 0)(o)
	})
	t.Cleanup(func() { f.log.Close() })
	ctx := context.Background()
	w := trio.ws[0]
	f.log.Append(ctx, bindingEnvelope(t, f.registrar, humanID, f.human, proofs.TierDraft, true))
	waitFor(t, "w1 to cosign", func() bool { return f.log.Witnesses().Witnesses[0].CosignedSize == f.log.Checkpoint().Size })
	stale := f.log.Checkpoint().Size
	// A copy of its store at the stale size.
	w.stop()
	copyDB(t, w.dir, "w.db", "stale.db")
	w.start()
	f.log.Append(ctx, bindingEnvelope(t, f.registrar, agentID, f.agent, proofs.TierExecute, false))
	f.log.Append(ctx, newDelegation(t, f, "dlg_grow"))
	waitFor(t, "w1 to cosign the larger size", func() bool { return f.log.Witnesses().Witnesses[0].CosignedSize == f.log.Checkpoint().Size })
	w.stop()
	copyDB(t, w.dir, "stale.db", "w.db")
	w.start()
	before := w.requests.Load()
	if _, err := f.log.Append(ctx, newDelegation(t, f, "dlg_after_restore")); err != nil {
		t.Fatal(err)
	}
	size := f.log.Checkpoint().Size
	waitFor(t, "the stale witness to be caught up", func() bool { return f.log.Witnesses().Witnesses[0].CosignedSize == size })
	// One request from the size it cosigned last, refused 409 naming the
	// stale size, and one from there.
	if n := w.requests.Load() - before; n != 2 {
		t.Fatalf("catching up a witness at size %d to %d took %d requests, want 2 (409, then from the size it named)", stale, size, n)
	}
}

// copyDB copies a litewitness SQLite store (with its WAL files, if any).
func copyDB(t *testing.T, dir, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, to+suffix))
		src, err := os.Open(filepath.Join(dir, from+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(dir, to+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}

// TestWitnessForkLitewitness: a second log holding the same key, with
// other entries at the same size, gets no cosignature: the witnesses hold
// the first log's checkpoint and refuse the fork (409 then 422), and the
// log reports it.
func TestWitnessForkLitewitness(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	vkey := logVKeyFor(t, dirA)
	for _, name := range []string{LogKeyFile, LogVerifierKeyFile} {
		b, err := os.ReadFile(filepath.Join(dirA, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirB, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	trio := newWitnessTrio(t, vkey)
	a := &fixture{dir: dirA, registrar: newTestKey(t), admin: newTestKey(t), human: newTestKey(t), agent: newTestKey(t)}
	a.log = openTestLog(t, dirA, a.registrar, func(o *Options) {
		a.withAdmin(o)
		trio.options(WitnessAsync, 0)(o)
	})
	t.Cleanup(func() { a.log.Close() })
	ctx := context.Background()
	if _, err := a.log.Append(ctx, bindingEnvelope(t, a.registrar, humanID, a.human, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "log A to be witnessed", func() bool { return witnessedLatest(a.log, trio.policy) })
	sizeA := a.log.Checkpoint().Size

	// Log B: the same key, another registrar (so another first entry).
	var logs syncBuffer
	b := &fixture{registrar: newTestKey(t), admin: newTestKey(t), human: newTestKey(t), agent: newTestKey(t)}
	b.log = openTestLog(t, dirB, b.registrar, func(o *Options) {
		b.withAdmin(o)
		trio.options(WitnessAsync, 0)(o)
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	t.Cleanup(func() { b.log.Close() })
	for b.log.Checkpoint().Size < sizeA {
		if _, err := b.log.Append(ctx, bindingEnvelope(t, b.registrar, fmt.Sprintf("spiffe://example.org/agent/b%d", randUint(t)), b.agent, proofs.TierExecute, false)); err != nil {
			t.Fatal(err)
		}
	}
	if b.log.Checkpoint().Size != sizeA || bytes.Equal(b.log.Checkpoint().Root, a.log.Checkpoint().Root) {
		t.Fatalf("log B: size %d root %x; log A: size %d root %x", b.log.Checkpoint().Size, b.log.Checkpoint().Root, sizeA, a.log.Checkpoint().Root)
	}
	// At the same size as A, each witness names the size it holds (409)
	// and refuses B's proof from there (422).
	waitFor(t, "every witness to refuse log B's checkpoint of A's size", func() bool {
		for _, w := range b.log.Witnesses().Witnesses {
			if w.LastErrorKind != witnessInconsistent {
				return false
			}
		}
		return true
	})
	if b.log.Cosigned() != nil || trio.policy.Satisfied(b.log.Checkpoint().Note) || bytes.Contains(b.log.Checkpoint().Note, []byte("witness.example/")) {
		t.Fatalf("log B got cosignatures:\n%s", b.log.Checkpoint().Note)
	}
	for _, w := range b.log.Witnesses().Witnesses {
		if w.CosignedSize != 0 {
			t.Fatalf("log B's status: %+v", w)
		}
	}
	if !strings.Contains(logs.String(), "split view") {
		t.Fatalf("log B logged no split view:\n%s", logs.String())
	}
}

// TestWitnessRefusalsLitewitness: a witness that knows our origin under
// another key answers 403, one that does not know it 404; each is counted
// by kind, and the log stays witnessed by the one that cosigns, all of
// which the metrics show.
func TestWitnessRefusalsLitewitness(t *testing.T) {
	dir := t.TempDir()
	vkey := logVKeyFor(t, dir)
	_, otherKey, err := note.GenerateKey(rand.Reader, "test.example/log")
	if err != nil {
		t.Fatal(err)
	}
	_, otherLog, err := note.GenerateKey(rand.Reader, "other.example/log")
	if err != nil {
		t.Fatal(err)
	}
	good := startLiteWitness(t, "witness.example/good", vkey)
	forbidden := startLiteWitness(t, "witness.example/forbidden", otherKey)
	unknown := startLiteWitness(t, "witness.example/unknown", otherLog)
	text := fmt.Sprintf("witness good %s %s\nwitness forbidden %s %s\nwitness unknown %s %s\ngroup g 1 good forbidden unknown\nquorum g\n",
		good.vkey, good.url(), forbidden.vkey, forbidden.url(), unknown.vkey, unknown.url())
	p, err := ParseWitnessPolicy([]byte(text), vkey)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := fixtureIn(t, dir, func(o *Options) { o.WitnessPolicy, o.Metrics = []byte(text), m })
	waitFor(t, "the log to be witnessed", func() bool { return witnessedLatest(f.log, p) })
	waitFor(t, "both refusals", func() bool {
		st := f.log.Witnesses().Witnesses
		return st[1].LastErrorKind == witnessForbidden && st[2].LastErrorKind == witnessUnknownLog
	})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	text = scrape(t, srv.URL)
	size := float64(f.log.Checkpoint().Size)
	for series, want := range map[string]float64{
		`warrant_witness_cosigned_size{witness="good"}`:                        size,
		`warrant_witnessed_tree_size`:                                          size,
		`warrant_witness_failures_total{kind="forbidden",witness="forbidden"}`: 1,
		`warrant_witness_failures_total{kind="unknown_log",witness="unknown"}`: 1,
		`warrant_witness_request_seconds_count{witness="good"}`:                1,
	} {
		if got := metricValue(t, text, series); got < want || strings.HasPrefix(series, "warrant_witness_cosigned") && got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if metricValue(t, text, `warrant_witness_cosigned_size{witness="forbidden"}`) > 0 {
		t.Error("the forbidden witness shows a cosigned size")
	}
}

// TestWitnessRestartLitewitness: each witness's cosigned size and the
// cosigned checkpoint are kept in the store: reopened, the log serves the
// witnessed checkpoint at once and sends each witness one request, from the
// size it cosigned (no 409).
func TestWitnessRestartLitewitness(t *testing.T) {
	dir := t.TempDir()
	trio := newWitnessTrio(t, logVKeyFor(t, dir))
	f := fixtureIn(t, dir, trio.options(WitnessAsync, 0))
	waitFor(t, "the log to be witnessed", func() bool { return witnessedLatest(f.log, trio.policy) })
	waitFor(t, "every witness to cosign", func() bool {
		for _, w := range f.log.Witnesses().Witnesses {
			if w.CosignedSize != f.log.Checkpoint().Size {
				return false
			}
		}
		return true
	})
	size := f.log.Checkpoint().Size
	if err := f.log.Close(); err != nil {
		t.Fatal(err)
	}
	var before [3]int64
	for i, w := range trio.ws {
		before[i] = w.requests.Load()
	}
	l := openTestLog(t, f.dir, f.registrar, func(o *Options) {
		f.withAdmin(o)
		trio.options(WitnessAsync, 0)(o)
	})
	f.log = l
	if !trio.policy.Satisfied(l.Checkpoint().Note) || l.Checkpoint().Size != size {
		t.Fatalf("reopened, the log serves an unwitnessed checkpoint:\n%s", l.Checkpoint().Note)
	}
	for _, w := range l.Witnesses().Witnesses {
		if w.CosignedSize != size {
			t.Fatalf("reopened, witness state %+v, want cosigned size %d", w, size)
		}
	}
	waitFor(t, "every witness to cosign again", func() bool {
		for _, w := range l.Witnesses().Witnesses {
			if w.LastCosigned.IsZero() {
				return false
			}
		}
		return true
	})
	for i, w := range trio.ws {
		if n := w.requests.Load() - before[i]; n != 1 {
			t.Errorf("witness %d got %d requests after the restart, want 1", i+1, n)
		}
	}
}

// TestWitnessBudgetLitewitness: appends faster than a witness's budget are
// coalesced: the witness gets no more requests than its budget allows, and
// ends up cosigning the latest checkpoint.
func TestWitnessBudgetLitewitness(t *testing.T) {
	dir := t.TempDir()
	trio := newWitnessTrio(t, logVKeyFor(t, dir))
	const budget = 2.0
	start := time.Now()
	f := fixtureIn(t, dir, func(o *Options) {
		trio.options(WitnessAsync, 0)(o)
		o.WitnessRate = budget
	})
	ctx := context.Background()
	for i := range 30 {
		if _, err := f.log.Append(ctx, newDelegation(t, f, fmt.Sprintf("dlg_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the latest checkpoint to be witnessed", func() bool { return witnessedLatest(f.log, trio.policy) })
	waitFor(t, "every witness to cosign the latest", func() bool {
		for _, w := range f.log.Witnesses().Witnesses {
			if w.CosignedSize != f.log.Checkpoint().Size {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start).Seconds()
	for i, w := range trio.ws {
		// A burst, then budget per second.
		if n := w.requests.Load(); float64(n) > witnessBurst+budget*elapsed+1 {
			t.Errorf("witness %d got %d requests in %.1fs, over a budget of %v/s", i+1, n, elapsed, budget)
		}
	}
}

// TestWitnessedReadsUnderLoad: in async mode a log under steady appends
// mostly serves checkpoints not yet witnessed, so a client that requires
// the quorum asks for the latest witnessed one: GetCheckpoint and
// WatchCheckpoints with witnessed set answer only checkpoints that satisfy
// the policy, with consistency proofs that verify, while appends go on.
func TestWitnessedReadsUnderLoad(t *testing.T) {
	dir := t.TempDir()
	trio := newWitnessTrio(t, logVKeyFor(t, dir))
	f := fixtureIn(t, dir, trio.options(WitnessAsync, 0))
	waitFor(t, "the latest checkpoint to be witnessed", func() bool { return witnessedLatest(f.log, trio.policy) })
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	rpc := warrantv1connect.NewLedgerServiceClient(srv.Client(), srv.URL)
	// Cancelled before the server closes: a failing test must not wait on
	// its own feed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	done := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil && i < 400; i++ {
			if _, err := f.log.Append(ctx, newDelegation(t, f, fmt.Sprintf("dlg_load_%d", i))); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	stream, err := rpc.WatchCheckpoints(ctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{Witnessed: true}))
	if err != nil {
		t.Fatal(err)
	}
	var trusted uint64
	var root []byte
	for i := 0; i < 5; i++ {
		resp, err := rpc.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{TrustedSize: trusted, Witnessed: true}))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := proofs.OpenCheckpoint(resp.Msg.GetCheckpoint(), f.log.verifier)
		if err != nil || !trio.policy.Satisfied(cp.Note) {
			t.Fatalf("GetCheckpoint(witnessed) answered a checkpoint that does not satisfy the policy (%v):\n%s", err, resp.Msg.GetCheckpoint())
		}
		if trusted > 0 {
			if err := proofs.VerifyConsistency(trusted, cp.Size, resp.Msg.GetConsistencyProof(), root, cp.Root); err != nil {
				t.Fatalf("consistency from %d to %d: %v", trusted, cp.Size, err)
			}
		}
		trusted, root = cp.Size, cp.Root
		if !stream.Receive() {
			t.Fatalf("the witnessed feed ended: %v", stream.Err())
		}
		if !trio.policy.Satisfied(stream.Msg().GetCheckpoint()) {
			t.Fatalf("the witnessed feed sent a checkpoint that does not satisfy the policy:\n%s", stream.Msg().GetCheckpoint())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

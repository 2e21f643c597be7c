package main

// The chaos tests of distributed mode (issue 17, item 6): a cluster of
// three nodes on the real engines, started by scripts/cluster.sh, with
// concurrent appending clients (the Go SDK, given the three URLs) while the
// leader is killed again and again, the object store is stopped and etcd is
// stopped; then every acknowledged append is read back at its index, every
// checkpoint any client saw is checked against the others, and the bucket
// is read with a third-party tlog-tiles client (tlogtiles_test.go). The
// partition between a leader and etcd is in partition_test.go. Without etcd, etcdctl or
// versitygw the tests skip, unless CI is set (then they fail).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/etcdtest"
	"github.com/warrantlog/warrant/internal/s3test"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// chaosLeaseTTL is the nodes' lease in the chaos tests: the shortest
// allowed, so that a dead leader is replaced quickly.
const chaosLeaseTTL = "2s"

// scriptCluster is a cluster started by scripts/cluster.sh in a temporary
// state directory.
type scriptCluster struct {
	t        *testing.T
	dir      string   // WARRANT_CLUSTER_DIR
	env      []string // the script's environment
	servers  string   // WARRANT_SERVERS
	urls     []string
	logKey   note.Verifier
	logKeyAt string // @FILE
	regKey   string // the registrar's private key file
	state    map[string]string
}

// startScriptCluster runs `scripts/cluster.sh up` and `down` at the end of
// the test.
func startScriptCluster(t *testing.T) *scriptCluster {
	t.Helper()
	etcd := etcdtest.Binary(t)
	versitygw := s3test.Binary(t)
	if _, err := exec.LookPath("etcdctl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("etcdctl not found (Debian package etcd-client); CI must install it")
		}
		t.Skip("etcdctl not found (Debian package etcd-client)")
	}
	c := &scriptCluster{t: t, dir: t.TempDir()}
	c.env = append(os.Environ(),
		"WARRANT_CLUSTER_DIR="+c.dir,
		"WARRANT_BIN="+warrantBin,
		"WARRANT_ETCD="+etcd,
		"WARRANT_VERSITYGW="+versitygw,
		"WARRANT_CLUSTER_TIMEOUT=180",
		"WARRANT_CLUSTER_SERVE_FLAGS=--lease-ttl "+chaosLeaseTTL,
	)
	out := c.script("up")
	t.Cleanup(func() {
		c.script("down")
		if dst := os.Getenv("WARRANT_CHAOS_LOGS"); dst != "" { // for a post-mortem
			for _, n := range []string{"n1", "n2", "n3"} {
				if b, err := os.ReadFile(filepath.Join(c.dir, n+".log")); err == nil {
					os.WriteFile(filepath.Join(dst, t.Name()+"-"+n+".log"), b, 0o644)
				}
			}
		}
		if t.Failed() {
			for _, n := range []string{"n1", "n2", "n3"} {
				b, _ := os.ReadFile(filepath.Join(c.dir, n+".log"))
				t.Logf("---- tail of %s.log ----\n%s", n, tail(string(b), 40))
			}
		}
	})
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("cluster.sh up printed %q, not an assignment", line)
		}
		vars[k] = v
	}
	c.servers, c.logKeyAt, c.regKey = vars["WARRANT_SERVERS"], vars["WARRANT_LOG_KEY"], vars["WARRANT_REGISTRAR_KEY"]
	if c.servers == "" || !strings.HasPrefix(c.logKeyAt, "@") || c.regKey == "" || len(vars) != 3 {
		t.Fatalf("cluster.sh up printed %q; want WARRANT_SERVERS, WARRANT_LOG_KEY=@FILE, WARRANT_REGISTRAR_KEY", out)
	}
	c.urls = strings.Split(c.servers, ",")
	vkey, err := os.ReadFile(strings.TrimPrefix(c.logKeyAt, "@"))
	if err != nil {
		t.Fatal(err)
	}
	if c.logKey, err = note.NewVerifier(strings.TrimSpace(string(vkey))); err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(c.dir, "cluster.env"))
	if err != nil {
		t.Fatal(err)
	}
	c.state = map[string]string{}
	for _, line := range strings.Split(string(env), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			c.state[k] = strings.Trim(v, "'")
		}
	}
	return c
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// script runs scripts/cluster.sh CMD and returns its stdout; a failure
// fails the test.
func (c *scriptCluster) script(cmd string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	x := exec.CommandContext(ctx, "bash", "../../scripts/cluster.sh", cmd)
	x.Env = c.env
	var out, errb bytes.Buffer
	x.Stdout, x.Stderr = &out, &errb
	if err := x.Run(); err != nil {
		c.t.Fatalf("scripts/cluster.sh %s: %v\n%s", cmd, err, errb.String())
	}
	return out.String()
}

// clusterNode is one line of `cluster.sh status`.
type clusterNode struct{ name, url, role, pid string }

func (c *scriptCluster) status() []clusterNode {
	c.t.Helper()
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(c.script("status")), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			c.t.Fatalf("cluster.sh status printed %q; want NAME URL ROLE PID", line)
		}
		nodes = append(nodes, clusterNode{f[0], f[1], f[2], f[3]})
	}
	return nodes
}

// kill sends sig to the process the script recorded for name (a node,
// etcd or versitygw).
func (c *scriptCluster) kill(name string, sig syscall.Signal) {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, name+".pid"))
	if err != nil {
		c.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("kill %s (pid %d): %v", name, pid, err)
	}
	// Wait for it to be gone, so that restart-dead sees it dead.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s (pid %d) still runs a minute after signal %v", name, pid, sig)
		}
	}
}

// clusterStatus reads GET /cluster of the node at url (ok false if it does
// not answer).
func clusterStatus(url string) (ledger.ClusterStatus, bool) {
	var st ledger.ClusterStatus
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url + "/cluster")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, true
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
	}
}

// ---- clients and what they saw ---------------------------------------------

// ack is an append a client got acknowledged.
type ack struct {
	client   int
	index    uint64
	leafHash tlog.Hash
	at       time.Time
}

// observed collects what every client saw: its acknowledged appends, the
// checkpoints of every answer (one note per size, or a conflict), and the
// refusals by reason.
type observed struct {
	mu          sync.Mutex
	acks        []ack
	checkpoints map[uint64]*proofs.Checkpoint
	conflicts   []string
	refusals    map[string]int
	surfaced    []string // the first refusals that reached a caller, with their time
	fatal       []string // answers no client may get (a fork, a rollback, a bad proof)
}

func newObserved() *observed {
	return &observed{checkpoints: map[uint64]*proofs.Checkpoint{}, refusals: map[string]int{}}
}

func (o *observed) checkpoint(cp *proofs.Checkpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.checkpoints[cp.Size]; ok {
		if !bytes.Equal(old.Note, cp.Note) {
			o.conflicts = append(o.conflicts, fmt.Sprintf("size %d: %q and %q", cp.Size, old.Note, cp.Note))
		}
		return
	}
	o.checkpoints[cp.Size] = cp
}

func (o *observed) acked(client int, e *client.Entry) {
	o.checkpoint(e.Checkpoint)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acks = append(o.acks, ack{client: client, index: e.Index, leafHash: tlog.RecordHash(e.Leaf.Raw), at: time.Now()})
}

// clientsAckedSince says whether each of n clients had an append
// acknowledged after t.
func (o *observed) clientsAckedSince(n int, t time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[int]bool{}
	for i := len(o.acks) - 1; i >= 0 && o.acks[i].at.After(t); i-- {
		seen[o.acks[i].client] = true
	}
	return len(seen) == n
}

// transient are the refusals a client of a cluster under chaos may see and
// retry: a node down, no leader yet, a store or etcd away, a replica behind.
var transient = []string{client.ReasonTransport, ledger.ReasonNotLeader, ledger.ReasonNoLeader, ledger.ReasonStoreUnavailable,
	ledger.ReasonReplicaBehind, ledger.ReasonShuttingDown, "deadline_exceeded", "canceled"}

func (o *observed) refused(err error) {
	reason := proofs.Reason(err)
	if reason == "" {
		reason = connect.CodeOf(err).String()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refusals[reason]++
	if len(o.surfaced) < 10 {
		o.surfaced = append(o.surfaced, time.Now().UTC().Format("15:04:05.000")+" "+reason+": "+err.Error())
	}
	if !slices.Contains(transient, reason) && len(o.fatal) < 20 {
		o.fatal = append(o.fatal, err.Error()+" ("+reason+")")
	}
}

func (o *observed) ackCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.acks)
}

// failFast ends the test at once if a client got an answer no client may
// get, rather than waiting for appends that will not come.
func (o *observed) failFast(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.fatal) > 0 {
		t.Fatalf("clients got: %s (refusals so far: %v)", strings.Join(o.fatal, "; "), o.refusals)
	}
}

// newAgentKey is a fresh agent public key (PKIX DER): a key binds one
// agent only (key_in_use).
func newAgentKey() []byte {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return der
}

// appenders are concurrent SDK clients of the cluster, each appending key
// bindings (signed by the registrar) one after another, each resubmitting
// an envelope until it is acknowledged, as a client that must not lose a
// write does.
type appenders struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startAppenders(t *testing.T, n int, servers string, logKey note.Verifier, regKey string, o *observed) *appenders {
	t.Helper()
	pem, err := os.ReadFile(regKey)
	if err != nil {
		t.Fatal(err)
	}
	registrar, err := client.LoadSigner(pem)
	if err != nil {
		t.Fatal(err)
	}
	a := &appenders{stop: make(chan struct{})}
	for i := range n {
		c := client.New(servers, logKey, client.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-a.stop:
					return
				default:
				}
				kb := &proofs.KeyBinding{Agent: fmt.Sprintf("spiffe://example.org/chaos/c%d-%d-%s", i, seq, client.NewNonce()[:8]), PublicKey: newAgentKey(), Tier: proofs.TierDraft}
				env, err := registrar.SignKeyBinding(kb, time.Now())
				if err != nil {
					o.refused(err)
					return
				}
				// Until acknowledged (bounded, so a broken cluster fails
				// the test rather than hanging it).
				for try := 0; ; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					e, err := c.Append(ctx, env)
					cancel()
					if err == nil {
						o.acked(i, e)
						break
					}
					o.refused(err)
					if try == 40 {
						o.mu.Lock()
						o.fatal = append(o.fatal, fmt.Sprintf("client %d: envelope %d not acknowledged after %d tries: %v", i, seq, try+1, err))
						o.mu.Unlock()
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
				if seq%5 == 0 { // a read now and then: its checkpoint counts too
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					if cp, err := c.Checkpoint(ctx); err == nil {
						o.checkpoint(cp)
					} else {
						o.refused(err)
					}
					cancel()
				}
			}
		}()
	}
	return a
}

// finish stops the appenders once each has its current envelope
// acknowledged.
func (a *appenders) finish() {
	close(a.stop)
	a.wg.Wait()
}

// ---- the checks afterwards ---------------------------------------------------

// checkLog reads the whole log back through a fresh client of every
// node's URL list and checks: every acknowledged append at its index,
// every checkpoint seen the root of a prefix of the log (so they are
// pairwise consistent; proven again below with consistency proofs computed
// by golang.org/x/mod/sumdb/tlog between consecutive sizes), one
// checkpoint per size, and no refusal a client must never get. It returns
// the leaf hashes.
func checkLog(t *testing.T, servers string, logKey note.Verifier, o *observed) []tlog.Hash {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.fatal {
		t.Errorf("a client got: %s", f)
	}
	for _, c := range o.conflicts {
		t.Errorf("two checkpoints for one size: %s", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var maxSeen uint64
	for size := range o.checkpoints {
		maxSeen = max(maxSeen, size)
	}
	// A fresh client trusts nothing yet, so a node still catching up may
	// answer it with an older checkpoint: read until the log is as large as
	// the largest checkpoint any client saw.
	c := client.New(servers, logKey)
	var cp *proofs.Checkpoint
	for deadline := time.Now().Add(2 * time.Minute); cp == nil || cp.Size < maxSeen; time.Sleep(100 * time.Millisecond) {
		var err error
		if cp, err = c.Checkpoint(ctx); err != nil {
			t.Fatalf("reading the final checkpoint: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log's checkpoint is %d entries two minutes on; clients saw %d", cp.Size, maxSeen)
		}
	}
	var leaves []tlog.Hash
	for uint64(len(leaves)) < cp.Size {
		ls, _, err := c.Entries(ctx, uint64(len(leaves)), uint32(min(1000, cp.Size-uint64(len(leaves)))))
		if err != nil {
			t.Fatalf("reading entries from %d: %v", len(leaves), err)
		}
		for _, l := range ls {
			leaves = append(leaves, tlog.RecordHash(l.Raw))
		}
	}
	seen := map[uint64]bool{}
	for _, a := range o.acks {
		switch {
		case a.index >= uint64(len(leaves)):
			t.Errorf("acknowledged entry %d is past the log's end (%d)", a.index, len(leaves))
		case leaves[a.index] != a.leafHash:
			t.Errorf("acknowledged entry %d: the log holds %x there, the client was answered %x", a.index, leaves[a.index], a.leafHash)
		case seen[a.index]:
			t.Errorf("two appends acknowledged at index %d", a.index)
		}
		seen[a.index] = true
	}
	// Every checkpoint any client saw is the root of the log's prefix of
	// its size.
	hashes := memHashes(leaves)
	o.checkpoints[cp.Size] = cp
	sizes := make([]uint64, 0, len(o.checkpoints))
	for size, seen := range o.checkpoints {
		sizes = append(sizes, size)
		if size > uint64(len(leaves)) {
			t.Errorf("a client saw a checkpoint of %d entries; the log has %d", size, len(leaves))
			continue
		}
		root, err := tlog.TreeHash(int64(size), hashes)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root[:], seen.Root) {
			t.Errorf("the checkpoint of size %d a client saw has root %x; the log's prefix has %x", size, seen.Root, root)
		}
	}
	// Consistency proofs between each pair of consecutive sizes seen,
	// computed by x/mod's tlog from the log's leaves and checked against
	// the roots the clients were given.
	slices.Sort(sizes)
	for i := 1; i < len(sizes); i++ {
		a, b := o.checkpoints[sizes[i-1]], o.checkpoints[sizes[i]]
		if a.Size == 0 || b.Size > uint64(len(leaves)) {
			continue
		}
		proof, err := tlog.ProveTree(int64(b.Size), int64(a.Size), hashes)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, int64(b.Size), tlog.Hash(b.Root), int64(a.Size), tlog.Hash(a.Root)); err != nil {
			t.Errorf("checkpoints %d and %d a client saw are not consistent: %v", a.Size, b.Size, err)
		}
	}
	t.Logf("%d acknowledged appends, %d distinct checkpoints seen, log size %d; refusals that reached a caller after the SDK's retries: %v", len(o.acks), len(o.checkpoints), len(leaves), o.refusals)
	for _, r := range o.surfaced {
		t.Logf("  %s", r)
	}
	return leaves
}

// memHashes is a tlog.HashReader over the stored hashes of a tree of
// the given leaf hashes.
func memHashes(leaves []tlog.Hash) tlog.HashReaderFunc {
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("hash %d not stored", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	for n, l := range leaves {
		add, err := tlog.StoredHashesForRecordHash(int64(n), l, r)
		if err != nil {
			panic(err)
		}
		stored = append(stored, add...)
	}
	return r
}

// percentile of sorted durations (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ---- the tests -----------------------------------------------------------------

// TestChaosLeaderKills: three nodes (scripts/cluster.sh), four appending
// clients, and the leader killed with SIGKILL 20 times (3 with -short),
// each time restarted by `cluster.sh restart-dead` once another node
// leads. Afterwards every acknowledged append is at its index, every
// checkpoint seen is consistent with every other and one per size, and the
// bucket, read with a third-party tlog-tiles client, holds the log. The
// failover time, from the kill to a node leading, is logged (p50, p99),
// never asserted.
func TestChaosLeaderKills(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 3
	}
	c := startScriptCluster(t)
	o := newObserved()
	const clients = 4
	app := startAppenders(t, clients, c.servers, c.logKey, c.regKey, o)
	defer func() {
		select {
		case <-app.stop:
		default:
			close(app.stop) // a failed test: do not wait on the clients
		}
	}()
	waitFor(t, "the first appends", 3*time.Minute, func() bool { o.failFast(t); return o.ackCount() >= clients })

	var failover, firstAck []time.Duration
	for k := range kills {
		var lead clusterNode
		waitFor(t, "a leader", 2*time.Minute, func() bool {
			for _, n := range c.status() {
				if n.role == "leader" {
					if st, ok := clusterStatus(n.url); ok && st.Role == "leader" {
						lead = n
						return true
					}
				}
			}
			return false
		})
		before := o.ackCount()
		killed := time.Now()
		c.kill(lead.name, syscall.SIGKILL)
		var next string
		waitFor(t, "another node to lead", 2*time.Minute, func() bool {
			for _, u := range c.urls {
				if st, ok := clusterStatus(u); ok && st.Role == "leader" && u != lead.url {
					next = st.NodeID
					return true
				}
			}
			return false
		})
		failover = append(failover, time.Since(killed))
		// Every client makes progress between two kills.
		waitFor(t, "an append of every client after the failover", 2*time.Minute, func() bool { o.failFast(t); return o.clientsAckedSince(clients, killed) })
		o.mu.Lock()
		for _, a := range o.acks[before:] {
			if a.at.After(killed) {
				firstAck = append(firstAck, a.at.Sub(killed))
				break
			}
		}
		o.mu.Unlock()
		c.script("restart-dead")
		t.Logf("kill %d at %s: %s (leader) killed, %s leads after %v", k+1, killed.UTC().Format("15:04:05.000"), lead.name, next, failover[len(failover)-1].Round(time.Millisecond))
	}
	waitFor(t, "appends after the last kill", 2*time.Minute, func() bool { return o.ackCount() >= clients+kills })
	app.finish()

	leaves := checkLog(t, c.servers, c.logKey, o)
	t.Logf("failover (SIGKILL of the leader to another node leading, lease %s), %d kills: p50 %v, p99 %v, max %v", chaosLeaseTTL, kills,
		percentile(failover, 0.5).Round(time.Millisecond), percentile(failover, 0.99).Round(time.Millisecond), percentile(failover, 1).Round(time.Millisecond))
	t.Logf("kill to the next acknowledged append (clients' back-off included): p50 %v, p99 %v",
		percentile(firstAck, 0.5).Round(time.Millisecond), percentile(firstAck, 0.99).Round(time.Millisecond))

	// Every node ends at the same checkpoint.
	waitFor(t, "every node at the log's size", 2*time.Minute, func() bool {
		for _, u := range c.urls {
			if st, ok := clusterStatus(u); !ok || st.Size != uint64(len(leaves)) {
				return false
			}
		}
		return true
	})
	checkBucket(t, c.bucket(), c.logKey, leaves, uint64(len(leaves)))
}

// TestChaosStoresDown: with appending clients running, the object store
// (versitygw) is killed for a while: appends are refused with a retryable
// error and nothing is acknowledged that is not in the bucket; then etcd
// is stopped: no node leads, no append is acknowledged, and reads keep
// working on every node; both come back (`cluster.sh restart-dead`) and
// the log goes on, every acknowledged append at its index.
func TestChaosStoresDown(t *testing.T) {
	c := startScriptCluster(t)
	o := newObserved()
	app := startAppenders(t, 3, c.servers, c.logKey, c.regKey, o)
	defer func() {
		select {
		case <-app.stop:
		default:
			close(app.stop)
		}
	}()
	waitFor(t, "the first appends", 3*time.Minute, func() bool { o.failFast(t); return o.ackCount() >= 3 })
	once := client.New(c.servers, c.logKey, client.WithRetry(1, 10*time.Millisecond))
	pem, err := os.ReadFile(c.regKey)
	if err != nil {
		t.Fatal(err)
	}
	registrar, err := client.LoadSigner(pem)
	if err != nil {
		t.Fatal(err)
	}
	envelope := func(name string) []byte {
		env, err := registrar.SignKeyBinding(&proofs.KeyBinding{Agent: "spiffe://example.org/chaos/" + name, PublicKey: newAgentKey(), Tier: proofs.TierDraft}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return env
	}

	// The object store stopped.
	c.kill("versitygw", syscall.SIGKILL)
	stopped := o.ackCount()
	// Acknowledgements in flight at the kill may still land (they were
	// stored); a fresh append must be refused, retryably.
	var refusal error
	waitFor(t, "an append to be refused while the object store is down", 2*time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, refusal = once.Append(ctx, envelope("s3down-"+client.NewNonce()[:8]))
		return refusal != nil
	})
	if r := proofs.Reason(refusal); !slices.Contains(transient, r) || connect.CodeOf(refusal) != connect.CodeUnavailable && r != client.ReasonTransport {
		t.Errorf("append while the object store is down: %v (%s); want a retryable Unavailable refusal", refusal, r)
	}
	time.Sleep(3 * time.Second) // a while: the clients keep trying
	during := o.ackCount() - stopped
	c.script("restart-dead")
	waitFor(t, "appends after the object store returned", 3*time.Minute, func() bool { return o.ackCount() > stopped+during+3 })
	t.Logf("object store down: first refusal %q; %d appends acknowledged after the kill (in flight at it, stored)", proofs.Reason(refusal), during)

	// etcd stopped: no leader, no appends; reads go on.
	cp, err := client.New(c.servers, c.logKey).Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.kill("etcd", syscall.SIGTERM)
	waitFor(t, "no node to lead", 2*time.Minute, func() bool {
		for _, u := range c.urls {
			if st, ok := clusterStatus(u); !ok || st.Role == "leader" {
				return false
			}
		}
		return true
	})
	noLeader := o.ackCount()
	if _, err := once.Append(t.Context(), envelope("etcddown-"+client.NewNonce()[:8])); err == nil || !slices.Contains(transient, proofs.Reason(err)) {
		t.Errorf("append while etcd is down: %v; want a retryable refusal", err)
	} else {
		t.Logf("etcd down: an append refused %q", proofs.Reason(err))
	}
	for _, u := range c.urls { // each node answers reads on its own
		rc := client.New(u, c.logKey)
		got, err := rc.Checkpoint(t.Context())
		if err != nil {
			t.Errorf("GetCheckpoint from %s while etcd is down: %v", u, err)
			continue
		}
		if got.Size < 1 {
			t.Errorf("%s serves an empty checkpoint", u)
			continue
		}
		o.checkpoint(got)
		if _, err := rc.Entry(t.Context(), got.Size-1); err != nil {
			t.Errorf("GetEntry from %s while etcd is down: %v", u, err)
		}
	}
	time.Sleep(3 * time.Second)
	if n := o.ackCount(); n != noLeader {
		t.Errorf("%d appends acknowledged while no node led", n-noLeader)
	}
	c.script("restart-dead")
	waitFor(t, "appends after etcd returned", 3*time.Minute, func() bool { return o.ackCount() > noLeader+3 })
	app.finish()
	leaves := checkLog(t, c.servers, c.logKey, o)
	if uint64(len(leaves)) < cp.Size {
		t.Errorf("the log shrank from %d to %d", cp.Size, len(leaves))
	}
	checkBucket(t, c.bucket(), c.logKey, leaves, uint64(len(leaves)))
}

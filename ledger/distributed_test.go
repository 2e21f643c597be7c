package ledger

// Unit tests of distributed mode with in-memory fakes of the object store
// and of etcd (memObjects, fakeCoord below), and real Badger stores in
// temporary directories. They check the ledger's side of the protocol;
// the real S3 and etcd engines are tested in their own packages and by
// the cluster tests.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// memObjects is an in-memory ObjectStore (unit tests only), with S3's
// ETags (the quoted MD5 of the bytes). fault, if set, decides the fate of
// a write (Put, Create or Replace) that would otherwise succeed: stored or
// not, and the error returned.
type memObjects struct {
	mu    sync.Mutex
	m     map[string][]byte
	fault func(key string) (store bool, err error)
}

func newMemObjects() *memObjects { return &memObjects{m: map[string][]byte{}} }

func (s *memObjects) Get(ctx context.Context, key string) ([]byte, error) {
	b, _, err := s.GetWithETag(ctx, key)
	return b, err
}

func (s *memObjects) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, "", fmt.Errorf("%s: %w", key, ErrObjectNotFound)
	}
	return bytes.Clone(v), memETag(v), nil
}

func memETag(b []byte) string { return fmt.Sprintf("%q", fmt.Sprintf("%x", md5.Sum(b))) }

func (s *memObjects) Put(ctx context.Context, key string, data []byte) error {
	return s.write(key, data, func(old []byte, ok bool) error { return nil })
}

func (s *memObjects) Create(ctx context.Context, key string, data []byte) error {
	return s.write(key, data, func(old []byte, ok bool) error {
		if ok {
			return fmt.Errorf("%s: %w", key, ErrObjectExists)
		}
		return nil
	})
}

func (s *memObjects) Replace(ctx context.Context, key string, data []byte, etag string) error {
	return s.write(key, data, func(old []byte, ok bool) error {
		if !ok || memETag(old) != etag {
			return fmt.Errorf("%s: %w", key, ErrObjectChanged)
		}
		return nil
	})
}

func (s *memObjects) write(key string, data []byte, cond func(old []byte, ok bool) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	if err := cond(old, ok); err != nil {
		return err
	}
	if s.fault != nil {
		if store, err := s.fault(key); err != nil {
			if store {
				s.m[key] = bytes.Clone(data)
			}
			return err
		}
	}
	s.m[key] = bytes.Clone(data)
	return nil
}

func (s *memObjects) setFault(f func(string) (bool, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *memObjects) get(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

// fakeCoord is an in-memory etcd (unit tests only): one checkpoint, one
// term at a time, and a broadcast of every change. winner, if set, is the
// only node a campaign may elect; swapFault makes swaps fail without
// swapping.
type fakeCoord struct {
	mu        sync.Mutex
	cp        []byte
	term      *fakeTerm
	changed   chan struct{}
	winner    string
	swapFault error
	// swapPersist makes a faulty swap happen all the same ("failed but
	// persisted"); readFault fails Checkpoint reads.
	swapPersist bool
	readFault   error
}

func newFakeCoord() *fakeCoord { return &fakeCoord{changed: make(chan struct{})} }

// broadcast wakes every waiter; c.mu is held.
func (c *fakeCoord) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *fakeCoord) setWinner(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.winner = node
	c.broadcast()
}

func (c *fakeCoord) setSwapFault(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.swapFault = err
}

// fence ends the current term in etcd without its holder noticing (its
// Done stays open): a lease lost while the leader still believes it leads.
func (c *fakeCoord) fence() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.term = nil
	c.broadcast()
}

func (c *fakeCoord) checkpoint() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cp
}

type fakeTerm struct {
	c    *fakeCoord
	m    Member
	done chan struct{}
	once sync.Once
}

func (t *fakeTerm) Done() <-chan struct{} { return t.done }

func (t *fakeTerm) Swap(ctx context.Context, old, new []byte) error {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.swapFault != nil && !c.swapPersist:
		return c.swapFault
	case c.term != t:
		return errors.New("deposed")
	case !bytes.Equal(c.cp, old):
		return errors.New("conflict")
	}
	c.cp = bytes.Clone(new)
	c.broadcast()
	return c.swapFault
}

func (t *fakeTerm) Resign(ctx context.Context) error {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.term == t {
		c.term = nil
		c.broadcast()
	}
	t.once.Do(func() { close(t.done) })
	return nil
}

// nodeCoord is one node's view of fakeCoord: a Coordination.
type nodeCoord struct {
	c    *fakeCoord
	self Member
}

func (n nodeCoord) Campaign(ctx context.Context) (Term, error) {
	c := n.c
	for {
		c.mu.Lock()
		if c.term == nil && (c.winner == "" || c.winner == n.self.NodeID) {
			c.term = &fakeTerm{c: c, m: n.self, done: make(chan struct{})}
			c.broadcast()
			t := c.term
			c.mu.Unlock()
			return t, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (n nodeCoord) Leader(ctx context.Context) (Member, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.term == nil {
		return Member{}, errors.New("no leader")
	}
	return n.c.term.m, nil
}

func (n nodeCoord) Checkpoint(ctx context.Context) ([]byte, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.readFault != nil {
		return nil, n.c.readFault
	}
	return n.c.cp, nil
}

// setFaults sets the swap and read faults at once.
func (c *fakeCoord) setFaults(swap error, persist bool, read error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.swapFault, c.swapPersist, c.readFault = swap, persist, read
}

func (n nodeCoord) WatchCheckpoint(ctx context.Context) <-chan []byte {
	out := make(chan []byte)
	go func() {
		defer close(out)
		var last []byte
		for {
			n.c.mu.Lock()
			cp, ch := n.c.cp, n.c.changed
			n.c.mu.Unlock()
			if cp != nil && !bytes.Equal(cp, last) {
				select {
				case out <- cp:
					last = cp
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// testCluster is the shared part of a cluster of test nodes: the fakes and
// the trust anchors every node is configured with.
type testCluster struct {
	coord     *fakeCoord
	store     *memObjects
	registrar *testKey
	admin     *testKey
	keyFile   []byte // the log key every node shares, once the first node made it
}

func newTestCluster(t *testing.T) *testCluster {
	return &testCluster{coord: newFakeCoord(), store: newMemObjects(), registrar: newTestKey(t), admin: newTestKey(t)}
}

// open opens node name in dir (sharing the cluster's log key) and closes
// it at the end of the test.
func (tc *testCluster) open(t *testing.T, dir, name string) *Log {
	t.Helper()
	return tc.openWith(t, dir, name, tc.store)
}

// openWith is open with the node's own view of the cluster's bucket
// (tc.store behind a wrapper that delays or counts its requests).
func (tc *testCluster) openWith(t *testing.T, dir, name string, store ObjectStore) *Log {
	t.Helper()
	if tc.keyFile != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, LogKeyFile), tc.keyFile, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	self := Member{NodeID: name, URL: "http://" + name + ".test"}
	l := openTestLog(t, dir, tc.registrar, func(o *Options) {
		o.AdminKeys = []*proofs.PublicKey{tc.admin.pub()}
		o.ObjectStore = store
		o.Coordination = nodeCoord{c: tc.coord, self: self}
		o.NodeID, o.NodeURL = self.NodeID, self.URL
		if os.Getenv("WARRANT_TEST_LOG") != "" {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", name)
		}
	})
	t.Cleanup(func() { l.Close() })
	if tc.keyFile == nil {
		k, err := os.ReadFile(filepath.Join(dir, LogKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		tc.keyFile = k
	}
	return l
}

func role(l *Log) string {
	st, _ := l.ClusterStatus(context.Background())
	return st.Role
}

// clusterSize is the size of the checkpoint swapped into the fake etcd.
func (tc *testCluster) size(t *testing.T, l *Log) uint64 {
	note := tc.coord.checkpoint()
	if note == nil {
		return 0
	}
	cp, err := proofs.OpenCheckpoint(note, l.verifier)
	if err != nil {
		t.Fatalf("the swapped checkpoint does not verify: %v", err)
	}
	return cp.Size
}

// waitLeading waits until l leads and has recorded its configuration and
// policy.
func (tc *testCluster) waitLeading(t *testing.T, l *Log) {
	t.Helper()
	waitFor(t, "the node to lead", func() bool { return role(l) == "leader" })
	waitFor(t, "the configuration and policy", func() bool { return l.Checkpoint().Size >= 2 })
}

// checkBucketMirrors checks that the bucket holds, for l's checkpoint,
// every tile and bundle with the bytes GET /tile serves, and the
// checkpoint object.
func checkBucketMirrors(t *testing.T, tc *testCluster, l *Log) {
	t.Helper()
	cp := l.Checkpoint()
	srv := httptest.NewServer(NewHandler(l))
	defer srv.Close()
	for _, tr := range tilesBetween(0, cp.Size) {
		key := tileObjectKey(tr)
		resp, err := http.Get(srv.URL + "/" + key)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /%s: %d", key, resp.StatusCode)
		}
		if got := tc.store.get(key); !bytes.Equal(got, body) {
			t.Errorf("bucket %s differs from GET /%s (%d and %d bytes)", key, key, len(got), len(body))
		}
	}
	if got := tc.store.get(objectCheckpoint); !bytes.Equal(got, cp.Note) {
		t.Errorf("bucket checkpoint object is %q, want %q", got, cp.Note)
	}
}

// TestTileObjectKeys checks the object keys against the paths the tile
// server parses, and the tiles a growth adds.
func TestTileObjectKeys(t *testing.T) {
	for _, tr := range []tileRequest{{index: 0, width: 256}, {entries: true, index: 1234067, width: 5}, {level: 2, index: 1000, width: 256}, {entries: true, index: 999, width: 1}} {
		got, ok := parseTilePath(strings.TrimPrefix(tileObjectKey(tr), "tile/"))
		if !ok || got != tr {
			t.Errorf("%s parses as %+v, %v; want %+v", tileObjectKey(tr), got, ok, tr)
		}
	}
	var keys []string
	for _, tr := range tilesBetween(250, 260) {
		keys = append(keys, tileObjectKey(tr))
	}
	want := "tile/entries/000 tile/entries/001.p/4 tile/0/000 tile/0/001.p/4 tile/1/000.p/1"
	if strings.Join(keys, " ") != want {
		t.Errorf("tilesBetween(250, 260) = %s, want %s", strings.Join(keys, " "), want)
	}
	if n := len(tilesBetween(7, 7)); n != 0 {
		t.Errorf("no growth puts %d objects", n)
	}
}

// TestClusterPublishesBeforeAnswering (unit test, fakes): the leader
// answers an append only once its batch is in the object store and
// swapped in; an append whose puts fail, whether the object was stored or
// not, is refused with a retryable error, nothing new is sequenced until
// the leader has published it, and the resubmitted envelope then gets the
// entry at its index.
func TestClusterPublishesBeforeAnswering(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	ctx := context.Background()
	ok, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true))
	if err != nil {
		t.Fatal(err)
	}
	if got := tc.size(t, a); got != ok.Index+1 || !bytes.Equal(tc.coord.checkpoint(), ok.Checkpoint.Note) {
		t.Fatalf("answered with a checkpoint of %d, swapped %d", ok.Checkpoint.Size, got)
	}
	checkBucketMirrors(t, tc, a)

	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			before := tc.size(t, a)
			tc.store.setFault(func(key string) (bool, error) {
				if strings.HasPrefix(key, "tile/entries/") {
					return stored, errors.New("injected put failure")
				}
				return true, nil
			})
			env := bindingEnvelope(t, tc.registrar, fmt.Sprintf("spiffe://example.org/agent/p%v", stored), newTestKey(t), proofs.TierDraft, false)
			_, err := a.Append(ctx, env)
			if proofs.Reason(err) != ReasonStoreUnavailable || proofs.RPCStatus(proofs.Reason(err)) != proofs.RPCUnavailable {
				t.Fatalf("append with a failing object store: %v, want a retryable %s", err, ReasonStoreUnavailable)
			}
			if got := tc.size(t, a); got != before || a.Checkpoint().Size != before {
				t.Fatalf("swapped %d and served %d after a failed publication; want %d", got, a.Checkpoint().Size, before)
			}
			other := bindingEnvelope(t, tc.registrar, fmt.Sprintf("spiffe://example.org/agent/q%v", stored), newTestKey(t), proofs.TierDraft, false)
			if _, err := a.Append(ctx, other); proofs.Reason(err) != ReasonStoreUnavailable {
				t.Fatalf("a new append while entries wait to be published: %v, want %s", err, ReasonStoreUnavailable)
			}
			tc.store.setFault(nil)
			waitFor(t, "the pending entry to be published", func() bool { return tc.size(t, a) == before+1 })
			got, err := a.Append(ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			if got.Index != before || !got.Duplicate || got.Checkpoint.Size != before+1 {
				t.Fatalf("resubmission: index %d duplicate %v checkpoint %d; want %d, true, %d", got.Index, got.Duplicate, got.Checkpoint.Size, before, before+1)
			}
			checkBucketMirrors(t, tc, a)
		})
	}
}

// TestClusterDeposedBatchIsNotAcknowledged (unit test, fakes): a leader
// that lost its term without noticing commits a batch locally, but its
// swap fails against the new leader's checkpoint: the batch is refused
// not_leader, and the node discards it and follows the new leader.
func TestClusterDeposedBatchIsNotAcknowledged(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	b := tc.open(t, t.TempDir(), "b")
	ctx := context.Background()
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	tc.coord.setWinner("b")
	tc.coord.fence() // a still believes it leads
	waitFor(t, "b to lead", func() bool { return role(b) == "leader" })
	x, err := b.Append(ctx, bindingEnvelope(t, tc.registrar, agentID, newTestKey(t), proofs.TierExecute, false))
	if err != nil {
		t.Fatal(err)
	}
	y := bindingEnvelope(t, tc.registrar, "spiffe://example.org/agent/deposed", newTestKey(t), proofs.TierDraft, false)
	if got, err := a.Append(ctx, y); proofs.Reason(err) != ReasonNotLeader {
		t.Fatalf("append to a deposed leader: %+v, %v; want %s", got, err, ReasonNotLeader)
	}
	waitFor(t, "a to follow b's checkpoint", func() bool {
		return role(a) == "follower" && bytes.Equal(a.Checkpoint().Note, tc.coord.checkpoint())
	})
	leaf, err := a.Entry(ctx, x.Index)
	if err != nil || !bytes.Equal(leaf, x.Leaf) {
		t.Fatalf("a's entry %d after rebuilding: %v; want b's", x.Index, err)
	}
	_, err = a.Append(ctx, y)
	var nl *NotLeaderError
	if proofs.Reason(err) != ReasonNotLeader || !errors.As(err, &nl) || nl.Leader.NodeID != "b" || nl.Leader.URL != "http://b.test" {
		t.Fatalf("append to a follower: %v; want %s naming b", err, ReasonNotLeader)
	}
	for _, l := range []*Log{a, b} {
		checkTreeMatchesLeaves(t, l)
	}
}

// TestClusterFollowerServesVerifiedCheckpoint (unit test, fakes): a second
// node ingests the leader's entries from the bucket and serves the same
// checkpoint, with proofs that verify under the log key; it says who leads
// at GET /cluster.
func TestClusterFollowerServesVerifiedCheckpoint(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	b := tc.open(t, t.TempDir(), "b")
	ctx := context.Background()
	human, agent := newTestKey(t), newTestKey(t)
	for _, env := range [][]byte{
		bindingEnvelope(t, tc.registrar, humanID, human, proofs.TierDraft, true),
		bindingEnvelope(t, tc.registrar, agentID, agent, proofs.TierExecute, false),
		signDelegation(t, human, delegation("d1", humanID, agentID, "nonce-0001")),
	} {
		if _, err := a.Append(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 { // past one full tile
		if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, fmt.Sprintf("spiffe://example.org/agent/f%d", i), newTestKey(t), proofs.TierDraft, false)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b to serve a's checkpoint", func() bool { return bytes.Equal(b.Checkpoint().Note, a.Checkpoint().Note) })
	verifier, err := proofs.ParseVerifierKey(a.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := proofs.OpenCheckpoint(b.Checkpoint().Note, verifier)
	if err != nil {
		t.Fatal(err)
	}
	for idx := range cp.Size {
		leaf, err := b.Entry(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		hashes, _, err := b.InclusionProof(ctx, idx, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proofs.VerifyInclusion(idx, cp.Size, proofs.LeafHash(leaf), hashes, cp.Root); err != nil {
			t.Fatalf("entry %d from the follower: %v", idx, err)
		}
	}
	if _, err := b.Status(ctx, "d1"); err != nil {
		t.Fatalf("the follower's status of d1: %v", err)
	}
	checkBucketMirrors(t, tc, b)
	srv := httptest.NewServer(NewHandler(b))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "b" || st.Role != "follower" || st.Leader == nil || st.Leader.NodeID != "a" || st.Leader.URL != "http://a.test" || st.Size != cp.Size {
		t.Fatalf("GET /cluster on the follower: %+v", st)
	}
	// What forwarding asks (ForwardConfig.Leader), and a write that reaches
	// the follower's own service: not_leader, naming the leader.
	waitFor(t, "the follower to know the leader", func() bool { u, self := b.ClusterLeader(); return u == "http://a.test" && !self })
	if u, self := a.ClusterLeader(); u != "http://a.test" || !self {
		t.Fatalf("the leader's ClusterLeader: %q, %v", u, self)
	}
	rpc := warrantv1connect.NewLedgerServiceClient(srv.Client(), srv.URL)
	_, err = rpc.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: bindingEnvelope(t, tc.registrar, "spiffe://example.org/agent/late", newTestKey(t), proofs.TierDraft, false)}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable || detailReason(ce) != ReasonNotLeader || ce.Meta().Get(LeaderHeader) != "http://a.test" {
		t.Fatalf("Append to the follower's service: %v (meta %v); want Unavailable %s naming http://a.test", err, ce.Meta(), ReasonNotLeader)
	}
}

// TestClusterTakeoverDiscardsUnswappedBatch (unit test, fakes): a leader
// commits a batch locally whose swap fails, and stops; another node takes
// over and sequences other entries; when the first node opens again it
// discards its unswapped batch, rebuilds from the bucket and serves the
// cluster's checkpoint.
func TestClusterTakeoverDiscardsUnswappedBatch(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	dirA := t.TempDir()
	a := tc.open(t, dirA, "a")
	tc.waitLeading(t, a)
	ctx := context.Background()
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	tc.coord.setSwapFault(errors.New("injected: etcd timed out"))
	lost := bindingEnvelope(t, tc.registrar, "spiffe://example.org/agent/unswapped", newTestKey(t), proofs.TierDraft, false)
	if _, err := a.Append(ctx, lost); proofs.Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("append whose swap fails: %v, want %s", err, ReasonStoreUnavailable)
	}
	swapped := tc.size(t, a)
	a.Close()
	tc.coord.setSwapFault(nil)
	tc.coord.setWinner("b")
	b := tc.open(t, t.TempDir(), "b")
	tc.waitLeading(t, b)
	z, err := b.Append(ctx, bindingEnvelope(t, tc.registrar, agentID, newTestKey(t), proofs.TierExecute, false))
	if err != nil {
		t.Fatal(err)
	}
	if z.Index != swapped {
		t.Fatalf("b appended at %d, want %d (the index of a's unswapped entry)", z.Index, swapped)
	}
	a = tc.open(t, dirA, "a")
	if !bytes.Equal(a.Checkpoint().Note, tc.coord.checkpoint()) {
		t.Fatalf("a reopened serves %q, want the cluster's %q", a.Checkpoint().Note, tc.coord.checkpoint())
	}
	leaf, err := a.Entry(ctx, z.Index)
	if err != nil || !bytes.Equal(leaf, z.Leaf) {
		t.Fatalf("a's entry %d: %v; want b's entry", z.Index, err)
	}
	checkTreeMatchesLeaves(t, a)
	// a takes over again, from its rebuilt store: the unswapped envelope
	// is appended anew.
	tc.coord.setWinner("a")
	b.Close()
	tc.waitLeading(t, a)
	got, err := a.Append(ctx, lost)
	if err != nil || got.Duplicate || got.Index != z.Index+1 {
		t.Fatalf("the unswapped envelope appended again: %+v, %v; want a new entry at %d", got, err, z.Index+1)
	}
}

// TestClusterRebuildsFromEmptyDir (unit test, fakes): a node started on a
// data directory holding only the log key rebuilds its store from the
// bucket, with the state machine's state current: as the next leader it
// deduplicates resubmissions and decides delegations under the bindings it
// ingested.
func TestClusterRebuildsFromEmptyDir(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	ctx := context.Background()
	human, agent := newTestKey(t), newTestKey(t)
	bind := bindingEnvelope(t, tc.registrar, humanID, human, proofs.TierDraft, true)
	first, err := a.Append(ctx, bind)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, agentID, agent, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	d1, err := a.Append(ctx, signDelegation(t, human, delegation("d1", humanID, agentID, "nonce-0001")))
	if err != nil || d1.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("d1: %+v, %v", d1, err)
	}
	a.Close()
	tc.coord.setWinner("c")
	c := tc.open(t, t.TempDir(), "c")
	if !bytes.Equal(c.Checkpoint().Note, tc.coord.checkpoint()) {
		t.Fatalf("c serves %q, want the cluster's %q", c.Checkpoint().Note, tc.coord.checkpoint())
	}
	checkTreeMatchesLeaves(t, c)
	tc.waitLeading(t, c)
	again, err := c.Append(ctx, bind)
	if err != nil || !again.Duplicate || again.Index != first.Index {
		t.Fatalf("resubmission to the rebuilt node: %+v, %v; want entry %d", again, err, first.Index)
	}
	reused, err := c.Append(ctx, signDelegation(t, human, delegation("d1", humanID, agentID, "nonce-0002")))
	if err != nil || reused.Decision.Outcome != proofs.OutcomeDenied || reused.Decision.Reasons[0] != proofs.ReasonIDReused {
		t.Fatalf("a delegation reusing an ingested id: %+v, %v; want denied %s", reused, err, proofs.ReasonIDReused)
	}
	child := delegation("d2", agentID, "spiffe://example.org/agent/nobody", "nonce-0003")
	child.Parent, child.RootSubject = "d1", humanID
	d2, err := c.Append(ctx, signDelegation(t, agent, child))
	if err != nil || d2.Decision == nil {
		t.Fatalf("d2: %+v, %v", d2, err)
	}
	if d2.Decision.Outcome == proofs.OutcomeDenied && d2.Decision.Reasons[0] == proofs.ReasonParentNotFound {
		t.Fatalf("the rebuilt node does not know the ingested delegation d1: %+v", d2.Decision)
	}
}

// TestClusterRefusesUnverifiableCheckpoint (unit test, fakes): a node never
// serves a checkpoint that is not signed by the log key, or whose entries
// in the bucket do not hash to it; Open refuses to start on either.
func TestClusterRefusesUnverifiableCheckpoint(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	dirA := t.TempDir()
	a := tc.open(t, dirA, "a")
	tc.waitLeading(t, a)
	older := tc.coord.checkpoint()
	if _, err := a.Append(context.Background(), bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	good := tc.coord.checkpoint()
	cp, err := proofs.OpenCheckpoint(good, a.verifier)
	if err != nil {
		t.Fatal(err)
	}
	tryOpen := func() error {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, LogKeyFile), tc.keyFile, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(context.Background(), Options{Dir: dir, Logger: quietLogger(), RegistrarKeys: []*proofs.PublicKey{tc.registrar.pub()}, AdminKeys: []*proofs.PublicKey{tc.admin.pub()},
			ObjectStore: tc.store, Coordination: nodeCoord{c: tc.coord, self: Member{NodeID: "c"}}, NodeID: "c"})
		if err == nil {
			l.Close()
		}
		return err
	}

	// Signed by another key of the same name.
	skey, _, err := note.GenerateKey(rand.Reader, cp.Origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := note.Sign(&note.Note{Text: string(proofs.CheckpointBody(cp.Origin, cp.Size+1, cp.Root))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	tc.coord.mu.Lock()
	tc.coord.cp = forged
	tc.coord.mu.Unlock()
	if err := tryOpen(); !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("Open under a forged checkpoint: %v, want ErrClusterMismatch", err)
	}

	// The right checkpoint, over a bundle that was tampered with.
	tc.coord.mu.Lock()
	tc.coord.cp = good
	tc.coord.mu.Unlock()
	key := tileObjectKey(tileRequest{entries: true, index: 0, width: int(cp.Size)})
	bundle := tc.store.get(key)
	tampered := bytes.Clone(bundle)
	tampered[len(tampered)-2] ^= 1 // inside the last leaf
	tc.store.Put(context.Background(), key, tampered)
	if err := tryOpen(); !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("Open over a tampered bundle: %v, want ErrClusterMismatch", err)
	}
	tc.store.Put(context.Background(), key, bundle)
	if err := tryOpen(); err != nil {
		t.Fatalf("Open once the bundle is right again: %v", err)
	}

	// A checkpoint older than the one a node served: etcd went back.
	tc.coord.mu.Lock()
	tc.coord.cp = older
	tc.coord.mu.Unlock()
	_, err = Open(context.Background(), Options{Dir: dirA, Logger: quietLogger(), RegistrarKeys: []*proofs.PublicKey{tc.registrar.pub()},
		AdminKeys: []*proofs.PublicKey{tc.admin.pub()}, ObjectStore: tc.store, Coordination: nodeCoord{c: tc.coord, self: Member{NodeID: "a"}}, NodeID: "a"})
	if !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("Open of a node that served %d entries under a checkpoint of fewer: %v, want ErrClusterMismatch", cp.Size, err)
	}
}

// TestClusterSwapOutcomeUnknown (unit test, fakes): a swap that took
// effect in etcd but answered an error, while etcd cannot be read: the
// batch is refused as not acknowledged, and the leader, once etcd answers
// again, finds its own checkpoint swapped in and serves it without
// publishing it twice; the resubmission returns the entry.
func TestClusterSwapOutcomeUnknown(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	ctx := context.Background()
	before := a.Checkpoint().Size
	tc.coord.setFaults(errors.New("injected: etcd timed out"), true, errors.New("injected: etcd unreachable"))
	env := bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)
	if _, err := a.Append(ctx, env); proofs.Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("append whose swap outcome is unknown: %v, want %s", err, ReasonStoreUnavailable)
	}
	if a.Checkpoint().Size != before {
		t.Fatalf("serves %d entries before the outcome is known, want %d", a.Checkpoint().Size, before)
	}
	tc.coord.setFaults(nil, false, nil)
	waitFor(t, "the leader to serve its swapped checkpoint", func() bool { return a.Checkpoint().Size == before+1 })
	if !bytes.Equal(a.Checkpoint().Note, tc.coord.checkpoint()) {
		t.Fatal("the leader serves another checkpoint than the one swapped in")
	}
	got, err := a.Append(ctx, env)
	if err != nil || !got.Duplicate || got.Index != before {
		t.Fatalf("resubmission: %+v, %v; want entry %d", got, err, before)
	}
	if role(a) != "leader" {
		t.Fatal("the leader stepped down after its own swap")
	}
	checkBucketMirrors(t, tc, a)
}

// TestClusterLeaderThatCannotCatchUpResigns (unit test, fakes): a node that
// wins a term but cannot read the cluster's entries from its object store
// (here: a bucket prefix of its own) gives the term up after a few tries,
// so another node leads and appends go on; it does not hold the term, and
// every node's appends with it, for as long as it runs.
func TestClusterLeaderThatCannotCatchUpResigns(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	ctx := context.Background()
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	shared := tc.store
	tc.store = newMemObjects() // b's object store holds nothing of the log
	b := tc.open(t, t.TempDir(), "b")
	tc.store = shared

	// a's term ends and b wins the next one.
	tc.coord.setWinner("b")
	tc.coord.mu.Lock()
	aTerm := tc.coord.term
	tc.coord.mu.Unlock()
	if err := aTerm.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to win a term", func() bool {
		tc.coord.mu.Lock()
		defer tc.coord.mu.Unlock()
		return tc.coord.term != nil && tc.coord.term.m.NodeID == "b"
	})
	// From now on a may lead again, but only once b gives its term up.
	tc.coord.setWinner("a")
	waitFor(t, "a to lead again", func() bool { return role(a) == "leader" })
	if role(b) == "leader" {
		t.Fatal("b leads without having caught up")
	}
	// a's sequencer may still answer not_leader (a retryable refusal that
	// writes nothing) for a moment after its role flips; anything else fails.
	waitFor(t, "an append to a after b gave its term up", func() bool {
		_, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, agentID, newTestKey(t), proofs.TierExecute, false))
		if err != nil && proofs.Reason(err) != proofs.ReasonNotLeader {
			t.Fatalf("append after b gave its term up: %v", err)
		}
		return err == nil
	})
}

// TestClusterDeposedLeaderResigns (unit test, fakes): a leader that learns
// from a failed swap that another node swapped the checkpoint steps down
// and gives its term up, so that its election key does not keep every
// node, itself included, from leading.
func TestClusterDeposedLeaderResigns(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	a := tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	ctx := context.Background()
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	// etcd's checkpoint goes back behind a's back (a restore from an old
	// snapshot): a's next swap fails as a conflict while its term holds.
	tc.coord.mu.Lock()
	aTerm := tc.coord.term
	tc.coord.cp = []byte("an older checkpoint\n")
	tc.coord.mu.Unlock()
	_, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, agentID, newTestKey(t), proofs.TierExecute, false))
	if err == nil {
		t.Fatal("append acknowledged although the swap failed")
	}
	waitFor(t, "a to give its term up", func() bool {
		select {
		case <-aTerm.done:
			return true
		default:
			return false
		}
	})
}

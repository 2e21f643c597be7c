package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// gatedObjects is an ObjectStore whose Gets wait while the gate is shut:
// a follower that cannot fetch what it lacks stays behind.
type gatedObjects struct {
	ObjectStore
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGatedObjects(s ObjectStore) *gatedObjects {
	g := &gatedObjects{ObjectStore: s, open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedObjects) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *gatedObjects) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gatedObjects) Get(ctx context.Context, key string) ([]byte, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.ObjectStore.Get(ctx, key)
}

// TestReplicaBehindTrustedSize (unit test, fakes): a follower whose
// checkpoint is behind the size a client trusts does not answer a read
// from its older tree (the client would report a rollback): it waits for
// its ingest to catch up, and if it does not within a moment refuses
// replica_behind (Unavailable), so the client asks another node. When the
// cluster's own checkpoint is not past the node's, it answers, so a client
// ahead of the whole cluster still sees the rollback.
func TestReplicaBehindTrustedSize(t *testing.T) {
	tc, a, b, gate, ok := behindFollower(t)
	ctx := context.Background()
	trusted := ok.Checkpoint.Size
	if got := b.Checkpoint().Size; got >= trusted {
		t.Fatalf("b serves %d entries with its bucket shut; want fewer than %d", got, trusted)
	}
	s := &service{log: b}
	reason := func(err error) string {
		var ce *connect.Error
		if !errors.As(err, &ce) {
			return ""
		}
		return detailReason(ce)
	}

	// Behind, and not catching up: refused, retryably.
	_, err := s.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{TrustedSize: trusted}))
	if connect.CodeOf(err) != connect.CodeUnavailable || reason(err) != ReasonReplicaBehind {
		t.Fatalf("GetCheckpoint at trusted size %d on a follower at %d: %v; want Unavailable %s", trusted, b.Checkpoint().Size, err, ReasonReplicaBehind)
	}
	_, err = s.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: 0, Count: 1, TrustedSize: trusted}))
	if reason(err) != ReasonReplicaBehind {
		t.Errorf("GetEntries on the follower behind: %v; want %s", err, ReasonReplicaBehind)
	}
	// A read within the follower's tree, without a trusted size past it, is
	// answered as ever.
	if _, err := s.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: 0, Count: 1, TrustedSize: b.Checkpoint().Size})); err != nil {
		t.Errorf("GetEntries at the follower's own size: %v", err)
	}

	// Through the SDK: a client that trusts the leader's checkpoint and
	// lists the follower first gets its read from the leader; given the
	// follower alone, it gets the retryable refusal, its trust unchanged
	// (not a rollback).
	srvA, srvB := httptest.NewServer(NewHandler(a)), httptest.NewServer(NewHandler(b))
	defer srvA.Close()
	defer srvB.Close()
	trust := &client.MemoryState{}
	if _, err := client.New(srvA.URL, a.verifier, client.WithState(trust)).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if e, err := client.New(srvB.URL+","+srvA.URL, a.verifier, client.WithState(trust)).Entry(ctx, ok.Index); err != nil || e.Checkpoint.Size < trusted {
		t.Errorf("a client of the follower and the leader: %v, %v; want the entry, from the leader", e, err)
	}
	_, err = client.New(srvB.URL, a.verifier, client.WithState(trust), client.WithRetry(1, time.Millisecond)).Entry(ctx, ok.Index)
	if proofs.Reason(err) != ReasonReplicaBehind {
		t.Errorf("a client of the follower alone: %v; want %s", err, ReasonReplicaBehind)
	}
	if cp, err := client.New(srvA.URL, a.verifier, client.WithState(trust)).Trusted(); err != nil || cp.Size < trusted {
		t.Errorf("the client's trusted checkpoint after the refusal: %v, %v; want at least %d", cp, err, trusted)
	}

	// Behind, catching up during the wait: answered from the new tree.
	go func() {
		time.Sleep(100 * time.Millisecond)
		gate.release()
	}()
	resp, err := s.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: ok.Index}, TrustedSize: trusted}))
	if err != nil {
		// On a machine so busy the follower took longer than the wait,
		// the refusal is the right answer; the catch-up is checked below.
		if reason(err) != ReasonReplicaBehind {
			t.Fatalf("GetEntry while the follower catches up: %v", err)
		}
		waitFor(t, "b to catch up", func() bool { return b.Checkpoint().Size >= trusted })
		resp, err = s.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: ok.Index}, TrustedSize: trusted}))
		if err != nil {
			t.Fatal(err)
		}
	}
	cp, err := proofs.OpenCheckpoint(resp.Msg.GetEntry().GetCheckpoint(), b.verifier)
	if err != nil || cp.Size < trusted {
		t.Fatalf("GetEntry answered with a checkpoint of %v (%v); want at least %d", cp, err, trusted)
	}

	// The client ahead of the whole cluster: answered after the wait, with
	// the cluster's checkpoint, which the client reports as a rollback.
	got, err := s.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{TrustedSize: trusted + 5}))
	if err != nil {
		t.Fatalf("GetCheckpoint past the cluster's size: %v; want the node's checkpoint", err)
	}
	if cp, err := proofs.OpenCheckpoint(got.Msg.GetCheckpoint(), b.verifier); err != nil || cp.Size != tc.size(t, b) {
		t.Errorf("GetCheckpoint past the cluster's size answered %v (%v); want the cluster's %d", cp, err, tc.size(t, b))
	}
}

// behindFollower opens a cluster whose leader a has appended an entry that
// follower b, its bucket gate shut, has not ingested: it returns both, the
// gate (to let b catch up) and the entry.
func behindFollower(t *testing.T) (tc *testCluster, a, b *Log, gate *gatedObjects, ok *Appended) {
	tc = newTestCluster(t)
	ctx := context.Background()
	a = tc.open(t, t.TempDir(), "a")
	tc.waitLeading(t, a)
	tc.coord.setWinner("a") // b follows throughout

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LogKeyFile), tc.keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	gate = newGatedObjects(tc.store)
	self := Member{NodeID: "b", URL: "http://b.test"}
	b = openTestLog(t, dir, tc.registrar, func(o *Options) {
		o.AdminKeys = []*proofs.PublicKey{tc.admin.pub()}
		o.ObjectStore, o.Coordination = gate, nodeCoord{c: tc.coord, self: self}
		o.NodeID, o.NodeURL = self.NodeID, self.URL
	})
	t.Cleanup(func() { b.Close() })
	waitFor(t, "b to catch up", func() bool { return b.Checkpoint().Size == a.Checkpoint().Size })
	gate.shut()
	var err error
	ok, err = a.Append(ctx, bindingEnvelope(t, tc.registrar, "spiffe://example.org/agent/r1", newTestKey(t), proofs.TierDraft, false))
	if err != nil {
		t.Fatal(err)
	}
	if b.Checkpoint().Size > ok.Index {
		t.Fatalf("b serves %d entries with its bucket shut; want at most %d", b.Checkpoint().Size, ok.Index)
	}
	return tc, a, b, gate, ok
}

// TestReplicaBehindProofs (unit test, fakes): every read that names a size
// or an index past a follower's tree, without a trusted size (a
// consistency proof to the leader's size, an inclusion proof at it, the
// entry or a range past the follower's end, a tile), is refused
// replica_behind while the cluster's checkpoint covers it, not answered
// not_found or out_of_range as if the log were that small; past the
// cluster's checkpoint, and on a single-node server, the answers are as
// ever. A client of the follower and the leader then gets its answer from
// the leader.
func TestReplicaBehindProofs(t *testing.T) {
	tc, a, b, _, ok := behindFollower(t)
	ctx := context.Background()
	s := &service{log: b}
	size, full := b.Checkpoint().Size, ok.Checkpoint.Size
	reason := func(err error) string {
		var ce *connect.Error
		if !errors.As(err, &ce) {
			return ""
		}
		return detailReason(ce)
	}
	behind := func(what string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeUnavailable || reason(err) != ReasonReplicaBehind {
			t.Errorf("%s on a follower at %d, the cluster at %d: %v; want Unavailable %s", what, size, full, err, ReasonReplicaBehind)
		}
	}
	_, err := s.GetConsistencyProof(ctx, connect.NewRequest(&warrantv1.GetConsistencyProofRequest{FromSize: size, ToSize: full}))
	behind("GetConsistencyProof to the cluster's size", err)
	_, err = s.GetInclusionProof(ctx, connect.NewRequest(&warrantv1.GetInclusionProofRequest{Key: &warrantv1.GetInclusionProofRequest_Index{Index: ok.Index}, TreeSize: full}))
	behind("GetInclusionProof at the cluster's size", err)
	_, err = s.GetInclusionProof(ctx, connect.NewRequest(&warrantv1.GetInclusionProofRequest{Key: &warrantv1.GetInclusionProofRequest_Index{Index: ok.Index}}))
	behind("GetInclusionProof of an entry past the follower's end", err)
	_, err = s.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: ok.Index}}))
	behind("GetEntry past the follower's end", err)
	_, err = s.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: ok.Index, Count: 1}))
	behind("GetEntries past the follower's end", err)
	// Lookups by key that find nothing on the follower behind: the entry
	// may be one it has not ingested.
	leaf, err := a.Entry(ctx, ok.Index)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.GetInclusionProof(ctx, connect.NewRequest(&warrantv1.GetInclusionProofRequest{Key: &warrantv1.GetInclusionProofRequest_LeafHash{LeafHash: proofs.LeafHash(leaf)}}))
	behind("GetInclusionProof of a leaf hash past the follower's end", err)
	_, err = s.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_DelegationId{DelegationId: "dlg_not_yet"}}))
	behind("GetEntry of a delegation id the follower lacks", err)
	_, err = s.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_ConfigBefore{ConfigBefore: full}}))
	behind("GetEntry of the config before the cluster's size", err)
	_, err = s.ListAgentEntries(ctx, connect.NewRequest(&warrantv1.ListAgentEntriesRequest{Agent: "spiffe://example.org/agent/r1", StartIndex: ok.Index, PageSize: 10}))
	behind("ListAgentEntries from an entry past the follower's end", err)
	_, err = s.ListChildren(ctx, connect.NewRequest(&warrantv1.ListChildrenRequest{DelegationId: "dlg_any", StartIndex: ok.Index, PageSize: 10}))
	behind("ListChildren from an entry past the follower's end", err)
	srvB := httptest.NewServer(NewHandler(b))
	defer srvB.Close()
	stream, err := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, srvB.URL).WatchCheckpoints(ctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{FromSize: full}))
	if err == nil {
		stream.Receive()
		err = stream.Err()
		stream.Close()
	}
	behind("WatchCheckpoints from the cluster's size", err)
	for _, path := range []string{fmt.Sprintf("/tile/0/000.p/%d", full), fmt.Sprintf("/tile/entries/000.p/%d", full)} {
		resp, err := http.Get(srvB.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s on the follower behind: %d, want 503", path, resp.StatusCode)
		}
	}

	// Past the cluster's checkpoint: the log is that small, and says so.
	past := tc.size(t, b) + 5
	_, err = s.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: past}}))
	if reason(err) != ReasonNotFound {
		t.Errorf("GetEntry past the cluster's size: %v; want %s", err, ReasonNotFound)
	}
	_, err = s.GetConsistencyProof(ctx, connect.NewRequest(&warrantv1.GetConsistencyProofRequest{FromSize: 1, ToSize: past}))
	if reason(err) != ReasonOutOfRange {
		t.Errorf("GetConsistencyProof past the cluster's size: %v; want %s", err, ReasonOutOfRange)
	}
	// The leader, which is the cluster's checkpoint, says not_found at once.
	_, err = (&service{log: a}).GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_DelegationId{DelegationId: "dlg_absent"}}))
	if reason(err) != ReasonNotFound {
		t.Errorf("GetEntry of an absent delegation id on the leader: %v; want %s", err, ReasonNotFound)
	}
	if resp, err := http.Get(srvB.URL + fmt.Sprintf("/tile/entries/000.p/%d", past)); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("a bundle past the cluster's size: %v %v; want 404", resp, err)
	}

	// Through the SDK, trusting nothing yet: the follower first, the
	// leader next; the follower's refusal sends the read on.
	srvA := httptest.NewServer(NewHandler(a))
	defer srvA.Close()
	c := client.New(srvB.URL+","+srvA.URL, a.verifier, client.WithRetry(1, 0))
	if e, err := c.Entry(ctx, ok.Index); err != nil || e.Index != ok.Index {
		t.Errorf("a client of the follower and the leader: %v, %v; want entry %d, from the leader", e, err, ok.Index)
	}

	// A single-node server keeps its answers.
	single := &service{log: openTestLog(t, t.TempDir(), tc.registrar, nil)}
	n := single.log.Checkpoint().Size
	_, err = single.GetConsistencyProof(ctx, connect.NewRequest(&warrantv1.GetConsistencyProofRequest{FromSize: 1, ToSize: n + 5}))
	if reason(err) != ReasonOutOfRange {
		t.Errorf("GetConsistencyProof past a single node's size: %v; want %s", err, ReasonOutOfRange)
	}
	_, err = single.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: n + 5}}))
	if reason(err) != ReasonNotFound {
		t.Errorf("GetEntry past a single node's size: %v; want %s", err, ReasonNotFound)
	}
}

package ledger

// Tests of putObject (publish.go): a deposed leader's writes, landing
// before or after the current leader's, never leave the bucket holding
// anything but the current leader's objects.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/warrantlog/warrant/proofs"
)

// heldObjects is one node's view of the bucket: it counts the node's
// Replaces, and can hold one chosen write of one key (a request in flight)
// until the test lets it land.
type heldObjects struct {
	ObjectStore
	replaces atomic.Int32

	mu               sync.Mutex
	op, key          string
	reached, release chan struct{}
}

func newHeldObjects(s ObjectStore) *heldObjects { return &heldObjects{ObjectStore: s} }

// holdNext holds the next write op ("create" or "replace") of key: reached
// is closed when it arrives, and it goes on to the store when release is
// closed.
func (h *heldObjects) holdNext(op, key string) (reached, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.op, h.key = op, key
	h.reached, h.release = make(chan struct{}), make(chan struct{})
	return h.reached, h.release
}

func (h *heldObjects) wait(op, key string) {
	h.mu.Lock()
	if h.op != op || h.key != key {
		h.mu.Unlock()
		return
	}
	reached, release := h.reached, h.release
	h.op = ""
	h.mu.Unlock()
	close(reached)
	<-release
}

func (h *heldObjects) Create(ctx context.Context, key string, data []byte) error {
	h.wait("create", key)
	return h.ObjectStore.Create(ctx, key, data)
}

func (h *heldObjects) Replace(ctx context.Context, key string, data []byte, etag string) error {
	h.replaces.Add(1)
	h.wait("replace", key)
	return h.ObjectStore.Replace(ctx, key, data, etag)
}

// nextKeys are the keys of the tiles and bundles the next append to l
// writes, the entry bundle first.
func nextKeys(l *Log) []string {
	size := l.Checkpoint().Size
	var keys []string
	for _, tr := range tilesBetween(size, size+1) {
		keys = append(keys, tileObjectKey(tr))
	}
	return keys
}

// checkBucketWithTlog reads the bucket as a tlog-tiles mirror with
// golang.org/x/mod/sumdb/tlog: the checkpoint object must be the cluster's,
// its root the tree hash of the bucket's hash tiles (which TileHashReader
// authenticates against it), and every entry of the bundles proved in the
// tree at its index by those tiles.
func checkBucketWithTlog(t *testing.T, tc *testCluster, l *Log) {
	t.Helper()
	note := tc.store.get(objectCheckpoint)
	if !bytes.Equal(note, tc.coord.checkpoint()) {
		t.Fatalf("the bucket's checkpoint object is not the cluster's checkpoint")
	}
	cp, err := proofs.OpenCheckpoint(note, l.verifier)
	if err != nil {
		t.Fatal(err)
	}
	size, root := int64(cp.Size), tlog.Hash(cp.Root)
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, memTiles{tc.store})
	if th, err := tlog.TreeHash(size, hr); err != nil || th != root {
		t.Fatalf("tree hash of the bucket's tiles: %v, %v; want the checkpoint's root", th, err)
	}
	for n := int64(0); n*tileWidth < size; n++ {
		w := min(size-n*tileWidth, tileWidth)
		key := tileObjectKey(tileRequest{entries: true, index: uint64(n), width: int(w)})
		bundle := tc.store.get(key)
		for i := n * tileWidth; i < n*tileWidth+w; i++ {
			if len(bundle) < 2 || len(bundle) < 2+int(binary.BigEndian.Uint16(bundle)) {
				t.Fatalf("%s: truncated at entry %d", key, i)
			}
			leaf := bundle[2 : 2+binary.BigEndian.Uint16(bundle)]
			bundle = bundle[2+len(leaf):]
			p, err := tlog.ProveRecord(size, i, hr)
			if err != nil {
				t.Fatalf("ProveRecord(%d, %d): %v", size, i, err)
			}
			if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(leaf)); err != nil {
				t.Fatalf("entry %d of %s is not the log's: %v", i, key, err)
			}
		}
		if len(bundle) != 0 {
			t.Fatalf("%s: %d bytes past its %d entries", key, len(bundle), w)
		}
	}
}

// memTiles is a tlog.TileReader over the test bucket: x/mod's tile paths
// (tile/8/L/N) are tlog-tiles' (tile/L/N), with the height 8 implied.
type memTiles struct{ s *memObjects }

func (memTiles) Height() int { return tileHeight }

func (m memTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		key := "tile/" + strings.TrimPrefix(tile.Path(), "tile/8/")
		if out[i] = m.s.get(key); out[i] == nil {
			return nil, fmt.Errorf("%s: not in the bucket", key)
		}
	}
	return out, nil
}

func (memTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestPublishReplacesDeposedLeadersObjects (unit test, fakes): the keys of
// the next append hold objects of a deposed leader's unacknowledged batch
// (its puts landed before this leader's): the leader replaces them, and the
// bucket verifies against the checkpoint.
func TestPublishReplacesDeposedLeadersObjects(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	store := newHeldObjects(tc.store)
	a := tc.openWith(t, t.TempDir(), "a", store)
	tc.waitLeading(t, a)
	ctx := context.Background()
	keys := nextKeys(a)
	for _, key := range keys {
		if err := tc.store.Put(ctx, key, []byte("a deposed leader's "+key)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	if got := store.replaces.Load(); got != int32(len(keys)) {
		t.Errorf("%d replaces, want %d (one per key %v)", got, len(keys), keys)
	}
	checkBucketMirrors(t, tc, a)
	checkBucketWithTlog(t, tc, a)
}

// TestPublishRetryOfOwnPut (unit test, fakes): puts that failed after
// storing the objects are retried; the retry finds its own bytes at the
// keys, and replaces nothing.
func TestPublishRetryOfOwnPut(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	store := newHeldObjects(tc.store)
	a := tc.openWith(t, t.TempDir(), "a", store)
	tc.waitLeading(t, a)
	ctx := context.Background()
	keys := nextKeys(a)
	var failed sync.Map
	tc.store.setFault(func(key string) (bool, error) {
		if _, again := failed.LoadOrStore(key, true); again {
			return true, nil
		}
		return true, errors.New("timeout after the object was stored")
	})
	size := a.Checkpoint().Size
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true)); proofs.Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("append whose puts failed: %v, want %s", err, ReasonStoreUnavailable)
	}
	for _, key := range keys {
		if tc.store.get(key) == nil {
			t.Fatalf("the failed put of %s did not store it", key)
		}
	}
	waitFor(t, "the pending entry to be published", func() bool { return tc.size(t, a) == size+1 })
	if got := store.replaces.Load(); got != 0 {
		t.Errorf("%d replaces of the node's own objects, want 0", got)
	}
	waitFor(t, "the bucket's checkpoint object", func() bool { return bytes.Equal(tc.store.get(objectCheckpoint), tc.coord.checkpoint()) })
	checkBucketMirrors(t, tc, a)
	checkBucketWithTlog(t, tc, a)
}

// TestPublishDeposedLeadersLateWrites (unit test, fakes): leader a is
// deposed while a write of its batch is in flight; b leads and publishes
// other entries at the same indices; then a's write lands. Whether it is
// a's Create (the key then holds b's object) or a's Replace of a third,
// earlier leader's object (conditional on an ETag b's Replace changed), it
// is refused: a finds b's object, learns that b leads and is not
// acknowledged, and the bucket holds b's objects and verifies against b's
// checkpoint.
func TestPublishDeposedLeadersLateWrites(t *testing.T) {
	for _, op := range []string{"create", "replace"} {
		t.Run(op, func(t *testing.T) {
			tc := newTestCluster(t)
			tc.coord.setWinner("a")
			storeA := newHeldObjects(tc.store)
			a := tc.openWith(t, t.TempDir(), "a", storeA)
			tc.waitLeading(t, a)
			b := tc.open(t, t.TempDir(), "b")
			waitFor(t, "b to follow", func() bool { return b.Checkpoint().Size == a.Checkpoint().Size })
			ctx := context.Background()
			bundle := nextKeys(a)[0]
			if op == "replace" {
				// An earlier deposed leader's bundle, which a replaces.
				if err := tc.store.Put(ctx, bundle, []byte("an earlier deposed leader's bundle")); err != nil {
					t.Fatal(err)
				}
			}
			reached, release := storeA.holdNext(op, bundle)
			refused := make(chan error, 1)
			go func() {
				_, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, "spiffe://example.org/agent/deposed", newTestKey(t), proofs.TierDraft, false))
				refused <- err
			}()
			<-reached // a's write of the bundle is in flight

			tc.coord.setWinner("b")
			tc.coord.fence() // a still believes it leads
			waitFor(t, "b to lead", func() bool { return role(b) == "leader" })
			x, err := b.Append(ctx, bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true))
			if err != nil {
				t.Fatal(err)
			}
			mine := bytes.Clone(tc.store.get(bundle))

			close(release) // a's write lands, after b's
			if err := <-refused; proofs.Reason(err) != ReasonNotLeader {
				t.Fatalf("a's append: %v, want %s", err, ReasonNotLeader)
			}
			if got := tc.store.get(bundle); !bytes.Equal(got, mine) {
				t.Fatalf("the deposed leader's late %s overwrote %s", op, bundle)
			}
			checkBucketMirrors(t, tc, b)
			checkBucketWithTlog(t, tc, b)
			leaf, err := b.Entry(ctx, x.Index)
			if err != nil || !bytes.Equal(leaf, x.Leaf) {
				t.Fatalf("b's entry %d: %v", x.Index, err)
			}
		})
	}
}

// phantomObjects is a store that keeps one key taken with no object there,
// as versitygw's sidecar metadata does after a kill between storing an
// object's ETag and linking its data: a Create of the key is refused as
// taken, a read finds nothing.
type phantomObjects struct {
	ObjectStore
	mu  sync.Mutex
	key string
}

func (p *phantomObjects) phantom(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return key == p.key
}

func (p *phantomObjects) repair() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.key = ""
}

func (p *phantomObjects) Create(ctx context.Context, key string, data []byte) error {
	if p.phantom(key) {
		return fmt.Errorf("%s: %w", key, ErrObjectExists)
	}
	return p.ObjectStore.Create(ctx, key, data)
}

// TestPublishKeyTakenWithNoObject (unit test, fault injection): a store
// that refuses a key's Create as taken but has no object to read there is
// reported as inconsistent, with the key, rather than as an object that
// keeps changing; the append is refused as retryable; once the key is
// repaired the entry is published.
func TestPublishKeyTakenWithNoObject(t *testing.T) {
	tc := newTestCluster(t)
	tc.coord.setWinner("a")
	store := &phantomObjects{ObjectStore: tc.store}
	a := tc.openWith(t, t.TempDir(), "a", store)
	tc.waitLeading(t, a)
	key := nextKeys(a)[0]
	store.mu.Lock()
	store.key = key
	store.mu.Unlock()
	size := a.Checkpoint().Size
	_, err := a.Append(context.Background(), bindingEnvelope(t, tc.registrar, humanID, newTestKey(t), proofs.TierDraft, true))
	if proofs.Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("append whose entry bundle's key is taken with no object: %v, want %s", err, ReasonStoreUnavailable)
	}
	if !strings.Contains(err.Error(), "holds no object there") || !strings.Contains(err.Error(), key) {
		t.Errorf("refusal %q does not say the store is inconsistent at %s", err, key)
	}
	store.repair()
	waitFor(t, "the pending entry to be published", func() bool { return tc.size(t, a) == size+1 })
	checkBucketMirrors(t, tc, a)
	checkBucketWithTlog(t, tc, a)
}

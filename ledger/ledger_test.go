package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"

	"github.com/warrantlog/warrant/internal/merkleref"
	"github.com/warrantlog/warrant/proofs"
)

// appendN appends n key bindings concurrently in waves, so that batches of
// many sizes form, and returns the leaves in index order.
func appendN(t *testing.T, f *fixture, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; {
		wave := min(1+rand.IntN(17), n-i)
		for j := 0; j < wave; j++ {
			env := bindingEnvelope(t, f.registrar, fmt.Sprintf("spiffe://example.org/agent/a%d", i+j), newTestKey(t), proofs.TierDraft, false)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f.log.Append(context.Background(), env); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		i += wave
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func allLeaves(t *testing.T, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	size := l.Checkpoint().Size
	for start := uint64(0); start < size; {
		batch, err := l.Entries(context.Background(), start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batch...)
		start += uint64(len(batch))
	}
	return out
}

// TestTreeAgainstReference cross-checks roots, inclusion, consistency and
// range proofs built from the tile store against the naive RFC 6962
// reference, for every tree size of a log of a few hundred entries: with
// the default tile-subtree cache, with one that holds about one tile (so
// proofs evict and rebuild), and with none.
func TestTreeAgainstReference(t *testing.T) {
	for _, c := range []struct {
		name  string
		bytes int
	}{{"default cache", 0}, {"one-tile cache", 17 << 10}, {"no cache", -1}} {
		t.Run(c.name, func(t *testing.T) {
			testTreeAgainstReference(t, c.bytes)
		})
	}
}

func testTreeAgainstReference(t *testing.T, cacheBytes int) {
	f := newFixture(t, func(o *Options) { o.TreeCacheBytes = cacheBytes })
	appendN(t, f, 290)
	ctx := context.Background()
	leaves := allLeaves(t, f.log)
	size := f.log.Checkpoint().Size
	if int(size) != len(leaves) || size != 294 {
		t.Fatalf("log size %d, %d leaves, want 294 (config, policy, 2+290 bindings)", size, len(leaves))
	}
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = merkleref.LeafHash(l)
	}
	if !bytes.Equal(f.log.Checkpoint().Root, merkleref.Root(hashes)) {
		t.Fatal("checkpoint root differs from the reference root")
	}
	err := f.log.db.View(func(txn *badger.Txn) error {
		r := newNodeReader(txn)
		for s := uint64(1); s <= size; s++ {
			got, err := r.root(s)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, merkleref.Root(hashes[:s])) {
				return fmt.Errorf("root at size %d differs", s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	step := uint64(1)
	if cacheBytes < 0 {
		step = 11 // every node rebuilt from its tile: slow, so fewer sizes
	}
	for s := uint64(1); s <= size; s += step {
		for i := uint64(0); i < s; i++ {
			got, _, err := f.log.InclusionProof(ctx, i, s)
			if err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, s, err)
			}
			if want := merkleref.Inclusion(int(i), hashes[:s]); !equalHashes(got, want) {
				t.Fatalf("inclusion %d in %d differs from the reference", i, s)
			}
		}
		for s2 := s; s2 <= size; s2 += 1 + uint64(rand.IntN(7)) {
			got, _, err := f.log.ConsistencyProof(ctx, s, s2)
			if err != nil {
				t.Fatalf("consistency %d->%d: %v", s, s2, err)
			}
			if want := merkleref.Consistency(int(s), hashes[:s2]); !equalHashes(got, want) {
				t.Fatalf("consistency %d->%d differs from the reference", s, s2)
			}
		}
		start := uint64(rand.IntN(int(s)))
		end := start + uint64(rand.IntN(int(s-start))) + 1
		left, right, err := f.log.RangeProof(ctx, start, end, s)
		if err != nil {
			t.Fatal(err)
		}
		if !equalHashes(left, refRange(hashes, 0, start)) || !equalHashes(right, refRange(hashes, end, s)) {
			t.Fatalf("range proof [%d,%d) in %d differs from the reference", start, end, s)
		}
	}
}

// refRange returns the reference hashes of the compact range [begin, end).
func refRange(hashes [][]byte, begin, end uint64) [][]byte {
	var out [][]byte
	for _, id := range compact.RangeNodes(begin, end, nil) {
		b, e := id.Coverage()
		out = append(out, merkleref.Root(hashes[b:e]))
	}
	return out
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestFreshLogHasConfigAndCheckpoint(t *testing.T) {
	reg := newTestKey(t)
	dir := t.TempDir()
	l := openTestLog(t, dir, reg, nil)
	defer l.Close()
	cp := l.Checkpoint()
	if cp.Size != 2 {
		t.Fatalf("fresh log size %d, want 2 (the log-config entry, the default policy)", cp.Size)
	}
	pl, err := l.Entry(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	pp, err := proofs.ParseLeaf(pl)
	if err != nil || pp.Kind != proofs.KindPolicy || pp.Policy == nil || !bytes.Equal(pp.Policy.Text, defaultPolicy) {
		t.Fatalf("entry 1 is not the default policy: %v", err)
	}
	leaf, err := l.Entry(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proofs.ParseLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != proofs.KindLogConfig || len(p.Config.RegistrarKeys) != 1 || p.Config.RegistrarKeys[0].ID != reg.pub().ID || p.Config.Origin != "test.example/log" {
		t.Fatalf("entry 0 = %+v, want the log config with the registrar key", p.Leaf)
	}
	if _, err := proofs.OpenCheckpoint(cp.Note, l.verifier); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, LogKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	vkey, err := os.ReadFile(filepath.Join(dir, LogVerifierKeyFile))
	if err != nil || string(bytes.TrimSpace(vkey)) != l.VerifierKey() {
		t.Fatalf("log.vkey = %q, want %q", vkey, l.VerifierKey())
	}
}

func TestRestartAppendsNothingAndConfigChangeAppendsOne(t *testing.T) {
	f := newFixture(t, nil)
	appendN(t, f, 10)
	before := f.log.Checkpoint()
	f.log.Close()

	l := openTestLog(t, f.dir, f.registrar, f.withAdmin)
	after := l.Checkpoint()
	if after.Size != before.Size || !bytes.Equal(after.Root, before.Root) {
		t.Fatalf("restart changed the log: %v -> %v", before, after)
	}
	l.Close()

	other := newTestKey(t)
	l = openTestLog(t, f.dir, f.registrar, func(o *Options) { f.withAdmin(o); o.RegistrarKeys = append(o.RegistrarKeys, other.pub()) })
	defer l.Close()
	if got := l.Checkpoint().Size; got != before.Size+1 {
		t.Fatalf("config change: size %d, want %d", got, before.Size+1)
	}
	leaf, _ := l.Entry(context.Background(), before.Size)
	p, err := proofs.ParseLeaf(leaf)
	if err != nil || p.Kind != proofs.KindLogConfig || len(p.Config.RegistrarKeys) != 2 {
		t.Fatalf("entry %d is not the new config: %v %v", before.Size, p, err)
	}
	hashes, _, err := l.ConsistencyProof(context.Background(), before.Size, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := proofs.VerifyConsistency(before.Size, l.Checkpoint().Size, hashes, before.Root, l.Checkpoint().Root); err != nil {
		t.Fatal(err)
	}
}

func TestOriginIsFixed(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, nil, nil)
	l.Close()
	_, err := Open(context.Background(), Options{Dir: dir, Origin: "other.example/log", Logger: quietLogger()})
	if err == nil {
		t.Fatal("opening with another origin succeeded")
	}
}

// TestOpenRefusesTamperedStore damages the store in ways that disagree with
// the last signed checkpoint and checks that Open refuses, naming it.
func TestOpenRefusesTamperedStore(t *testing.T) {
	cases := []struct {
		name   string
		damage func(txn *badger.Txn, size uint64) error
	}{
		{"tile hash flipped", func(txn *badger.Txn, size uint64) error {
			v, err := getValue(txn, tileKey(0, 0))
			if err != nil {
				return err
			}
			v[5] ^= 1
			return txn.Set(tileKey(0, 0), v)
		}},
		{"tree head rewritten", func(txn *badger.Txn, size uint64) error {
			v, _ := getValue(txn, keyHead)
			h, _ := parseHead(v)
			h.Root[0] ^= 1
			return txn.Set(keyHead, h.marshal())
		}},
		{"entries lost", func(txn *badger.Txn, size uint64) error {
			v, _ := getValue(txn, keyHead)
			h, _ := parseHead(v)
			h.Size--
			return txn.Set(keyHead, h.marshal())
		}},
		{"last leaf replaced", func(txn *badger.Txn, size uint64) error {
			return txn.Set(leafKey(size-1), []byte(`{"v":1}`))
		}},
		{"checkpoint forged", func(txn *badger.Txn, size uint64) error {
			return txn.Set(keyCheckpoint, []byte("test.example/log\n5\nAAAA\n\n— test.example/log AAAA\n"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			appendN(t, f, 5)
			size := f.log.Checkpoint().Size
			f.log.Close()
			db, err := badger.Open(BadgerOptions(f.dir, quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(txn *badger.Txn) error { return tc.damage(txn, size) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = Open(context.Background(), Options{Dir: f.dir, Origin: "test.example/log", RegistrarKeys: []*proofs.PublicKey{f.registrar.pub()}, AdminKeys: []*proofs.PublicKey{f.admin.pub()}, Logger: quietLogger()})
			if !errors.Is(err, ErrStoreMismatch) {
				t.Fatalf("Open on a damaged store: %v, want ErrStoreMismatch", err)
			}
			t.Log(err)
		})
	}
}

// TestCommittedButUnsignedIsSignedOnOpen simulates a crash between commit
// and checkpoint: the stored checkpoint is older than the tree head. Open
// signs the head, consistent with the old checkpoint.
func TestCommittedButUnsignedIsSignedOnOpen(t *testing.T) {
	f := newFixture(t, nil)
	old := f.log.Checkpoint()
	appendN(t, f, 7)
	f.log.Close()
	db, err := badger.Open(BadgerOptions(f.dir, quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(keyCheckpoint, old.Note) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	l := openTestLog(t, f.dir, f.registrar, f.withAdmin)
	defer l.Close()
	cp := l.Checkpoint()
	if cp.Size != old.Size+7 {
		t.Fatalf("size %d after reopen, want %d", cp.Size, old.Size+7)
	}
	hashes, _, err := l.ConsistencyProof(context.Background(), old.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proofs.VerifyConsistency(old.Size, cp.Size, hashes, old.Root, cp.Root); err != nil {
		t.Fatal(err)
	}
}

func TestLogTimeNeverDecreases(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFixture(t, func(o *Options) {
		o.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(time.Duration(rand.IntN(2000)-1000) * time.Millisecond) // jumps back and forth
			return clock
		}
	})
	appendN(t, f, 60)
	var last time.Time
	for i, raw := range allLeaves(t, f.log) {
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			t.Fatal(err)
		}
		if p.Time.Before(last) {
			t.Fatalf("entry %d log time %v is before %v", i, p.Time, last)
		}
		last = p.Time
	}
}

// TestStatelessRefusalsWriteNothing feeds forged, mis-typed, unregistered
// and malformed envelopes and checks each reason and that the log did not
// grow.
func TestStatelessRefusalsWriteNothing(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	good := delegation("dlg_1", humanID, agentID, "nonce-00000001")
	payload, _ := proofs.MarshalPayload(good)
	stranger := newTestKey(t)

	forged, _ := stranger.signer.SignEnvelope(proofs.PayloadTypeDelegation, payload)
	forged = bytes.Replace(forged, []byte(stranger.signer.KeyID()), []byte(f.human.signer.KeyID()), 1)
	wrongType, _ := f.human.signer.SignEnvelope(proofs.PayloadTypeAgent, payload)
	retyped := bytes.Replace(wrongType, []byte(proofs.PayloadTypeAgent), []byte(proofs.PayloadTypeDelegation), 1)
	unregistered := signDelegation(t, stranger, delegation("dlg_2", "spiffe://example.org/agent/nobody", humanID, "nonce-00000002"))
	selfRegistered := bindingEnvelope(t, stranger, "spiffe://example.org/agent/x", stranger, proofs.TierExecute, true)
	bad := signDelegation(t, f.human, good)

	cases := []struct {
		name   string
		env    []byte
		reason string
	}{
		{"forged signature", forged, proofs.ReasonSignatureInvalid},
		{"signed as another payload type", wrongType, proofs.ReasonPayloadMalformed},
		{"payload type swapped after signing", retyped, proofs.ReasonSignatureInvalid},
		{"unregistered issuer", unregistered, ReasonIssuerNotRegistered},
		{"binding not signed by a registrar", selfRegistered, ReasonRegistrarUnknown},
		{"not JSON", []byte("hello"), proofs.ReasonEnvelopeMalformed},
		{"unknown field", bytes.Replace(bad, []byte(`{"payloadType"`), []byte(`{"x":1,"payloadType"`), 1), proofs.ReasonEnvelopeMalformed},
		{"oversized", bytes.Repeat([]byte(" "), proofs.MaxEnvelopeBytes+1), proofs.ReasonEnvelopeTooLarge},
		{"unknown payload type", mustSign(t, f.agent, "text/plain", []byte("hi")), proofs.ReasonPayloadTypeUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			size := f.log.Checkpoint().Size
			_, err := f.log.Append(ctx, tc.env)
			if got := proofs.Reason(err); got != tc.reason {
				t.Fatalf("Append: reason %q (%v), want %q", got, err, tc.reason)
			}
			if got := f.log.Checkpoint().Size; got != size {
				t.Fatalf("log grew from %d to %d on a refused request", size, got)
			}
		})
	}
}

func mustSign(t *testing.T, k *testKey, typ string, payload []byte) []byte {
	env, err := k.signer.SignEnvelope(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestDedupAndConsumption: an identical resubmission returns the original
// entry and writes nothing; an id or nonce is consumed only by an accepted
// entry, so a denial cannot burn one.
func TestDedupAndConsumption(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	first := signDelegation(t, f.human, delegation("dlg_a", humanID, agentID, "nonce-aaaaaaaa"))
	a, err := f.log.Append(ctx, first)
	if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("first append: %+v %v", a, err)
	}
	size := f.log.Checkpoint().Size
	again, err := f.log.Append(ctx, first)
	if err != nil || !again.Duplicate || again.Index != a.Index || !bytes.Equal(again.Leaf, a.Leaf) {
		t.Fatalf("resubmission: %+v %v, want the original entry %d", again, err, a.Index)
	}
	// Whitespace and key order do not make a new envelope.
	reordered := []byte(fmt.Sprintf(" {\"signatures\": %s, \"payload\": %s, \"payloadType\": %q} ",
		between(first, `"signatures":`, `}]`)+"}]", between(first, `"payload":`, `,"signatures"`), proofs.PayloadTypeDelegation))
	if dup, err := f.log.Append(ctx, reordered); err != nil || !dup.Duplicate || dup.Index != a.Index {
		t.Fatalf("reordered resubmission: %+v %v", dup, err)
	}
	if f.log.Checkpoint().Size != size {
		t.Fatal("a resubmission wrote an entry")
	}

	reusedID := signDelegation(t, f.human, delegation("dlg_a", humanID, agentID, "nonce-bbbbbbbb"))
	d, err := f.log.Append(ctx, reusedID)
	if err != nil || d.Decision.Outcome != proofs.OutcomeDenied || d.Decision.Reasons[0] != proofs.ReasonIDReused {
		t.Fatalf("reused id: %+v %v, want a denial id_reused", d, err)
	}
	// nonce-bbbbbbbb only appeared in a denial: still free.
	fresh := signDelegation(t, f.human, delegation("dlg_b", humanID, agentID, "nonce-bbbbbbbb"))
	if b, err := f.log.Append(ctx, fresh); err != nil || b.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("nonce used only by a denial: %+v %v, want accepted", b, err)
	}
	reusedNonce := signDelegation(t, f.human, delegation("dlg_c", humanID, agentID, "nonce-aaaaaaaa"))
	if c, err := f.log.Append(ctx, reusedNonce); err != nil || c.Decision.Reasons[0] != proofs.ReasonNonceReused {
		t.Fatalf("reused nonce: %+v %v, want a denial nonce_reused", c, err)
	}
	idx, err := f.log.IndexOfDelegation(ctx, "dlg_a")
	if err != nil || idx != a.Index {
		t.Fatalf("IndexOfDelegation(dlg_a) = %d, %v; want the accepted entry %d", idx, err, a.Index)
	}
}

func between(b []byte, from, to string) string {
	i := bytes.Index(b, []byte(from)) + len(from)
	j := bytes.Index(b[i:], []byte(to))
	return string(b[i : i+j])
}

// TestConcurrentDuplicatesInOneBatch: the same envelope submitted many times
// at once is appended once.
func TestConcurrentDuplicatesInOneBatch(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxBatchWait = 20 * time.Millisecond })
	env := signDelegation(t, f.human, delegation("dlg_dup", humanID, agentID, "nonce-dddddddd"))
	size := f.log.Checkpoint().Size
	var wg sync.WaitGroup
	idx := make([]uint64, 20)
	for i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := f.log.Append(context.Background(), env)
			if err != nil {
				t.Error(err)
				return
			}
			idx[i] = a.Index
		}()
	}
	wg.Wait()
	for _, i := range idx {
		if i != idx[0] {
			t.Fatalf("duplicates got different indices: %v", idx)
		}
	}
	if got := f.log.Checkpoint().Size; got != size+1 {
		t.Fatalf("size %d, want %d", got, size+1)
	}
}

// TestOversizedBatchIsSplit: with a tiny memtable (so Badger's transaction
// limit is small) a burst of large requests is committed over several
// transactions, and every request succeeds.
func TestOversizedBatchIsSplit(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MaxBatchWait = 200 * time.Millisecond
		o.MaxBatchBytes = 16 << 20
		o.Badger = func(b badger.Options) badger.Options {
			return b.WithMemTableSize(1 << 20).WithValueThreshold(100 << 10)
		}
	})
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		d := delegation(fmt.Sprintf("dlg_big%d", i), humanID, agentID, fmt.Sprintf("nonce-big%05d", i))
		d.Purpose = string(bytes.Repeat([]byte("x"), 1000))
		for j := 0; j < 20; j++ {
			d.Scopes = append(d.Scopes, fmt.Sprintf("scope:%03d:%s", j, bytes.Repeat([]byte("y"), 240)))
		}
		env := signDelegation(t, f.human, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.log.Append(context.Background(), env); err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	checkTreeMatchesLeaves(t, f.log)
}

func checkTreeMatchesLeaves(t *testing.T, l *Log) {
	t.Helper()
	leaves := allLeaves(t, l)
	hashes := make([][]byte, len(leaves))
	for i, leaf := range leaves {
		hashes[i] = merkleref.LeafHash(leaf)
	}
	if !bytes.Equal(merkleref.Root(hashes), l.Checkpoint().Root) {
		t.Fatal("the checkpoint root does not match the stored leaves")
	}
}

// TestFailedCommitIsNotPersisted: a commit that fails answers every request
// in the batch with Unavailable, writes nothing, signs nothing, and leaves
// the sequencer's state as it was, so the same requests succeed later at
// the same indices.
func TestFailedCommitIsNotPersisted(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxBatchWait = 50 * time.Millisecond })
	before := f.log.Checkpoint()
	injected := errors.New("injected: disk unplugged")
	f.log.faults.commit.Store(&injected)
	var envs [][]byte
	for i := 0; i < 5; i++ {
		envs = append(envs, signDelegation(t, f.human, delegation(fmt.Sprintf("dlg_f%d", i), humanID, agentID, fmt.Sprintf("nonce-f%07d", i))))
	}
	var wg sync.WaitGroup
	for _, env := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.log.Append(context.Background(), env)
			if proofs.Reason(err) != ReasonStoreUnavailable {
				t.Errorf("append during a failing commit: %v, want %s", err, ReasonStoreUnavailable)
			}
		}()
	}
	wg.Wait()
	if cp := f.log.Checkpoint(); cp.Size != before.Size || !bytes.Equal(cp.Root, before.Root) {
		t.Fatalf("checkpoint moved on a failed commit: %v -> %v", before, cp)
	}
	f.log.faults.commit.Store(nil)
	for i, env := range envs {
		a, err := f.log.Append(context.Background(), env)
		if err != nil || a.Duplicate {
			t.Fatalf("retry %d: %+v %v", i, a, err)
		}
		if a.Index != before.Size+uint64(i) {
			t.Fatalf("retry %d landed at %d, want %d", i, a.Index, before.Size+uint64(i))
		}
	}
	checkTreeMatchesLeaves(t, f.log)
}

// TestPersistedButNotSigned: when storing the checkpoint fails after the
// commit, the request fails with checkpoint_pending but the entry is
// durable; resubmitting returns it, and the next checkpoint covers it,
// consistent with the one before.
func TestPersistedButNotSigned(t *testing.T) {
	f := newFixture(t, nil)
	before := f.log.Checkpoint()
	injected := errors.New("injected: checkpoint write failed")
	f.log.faults.checkpoint.Store(&injected)
	env := signDelegation(t, f.human, delegation("dlg_p", humanID, agentID, "nonce-p0000000"))
	if _, err := f.log.Append(context.Background(), env); proofs.Reason(err) != ReasonCheckpointPending {
		t.Fatalf("append: %v, want %s", err, ReasonCheckpointPending)
	}
	if f.log.Checkpoint().Size != before.Size {
		t.Fatal("a checkpoint was published although storing it failed")
	}
	if _, err := f.log.Append(context.Background(), env); proofs.Reason(err) != ReasonCheckpointPending {
		t.Fatalf("resubmission while signing still fails: %v, want %s", err, ReasonCheckpointPending)
	}
	f.log.faults.checkpoint.Store(nil)
	// The next batch (here: the resubmission itself is a duplicate and
	// writes nothing, so wait for the sequencer's retry) signs it.
	deadline := time.Now().Add(time.Minute)
	for f.log.Checkpoint().Size == before.Size && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	a, err := f.log.Append(context.Background(), env)
	if err != nil || !a.Duplicate || a.Index != before.Size {
		t.Fatalf("resubmission after recovery: %+v %v, want the original entry %d", a, err, before.Size)
	}
	cp := f.log.Checkpoint()
	hashes, _, err := f.log.ConsistencyProof(context.Background(), before.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proofs.VerifyConsistency(before.Size, cp.Size, hashes, before.Root, cp.Root); err != nil {
		t.Fatal(err)
	}
}

// TestCloseFinishesQueuedRequests: requests queued before Close are
// answered, and acknowledged ones survive a reopen.
func TestCloseFinishesQueuedRequests(t *testing.T) {
	f := newFixture(t, nil)
	var wg sync.WaitGroup
	acked := make(chan uint64, 50)
	for i := 0; i < 50; i++ {
		env := signDelegation(t, f.human, delegation(fmt.Sprintf("dlg_q%d", i), humanID, agentID, fmt.Sprintf("nonce-q%07d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a, err := f.log.Append(context.Background(), env); err == nil {
				acked <- a.Index
			}
		}()
	}
	time.Sleep(time.Millisecond)
	f.log.Close()
	wg.Wait()
	close(acked)
	l := openTestLog(t, f.dir, f.registrar, f.withAdmin)
	defer l.Close()
	for idx := range acked {
		if _, err := l.Entry(context.Background(), idx); err != nil {
			t.Fatalf("acknowledged entry %d lost: %v", idx, err)
		}
	}
}

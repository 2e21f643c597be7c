package ledger

// Benchmarks of the server's hot paths: a verified, durable, checkpointed
// append end to end; one group commit of the sequencer; and the reads that
// answer every client (inclusion and consistency proofs from the tiles in
// Badger, pages of entries).
//
//	go test ./ledger -run '^$' -bench . -benchtime 2s

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestMain closes and removes the log shared by the read benchmarks, which
// outlives any one benchmark.
func TestMain(m *testing.M) {
	code := m.Run()
	hpCloseShared()
	os.Exit(code)
}

// hpParallel calls fn(0..n-1) on GOMAXPROCS goroutines and returns the
// first error.
func hpParallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n && first.Load() == nil; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// hpRootGrants signs n distinct root grants from the human to the agent
// (each accepted by the rules), in parallel. Ids and nonces carry tag.
func hpRootGrants(human *testKey, n int, tag string) ([][]byte, error) {
	envs := make([][]byte, n)
	err := hpParallel(n, func(i int) error {
		d := delegation(fmt.Sprintf("dlg_%s_%07d", tag, i), humanID, agentID, fmt.Sprintf("nonce-%s-%07d", tag, i))
		payload, err := proofs.MarshalPayload(d)
		if err != nil {
			return err
		}
		envs[i], err = human.signer.SignEnvelope(proofs.PayloadTypeDelegation, payload)
		return err
	})
	return envs, err
}

// hpRequest runs the stateless stage of Log.Append on a delegation
// envelope and returns the request the sequencer takes, without queueing it.
// Without verify, the issuer's signature is taken as valid (it is: the
// benchmarks sign every envelope with the issuer's registered key) and
// only the envelope and payload are parsed.
func hpRequest(l *Log, envelope []byte, verify bool) (*request, error) {
	env, err := proofs.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	r := &request{env: env, canon: env.Canonical(), done: make(chan result, 1)}
	r.envHash = proofs.EnvelopeHash(r.canon)
	r.payloadHash = proofs.PayloadHash(env.PayloadType, env.Payload)
	d, err := proofs.ParseDelegation(env.Payload)
	if err != nil {
		return nil, err
	}
	bs := l.signers.Load().Bindings()
	r.ev = proofs.Event{Kind: proofs.KindDelegation, Env: env, Delegation: d, Checked: bs}
	if !verify {
		if len(env.Signatures) != 1 {
			return nil, errors.New("an unverified request carries exactly the issuer's signature")
		}
		return r, nil // CheckSignatures gives the zero SignatureCheck
	}
	if r.ev.Sigs, err = proofs.CheckSignatures(env, bs.Agent(d.Issuer), bs.KeyID); err != nil {
		return nil, err
	}
	return r, nil
}

// hpStopSequencer stops the sequencer goroutine (after it drains its
// queue), so that the caller may run l.sequence itself. Close still works.
func hpStopSequencer(l *Log) {
	close(l.stop)
	<-l.stopped
}

// hpSequence commits batch with the sequencer stopped and checks that every
// request was accepted. It returns the number of distinct checkpoints the
// answers carry (the number of commits).
func hpSequence(l *Log, batch []*request) (int, error) {
	l.sequence(batch)
	sizes := map[uint64]bool{}
	for _, r := range batch {
		res := <-r.done
		if res.err != nil {
			return 0, res.err
		}
		if res.Decision == nil || res.Decision.Outcome != proofs.OutcomeAccepted {
			return 0, fmt.Errorf("entry %d: %+v, want accepted", res.Index, res.Decision)
		}
		sizes[res.Checkpoint.Size] = true
	}
	return len(sizes), nil
}

// BenchmarkAppendParallel is the end-to-end server cost of an append: many
// concurrent callers (64 per CPU) append pre-signed root grants through
// Log.Append, each returning once its entry is verified, decided, committed
// in a synced Badger transaction and covered by a signed checkpoint.
// entries/batch is the mean group-commit size (appends per distinct
// checkpoint handed back).
func BenchmarkAppendParallel(b *testing.B) {
	f := newFixture(b, nil)
	envs, err := hpRootGrants(f.human, b.N, "p")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	checkpoints := map[uint64]bool{}
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		seen := map[uint64]bool{}
		for pb.Next() {
			a, err := f.log.Append(ctx, envs[next.Add(1)-1])
			if err != nil {
				b.Error(err)
				return
			}
			if a.Decision.Outcome != proofs.OutcomeAccepted {
				b.Errorf("entry %d: %+v, want accepted", a.Index, a.Decision)
				return
			}
			seen[a.Checkpoint.Size] = true
		}
		mu.Lock()
		defer mu.Unlock()
		for s := range seen {
			checkpoints[s] = true
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if len(checkpoints) > 0 {
		b.ReportMetric(float64(b.N)/float64(len(checkpoints)), "entries/batch")
	}
}

// BenchmarkSequencerBatch measures one group commit: a batch of 1, 64 or
// 1024 verified requests (root grants) handed to the sequencer at once,
// decided, written with the tiles and indexes in one synced Badger
// transaction, checkpointed and answered. The stateless stage is done off
// the clock.
func BenchmarkSequencerBatch(b *testing.B) {
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			f := newFixture(b, nil)
			hpStopSequencer(f.log)
			commits := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				envs, err := hpRootGrants(f.human, n, fmt.Sprintf("s%d", i))
				if err != nil {
					b.Fatal(err)
				}
				batch := make([]*request, n)
				if err := hpParallel(n, func(j int) (err error) {
					batch[j], err = hpRequest(f.log, envs[j], true)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				c, err := hpSequence(f.log, batch)
				if err != nil {
					b.Fatal(err)
				}
				commits += c
			}
			b.StopTimer()
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(commits)/float64(b.N), "commits/op")
		})
	}
}

// BenchmarkAppendAnswerProofs is the proofs of the answers to one group
// commit of 64 appends, each proved by its own goroutine as the RPC
// handlers do, in the checkpoint the batch ends at: proof=inclusion the
// entry's, proof=consistency from a trusted size three batches back (a
// client appending among others). source=store reads each proof from the
// store (the tile-subtree cache shared), source=batch proves it from the
// nodes the batch kept (appendedProof, batchNodes.consistency). The log
// grows by 64 entries per op; committing them is off the clock.
func BenchmarkAppendAnswerProofs(b *testing.B) {
	for _, kind := range []string{"inclusion", "consistency"} {
		for _, source := range []string{"store", "batch"} {
			b.Run("proof="+kind+"/source="+source, func(b *testing.B) {
				f := newFixture(b, nil)
				hpStopSequencer(f.log)
				const n = 64
				var sizes []uint64 // each batch's end
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					answers := hpCommitBatch(b, f, n, fmt.Sprintf("a%d", i))
					sizes = append(sizes, answers[0].Checkpoint.Size)
					trusted := sizes[max(len(sizes)-4, 0)]
					b.StartTimer()
					var wg sync.WaitGroup
					for _, a := range answers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := hpAnswerProof(f.log, a, kind, source, trusted); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
				}
			})
		}
	}
}

// hpCommitBatch sequences n root grants as one batch and returns their
// answers.
func hpCommitBatch(b testing.TB, f *fixture, n int, tag string) []*Appended {
	envs, err := hpRootGrants(f.human, n, tag)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*request, n)
	for j, env := range envs {
		if batch[j], err = hpRequest(f.log, env, false); err != nil {
			b.Fatal(err)
		}
	}
	f.log.sequence(batch)
	answers := make([]*Appended, n)
	for j, r := range batch {
		res := <-r.done
		if res.err != nil {
			b.Fatal(res.err)
		}
		answers[j] = &Appended{Index: res.Index, Leaf: res.Leaf, Checkpoint: res.Checkpoint, nodes: res.nodes}
	}
	return answers
}

// hpAnswerProof makes one answer's proof of kind from source.
func hpAnswerProof(l *Log, a *Appended, kind, source string, trusted uint64) error {
	ctx, size := context.Background(), a.Checkpoint.Size
	var err error
	switch {
	case kind == "inclusion" && source == "store":
		_, _, err = l.InclusionProof(ctx, a.Index, size)
	case kind == "inclusion":
		_, err = l.appendedProof(ctx, a, a.Checkpoint)
	case trusted == 0 || trusted >= size:
	case source == "store":
		_, _, err = l.ConsistencyProof(ctx, trusted, size)
	default:
		if _, ok := a.nodes.consistency(trusted, a.Checkpoint); !ok {
			err = fmt.Errorf("consistency %d -> %d not proved from the batch's nodes", trusted, size)
		}
	}
	return err
}

// hpSharedSize is the number of delegations in the log the read benchmarks
// share.
const hpSharedSize = 100_000

// hpShared is a log of hpSharedSize root grants (plus config, policy and
// two bindings), built once for the read benchmarks and removed by
// TestMain.
var hpShared struct {
	once  sync.Once
	dir   string
	log   *Log
	err   error
	built time.Duration
}

// sharedLog returns the shared 100k-entry log, building it on first use.
// The build sequences batches of 1024 directly (the sequencer goroutine
// stopped), signing and parsing on every CPU.
func sharedLog(b *testing.B) *Log {
	b.Helper()
	if testing.Short() {
		b.Skip("builds a 100k-entry log")
	}
	hpShared.once.Do(func() {
		start := time.Now()
		hpShared.err = hpBuildShared()
		hpShared.built = time.Since(start)
	})
	if hpShared.err != nil {
		b.Fatalf("building the shared log: %v", hpShared.err)
	}
	return hpShared.log
}

func hpBuildShared() error {
	dir, err := os.MkdirTemp("", "warrant-bench-")
	if err != nil {
		return err
	}
	hpShared.dir = dir
	keys := make([]*testKey, 3) // registrar, human, agent
	for i := range keys {
		keys[i], err = hpNewKey()
		if err != nil {
			return err
		}
	}
	registrar, human, agent := keys[0], keys[1], keys[2]
	ctx := context.Background()
	l, err := Open(ctx, Options{Dir: dir, Origin: "bench.example/log", Logger: quietLogger(), RegistrarKeys: []*proofs.PublicKey{registrar.pub()}})
	if err != nil {
		return err
	}
	hpShared.log = l
	for _, kb := range []struct {
		id    string
		key   *testKey
		tier  string
		human bool
	}{{humanID, human, proofs.TierDraft, true}, {agentID, agent, proofs.TierExecute, false}} {
		payload, err := proofs.MarshalPayload(&proofs.KeyBinding{Agent: kb.id, PublicKey: kb.key.pub().DER, Tier: kb.tier, Human: kb.human,
			IssuedAt: proofs.FormatTime(time.Now()), Nonce: "bench-binding-" + kb.tier})
		if err != nil {
			return err
		}
		env, err := registrar.signer.SignEnvelope(proofs.PayloadTypeAgent, payload)
		if err != nil {
			return err
		}
		if _, err := l.Append(ctx, env); err != nil {
			return err
		}
	}
	hpStopSequencer(l)
	// Producers sign and parse (the signatures are real; verifying 100k of
	// them is left to the benchmarks of the stateless stage); this
	// goroutine sequences batches of 1024.
	const batchSize = 1024
	reqs := make(chan *request, 4*batchSize)
	var perr atomic.Pointer[error]
	go func() {
		defer close(reqs)
		err := hpParallel(hpSharedSize, func(i int) error {
			d := delegation(fmt.Sprintf("dlg_shared_%07d", i), humanID, agentID, fmt.Sprintf("nonce-shared-%07d", i))
			payload, err := proofs.MarshalPayload(d)
			if err != nil {
				return err
			}
			env, err := human.signer.SignEnvelope(proofs.PayloadTypeDelegation, payload)
			if err != nil {
				return err
			}
			r, err := hpRequest(l, env, false)
			if err != nil {
				return err
			}
			reqs <- r
			return nil
		})
		if err != nil {
			perr.Store(&err)
		}
	}()
	batch := make([]*request, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := hpSequence(l, batch)
		batch = batch[:0]
		return err
	}
	var serr error
	for r := range reqs {
		if serr != nil {
			continue // drain, so the producers finish
		}
		if batch = append(batch, r); len(batch) == batchSize {
			serr = flush()
		}
	}
	if serr == nil {
		serr = flush()
	}
	if e := perr.Load(); e != nil {
		return *e
	}
	if serr != nil {
		return serr
	}
	if got, want := l.Checkpoint().Size, uint64(hpSharedSize+4); got != want {
		return fmt.Errorf("shared log has %d entries, want %d", got, want)
	}
	return nil
}

func hpNewKey() (*testKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := client.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	return &testKey{signer: s}, nil
}

func hpCloseShared() {
	if hpShared.log != nil {
		if err := hpShared.log.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "closing the shared benchmark log: %v\n", err)
		}
	}
	if hpShared.dir != "" {
		os.RemoveAll(hpShared.dir)
	}
}

// BenchmarkInclusionProofFromBadger reads the inclusion proof of a random
// entry of the shared ~100k-entry log from its tiles.
func BenchmarkInclusionProofFromBadger(b *testing.B) {
	l := sharedLog(b)
	if b.N == 1 {
		b.Logf("shared log: %d entries, built in %v", l.Checkpoint().Size, hpShared.built.Round(time.Millisecond))
	}
	ctx := context.Background()
	cp := l.Checkpoint()
	rng := mrand.New(mrand.NewPCG(5, 6))
	for range 16 {
		idx := rng.Uint64N(cp.Size)
		leaf, err := l.Entry(ctx, idx)
		if err != nil {
			b.Fatal(err)
		}
		p, _, err := l.InclusionProof(ctx, idx, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := proofs.VerifyInclusion(idx, cp.Size, proofs.LeafHash(leaf), p, cp.Root); err != nil {
			b.Fatalf("setup: %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := l.InclusionProof(ctx, rng.Uint64N(cp.Size), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsistencyProofFromBadger reads the consistency proof from a
// random earlier size to the latest checkpoint of the shared log.
func BenchmarkConsistencyProofFromBadger(b *testing.B) {
	l := sharedLog(b)
	ctx := context.Background()
	cp := l.Checkpoint()
	rng := mrand.New(mrand.NewPCG(7, 8))
	for range 16 {
		size1 := 1 + rng.Uint64N(cp.Size-1)
		var root1 []byte
		if err := l.db.View(func(txn *badger.Txn) (err error) {
			root1, err = newNodeReader(txn).root(size1)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		p, _, err := l.ConsistencyProof(ctx, size1, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := proofs.VerifyConsistency(size1, cp.Size, p, root1, cp.Root); err != nil {
			b.Fatalf("setup: %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := l.ConsistencyProof(ctx, 1+rng.Uint64N(cp.Size-1), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEntries reads pages of 1000 leaves from random starts of the
// shared log (what export, audit and the SIEM follower do).
func BenchmarkEntries(b *testing.B) {
	l := sharedLog(b)
	ctx := context.Background()
	size := l.Checkpoint().Size
	const page = 1000
	rng := mrand.New(mrand.NewPCG(9, 10))
	first, err := l.Entries(ctx, 0, page)
	if err != nil || len(first) != page {
		b.Fatalf("setup: %d entries, %v", len(first), err)
	}
	pageBytes := 0
	for _, e := range first {
		pageBytes += len(e)
	}
	b.SetBytes(int64(pageBytes))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := l.Entries(ctx, rng.Uint64N(size-page), page)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != page {
			b.Fatal(errors.New("short page"))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(page*b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkInclusionProofCacheMiss reads inclusion proofs of random entries
// of the shared log without the tile-subtree cache: the cost of a proof
// whose tiles no recent proof touched (a large log, random readers).
func BenchmarkInclusionProofCacheMiss(b *testing.B) {
	l := sharedLog(b)
	cp := l.Checkpoint()
	rng := mrand.New(mrand.NewPCG(9, 10))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := rng.Uint64N(cp.Size)
		err := l.db.View(func(txn *badger.Txn) error {
			r := newNodeReader(txn)
			r.trees = newTreeCache(DefaultTreeCacheBytes) // empty: every tile missed once
			_, err := r.inclusion(idx, cp.Size)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

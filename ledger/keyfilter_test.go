package ledger

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// TestKeyFilterContract: every key added is reported as possibly present,
// across the growth of the filter by several layers; keys of tables the
// filter does not cover always are; a nil filter knows nothing; absent
// keys are mostly reported absent (the false-positive rate bound is
// generous: the filter is sized for about 1%).
func TestKeyFilterContract(t *testing.T) {
	f := newKeyFilter(0)
	const n = 300_000 // more than minFilterKeys: three layers
	tables := []byte{tPayload, tDelegID, tNonce, tRevoked}
	key := func(i int, tag string) []byte {
		return fmt.Appendf([]byte{tables[i%len(tables)]}, "%s-%d", tag, i)
	}
	for i := range n {
		f.add(key(i, "in"))
	}
	if len(f.layers) < 3 {
		t.Fatalf("%d keys filled %d layers, want growth", n, len(f.layers))
	}
	for i := range n {
		if !f.mayContain(key(i, "in")) {
			t.Fatalf("false negative for key %d", i)
		}
	}
	fp := 0
	for i := range n {
		if f.mayContain(key(i, "out")) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.05 {
		t.Errorf("false-positive rate %.3f over %d absent keys, want about 0.01", rate, n)
	}
	t.Logf("%d keys in %d layers, %d bytes; false positives %.2f%%", f.keys(), len(f.layers), f.bytes(), 100*float64(fp)/n)
	for _, k := range [][]byte{leafKey(7), hashKey(tLeafHash, make([]byte, 32)), keyHead, nil} {
		if !f.mayContain(k) {
			t.Errorf("key %q of a table the filter does not cover reported absent", k)
		}
	}
	var none *keyFilter
	none.add(key(1, "x"))
	if !none.mayContain(key(1, "x")) || !none.mayContain(key(2, "x")) {
		t.Error("a nil filter reported a key absent")
	}
}

// TestKeyFilterRebuiltAtOpen: the filter Open builds from the store knows
// every key of the tables it covers, and the log's decisions after a
// restart still see everything committed before it: a resubmission is a
// duplicate, a reused id or nonce is denied, a revoked parent is revoked.
func TestKeyFilterRebuiltAtOpen(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	mustAccept := func(env []byte) *Appended {
		t.Helper()
		a, err := f.log.Append(ctx, env)
		if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("append: %+v %v", a, err)
		}
		return a
	}
	var envs [][]byte
	for i := range 20 {
		env := signDelegation(t, f.human, delegation(fmt.Sprintf("dlg_f%02d", i), humanID, agentID, fmt.Sprintf("nonce-f%07d", i)))
		mustAccept(env)
		envs = append(envs, env)
	}
	mustAccept(signPayload(t, f.human, proofs.PayloadTypeRevocation, &proofs.Revocation{
		Delegation: "dlg_f03", Issuer: humanID, Reason: "test", IssuedAt: proofs.FormatTime(time.Now()), Nonce: "nonce-rev-f03"}))

	f.log.Close()
	f.log = openTestLog(t, f.dir, f.registrar, f.withAdmin)
	t.Cleanup(func() { f.log.Close() })

	// Every key of the covered tables in the store.
	covered := 0
	err := f.log.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if !filtered(k[0]) {
				continue
			}
			covered++
			if !f.log.absent.mayContain(k) {
				t.Errorf("the filter built at open does not know stored key %q", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 2 bindings + 20 delegations + 1 revocation signed payloads, 20 ids,
	// 20 nonces, 1 revoked delegation.
	if want := 23 + 20 + 20 + 1; covered != want {
		t.Errorf("%d keys of the covered tables in the store, want %d", covered, want)
	}

	size := f.log.Checkpoint().Size
	a, err := f.log.Append(ctx, envs[5])
	if err != nil || !a.Duplicate {
		t.Errorf("resubmission after a restart: %+v %v, want a duplicate", a, err)
	}
	if got := f.log.Checkpoint().Size; got != size {
		t.Errorf("a resubmission after a restart grew the log from %d to %d", size, got)
	}
	deny := func(d *proofs.Delegation, reason string) {
		t.Helper()
		a, err := f.log.Append(ctx, signDelegation(t, f.human, d))
		if err != nil || a.Decision.Outcome != proofs.OutcomeDenied || !bytes.Contains([]byte(fmt.Sprint(a.Decision.Reasons)), []byte(reason)) {
			t.Errorf("%s after a restart: %+v %v, want denied %s", d.ID, a, err, reason)
		}
	}
	deny(delegation("dlg_f07", humanID, agentID, "nonce-fresh-0001"), proofs.ReasonIDReused)
	deny(delegation("dlg_fresh", humanID, agentID, "nonce-f0000007"), proofs.ReasonNonceReused)
	if err := f.log.db.View(func(txn *badger.Txn) error {
		cs := newChainState(txn, f.log.signers.Load().Bindings(), f.log.delegations)
		cs.absent = f.log.absent
		revoked, err := cs.Revoked("dlg_f03")
		if err != nil || !revoked {
			t.Errorf("dlg_f03 after a restart: revoked %v, %v; want revoked", revoked, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

const forkOrigin = "example.test/warrant/fork"

// forkPair is two real logs signing with the same key under the same
// origin: the operator's two histories. They share a prefix (the config
// entry and three key bindings, with identical log times) and then diverge:
// A gets aExtra delegations from alice to bob, B gets bExtra delegations from
// alice to carol.
type forkPair struct {
	a, b       *testEnv
	aURL, bURL string
	k          *cast
	prefix     uint64
}

func newForkPair(t *testing.T, aExtra, bExtra int) *forkPair {
	t.Helper()
	ctx := context.Background()
	base := time.Now()
	reg := newEd25519(t)
	a := openLog(t, envOptions{origin: forkOrigin, registrar: reg, clock: stepClock(base)})
	b := openLog(t, envOptions{origin: forkOrigin, registrar: reg, clock: stepClock(base), logKeyFrom: a.dir})
	if a.log.VerifierKey() != b.log.VerifierKey() || a.log.Origin() != forkOrigin {
		t.Fatalf("the two logs do not share a key: %s vs %s", a.log.VerifierKey(), b.log.VerifierKey())
	}
	p := &forkPair{a: a, b: b, aURL: a.serve(t), bURL: b.serve(t)}
	ca, cb := client.New(p.aURL, a.verifier), client.New(p.bURL, b.verifier)
	p.k = &cast{alice: newAgent(t, "alice", false), bob: newAgent(t, "bob", true), carol: newAgent(t, "carol", false)}
	for _, ag := range []*agent{p.k.alice, p.k.bob, p.k.carol} {
		env := a.bindingEnvelope(t, ag, ag == p.k.alice)
		mustAppend(t, ca, env)
		mustAppend(t, cb, env)
	}
	p.prefix = a.log.Checkpoint().Size
	la, err := a.log.Entries(ctx, 0, int(p.prefix))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.log.Entries(ctx, 0, int(p.prefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range la {
		if !bytes.Equal(la[i], lb[i]) {
			t.Fatalf("setup: entry %d differs between the two logs before they diverge:\n%s\n%s", i, la[i], lb[i])
		}
	}
	if !bytes.Equal(a.log.Checkpoint().Root, b.log.Checkpoint().Root) {
		t.Fatal("setup: the common prefix has two roots")
	}
	for i := range aExtra {
		mustAppend(t, ca, sign(t, p.k.alice, a.rootGrant(t, fmt.Sprintf("a-%d", i), p.k.alice, p.k.bob)))
	}
	for i := range bExtra {
		mustAppend(t, cb, sign(t, p.k.alice, b.rootGrant(t, fmt.Sprintf("b-%d", i), p.k.alice, p.k.carol)))
	}
	if a.log.Checkpoint().Size != p.prefix+uint64(aExtra) || b.log.Checkpoint().Size != p.prefix+uint64(bExtra) {
		t.Fatalf("setup: sizes %d and %d", a.log.Checkpoint().Size, b.log.Checkpoint().Size)
	}
	return p
}

// victim is a client of the double (which starts as an honest proxy to log
// A) keeping its trusted state in a file.
func (p *forkPair) victim(t *testing.T) (*double, *client.Client, string) {
	t.Helper()
	d, url := newDouble(t, p.aURL)
	statePath := filepath.Join(t.TempDir(), "trusted-checkpoint")
	return d, client.New(url, p.a.verifier, client.WithState(client.FileState{Path: statePath})), statePath
}

// call is one client operation against a (possibly lying) log.
type call struct {
	name string
	fn   func(ctx context.Context, c *client.Client) error
}

// allCalls exercises every verified read and an append.
func allCalls(appendEnv []byte, delegationID string) []call {
	return []call{
		{"Checkpoint", func(ctx context.Context, c *client.Client) error { _, err := c.Checkpoint(ctx); return err }},
		{"Entry", func(ctx context.Context, c *client.Client) error { _, err := c.Entry(ctx, 1); return err }},
		{"Delegation", func(ctx context.Context, c *client.Client) error {
			_, err := c.Delegation(ctx, delegationID)
			return err
		}},
		{"Entries", func(ctx context.Context, c *client.Client) error { _, _, err := c.Entries(ctx, 0, 100); return err }},
		{"Append", func(ctx context.Context, c *client.Client) error { _, err := c.Append(ctx, appendEnv); return err }},
	}
}

// wantInconsistent checks a fork or rollback error and that the state file
// kept its bytes.
func wantInconsistent(t *testing.T, err error, want error, statePath string, state []byte) {
	t.Helper()
	reason, other := client.ReasonFork, client.ErrRollback
	if want == client.ErrRollback {
		reason, other = client.ReasonRollback, client.ErrFork
	}
	if !errors.Is(err, want) || errors.Is(err, other) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if got := proofs.Reason(err); got != reason {
		t.Fatalf("reason %q, want %q (%v)", got, reason, err)
	}
	if got := readFile(t, statePath); !bytes.Equal(got, state) {
		t.Fatalf("the trusted state changed:\nbefore %q\nafter  %q", state, got)
	}
}

func TestForkLargerSize(t *testing.T) {
	ctx := context.Background()
	p := newForkPair(t, 1, 3)
	d, c, statePath := p.victim(t)
	cp, err := c.Checkpoint(ctx)
	if err != nil || cp.Size != p.prefix+1 {
		t.Fatalf("Checkpoint from A: %v, %v", cp, err)
	}
	state := readFile(t, statePath)
	if len(state) == 0 {
		t.Fatal("no trusted state was written")
	}

	// The operator switches to history B: same key, larger size.
	d.reset(p.bURL)
	for _, tc := range allCalls(sign(t, p.k.alice, p.b.rootGrant(t, "on-b", p.k.alice, p.k.bob)), "b-0") {
		t.Run(tc.name, func(t *testing.T) {
			wantInconsistent(t, tc.fn(ctx, c), client.ErrFork, statePath, state)
		})
	}
	if tr, err := c.Trusted(); err != nil || !bytes.Equal(tr.Note, cp.Note) {
		t.Fatalf("Trusted after forks: %v, %v; want the checkpoint from A", tr, err)
	}

	// Back to history A, everything verifies again from the same state.
	d.reset(p.aURL)
	if got, err := c.Checkpoint(ctx); err != nil || !bytes.Equal(got.Note, cp.Note) {
		t.Fatalf("Checkpoint from A again: %v, %v", got, err)
	}
	e := mustAppend(t, c, sign(t, p.k.alice, p.a.rootGrant(t, "on-a", p.k.alice, p.k.bob)))
	if e.Checkpoint.Size != p.prefix+2 {
		t.Fatalf("append to A after the fork: checkpoint size %d", e.Checkpoint.Size)
	}
}

func TestForkSameSize(t *testing.T) {
	ctx := context.Background()
	p := newForkPair(t, 2, 2)
	d, c, statePath := p.victim(t)
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bcp := p.b.log.Checkpoint(); bcp.Size != cp.Size || bytes.Equal(bcp.Root, cp.Root) {
		t.Fatalf("setup: want equal sizes and different roots, got %v and %v", cp, bcp)
	}
	state := readFile(t, statePath)

	d.reset(p.bURL)
	// Append is left out: appending to B makes it larger (TestForkLargerSize).
	for _, tc := range allCalls(nil, "b-1")[:4] {
		t.Run(tc.name, func(t *testing.T) {
			wantInconsistent(t, tc.fn(ctx, c), client.ErrFork, statePath, state)
		})
	}
	// B is a valid log on its own: a client that never saw A trusts it.
	if _, err := client.New(p.bURL, p.b.verifier).Checkpoint(ctx); err != nil {
		t.Fatalf("a fresh client of B: %v", err)
	}
}

// The double serves log B, which is smaller than what the client trusts
// from A: a rollback, whatever B's content.
func TestRollbackToOtherHistory(t *testing.T) {
	ctx := context.Background()
	p := newForkPair(t, 3, 1)
	d, c, statePath := p.victim(t)
	if _, err := c.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	state := readFile(t, statePath)
	d.reset(p.bURL)
	// Append is left out: an append would make B as large as A.
	for _, tc := range allCalls(nil, "b-0")[:4] {
		t.Run(tc.name, func(t *testing.T) {
			wantInconsistent(t, tc.fn(ctx, c), client.ErrRollback, statePath, state)
		})
	}
}

// The double replays answers recorded when the log was smaller.
func TestRollbackReplayedAnswers(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	d, durl := newDouble(t, url)
	statePath := filepath.Join(t.TempDir(), "state")
	c := client.New(durl, e.verifier, client.WithState(client.FileState{Path: statePath}))
	k := register(t, e, c)

	// Recorded from the honest log at its current size.
	rpc := rpcClient(url)
	oldCP, err := getCheckpoint(ctx, rpc, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldEntry, err := getEntry(ctx, rpc, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldEntries, err := rpc.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: 0, Count: 100}))
	if err != nil {
		t.Fatal(err)
	}
	first := sign(t, k.alice, e.rootGrant(t, "first", k.alice, k.bob))
	oldAppend, err := rpc.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: first}))
	if err != nil {
		t.Fatal(err)
	}

	// The log grows; the client trusts the larger tree.
	for i := range 2 {
		mustAppend(t, c, sign(t, k.alice, e.rootGrant(t, fmt.Sprintf("later-%d", i), k.alice, k.bob)))
	}
	tr, err := c.Trusted()
	if err != nil {
		t.Fatal(err)
	}
	state := readFile(t, statePath)
	recorded, err := proofs.OpenCheckpoint(oldCP.Checkpoint, e.verifier)
	if err != nil || recorded.Size >= tr.Size {
		t.Fatalf("setup: recorded size %v, trusted %d (%v)", recorded, tr.Size, err)
	}

	d.set(func(d *double) {
		d.checkpointFn = func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
			return oldCP, nil
		}
		d.getEntryFn = func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetEntryRequest) (*warrantv1.GetEntryResponse, error) {
			return oldEntry, nil
		}
		d.getEntriesFn = func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetEntriesRequest) (*warrantv1.GetEntriesResponse, error) {
			return oldEntries.Msg, nil
		}
		d.appendFn = func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.AppendRequest) (*warrantv1.AppendResponse, error) {
			return oldAppend.Msg, nil
		}
	})
	calls := []call{
		{"Checkpoint", func(ctx context.Context, c *client.Client) error { _, err := c.Checkpoint(ctx); return err }},
		{"Entry", func(ctx context.Context, c *client.Client) error { _, err := c.Entry(ctx, 1); return err }},
		{"Entries", func(ctx context.Context, c *client.Client) error { _, _, err := c.Entries(ctx, 0, 100); return err }},
		// The replayed receipt is even for the very envelope submitted.
		{"Append", func(ctx context.Context, c *client.Client) error { _, err := c.Append(ctx, first); return err }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			wantInconsistent(t, tc.fn(ctx, c), client.ErrRollback, statePath, state)
		})
	}

	d.reset(url)
	if cp, err := c.Checkpoint(ctx); err != nil || cp.Size != e.log.Checkpoint().Size {
		t.Fatalf("Checkpoint from the honest log: %v, %v", cp, err)
	}
}

// resign signs checkpoint text with s.
func resign(t testing.TB, s note.Signer, body []byte) []byte {
	t.Helper()
	signed, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// Checkpoints signed by another key with the log's name never verify, and
// nothing is trusted on first use from them.
func TestCheckpointWrongKey(t *testing.T) {
	ctx := context.Background()
	const origin = "example.test/warrant/keyed"
	reg := newEd25519(t)
	e := openLog(t, envOptions{origin: origin, registrar: reg})
	url := e.serve(t)
	// Another log under the same origin, with its own key.
	other := openLog(t, envOptions{origin: origin, registrar: reg})
	otherURL := other.serve(t)
	if other.log.VerifierKey() == e.log.VerifierKey() || other.verifier.Name() != e.verifier.Name() {
		t.Fatalf("setup: want the same name and another key: %s, %s", e.log.VerifierKey(), other.log.VerifierKey())
	}
	mustAppend(t, client.New(otherURL, other.verifier), other.bindingEnvelope(t, newAgent(t, "erin", false), false))
	impostorKey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := note.NewSigner(impostorKey)
	if err != nil {
		t.Fatal(err)
	}

	d, durl := newDouble(t, url)
	statePath := filepath.Join(t.TempDir(), "state")
	c := client.New(durl, e.verifier, client.WithState(client.FileState{Path: statePath}))
	k := register(t, e, c)
	mustAppend(t, c, sign(t, k.alice, e.rootGrant(t, "real", k.alice, k.bob)))
	state := readFile(t, statePath)

	resignedCP := func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
		r, err := b.GetCheckpoint(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		cp := e.log.Checkpoint()
		r.Msg.Checkpoint = resign(t, impostor, proofs.CheckpointBody(origin, cp.Size, cp.Root))
		return r.Msg, nil
	}
	alteredCP := func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
		r, err := b.GetCheckpoint(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		size := e.log.Checkpoint().Size
		r.Msg.Checkpoint = bytes.Replace(r.Msg.Checkpoint, fmt.Appendf(nil, "\n%d\n", size), fmt.Appendf(nil, "\n%d\n", size+1), 1)
		return r.Msg, nil
	}
	resignedEntry := func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetEntryRequest) (*warrantv1.GetEntryResponse, error) {
		r, err := b.GetEntry(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		cp := e.log.Checkpoint()
		r.Msg.Entry.Checkpoint = resign(t, impostor, proofs.CheckpointBody(origin, cp.Size, cp.Root))
		return r.Msg, nil
	}
	for _, tc := range []struct {
		name  string
		setup func(d *double)
		call  call
	}{
		{"another log's checkpoint", func(d *double) { d.backend = rpcClient(otherURL) }, allCalls(nil, "")[0]},
		{"another log's entry", func(d *double) { d.backend = rpcClient(otherURL) }, allCalls(nil, "")[1]},
		{"another log's entries", func(d *double) { d.backend = rpcClient(otherURL) }, allCalls(nil, "")[3]},
		{"another log's append receipt", func(d *double) { d.backend = rpcClient(otherURL) },
			allCalls(e.bindingEnvelope(t, newAgent(t, "dave", false), false), "")[4]},
		{"checkpoint re-signed by an impostor key", func(d *double) { d.checkpointFn = resignedCP }, allCalls(nil, "")[0]},
		{"checkpoint body altered", func(d *double) { d.checkpointFn = alteredCP }, allCalls(nil, "")[0]},
		{"entry under an impostor checkpoint", func(d *double) { d.getEntryFn = resignedEntry }, allCalls(nil, "")[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.reset(url)
			d.set(tc.setup)
			wantReason(t, tc.call.fn(ctx, c), proofs.ReasonCheckpointSignature)
			if got := readFile(t, statePath); !bytes.Equal(got, state) {
				t.Fatal("the trusted state changed")
			}
			// A client with no trusted state does not trust it on first
			// use either.
			freshPath := filepath.Join(t.TempDir(), "fresh")
			fresh := client.New(durl, e.verifier, client.WithState(client.FileState{Path: freshPath}))
			wantReason(t, tc.call.fn(ctx, fresh), proofs.ReasonCheckpointSignature)
			if got := readFile(t, freshPath); got != nil {
				t.Fatalf("a fresh client stored %q", got)
			}
		})
	}
	if !strings.HasPrefix(other.log.VerifierKey(), origin+"+") {
		t.Fatalf("other log's key is not named %s", origin)
	}
}

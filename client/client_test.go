package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// cast is a human principal (alice), an ECDSA P-256 agent (bob) and an
// Ed25519 agent (carol), all registered.
type cast struct {
	alice, bob, carol *agent
	bindings          []*client.Entry
}

func register(t testing.TB, e *testEnv, c *client.Client) *cast {
	t.Helper()
	k := &cast{alice: newAgent(t, "alice", false), bob: newAgent(t, "bob", true), carol: newAgent(t, "carol", false)}
	for _, a := range []*agent{k.alice, k.bob, k.carol} {
		be := mustAppend(t, c, e.bindingEnvelope(t, a, a == k.alice))
		if be.Leaf.Kind != proofs.KindKeyBinding || be.Leaf.KeyBinding == nil || be.Leaf.KeyBinding.Agent != a.id {
			t.Fatalf("registering %s: got entry %d of kind %q", a.id, be.Index, be.Leaf.Kind)
		}
		if be.Leaf.Decision == nil || be.Leaf.Decision.Outcome != proofs.OutcomeAccepted || be.Duplicate {
			t.Fatalf("registering %s: decision %+v, duplicate %v", a.id, be.Leaf.Decision, be.Duplicate)
		}
		if !bytes.Equal(be.Leaf.KeyBinding.PublicKey, a.signer.Public().DER) {
			t.Fatalf("registering %s: the binding holds another key", a.id)
		}
		k.bindings = append(k.bindings, be)
	}
	return k
}

// checkEntry checks what a verified entry must satisfy on its own.
func checkEntry(t testing.TB, e *testEnv, got *client.Entry) {
	t.Helper()
	if got.Checkpoint == nil || got.Leaf == nil {
		t.Fatalf("entry %d: missing checkpoint or leaf", got.Index)
	}
	if got.Checkpoint.Origin != e.log.Origin() {
		t.Errorf("entry %d: checkpoint origin %q, want %q", got.Index, got.Checkpoint.Origin, e.log.Origin())
	}
	if got.Index >= got.Checkpoint.Size {
		t.Errorf("entry %d: not below its checkpoint size %d", got.Index, got.Checkpoint.Size)
	}
	if err := proofs.VerifyInclusion(got.Index, got.Checkpoint.Size, proofs.LeafHash(got.Leaf.Raw), got.InclusionProof, got.Checkpoint.Root); err != nil {
		t.Errorf("entry %d: returned inclusion proof does not verify: %v", got.Index, err)
	}
	if got.ID != got.Leaf.ID() {
		t.Errorf("entry %d: id %q, leaf id %q", got.Index, got.ID, got.Leaf.ID())
	}
}

func TestAppendAndReadVerified(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	c := client.New(e.serve(t), e.verifier)
	k := register(t, e, c)

	d1 := e.rootGrant(t, "del-1", k.alice, k.bob)
	d2 := child(t, "del-2", d1, k.bob, k.carol) // signed with bob's ECDSA key
	var dels []*client.Entry
	for _, d := range []struct {
		p      *proofs.Delegation
		issuer *agent
	}{{d1, k.alice}, {d2, k.bob}} {
		got := mustAppend(t, c, sign(t, d.issuer, d.p))
		checkEntry(t, e, got)
		if got.ID != d.p.ID || got.Leaf.Kind != proofs.KindDelegation || got.Leaf.Delegation == nil ||
			got.Leaf.Delegation.Issuer != d.p.Issuer || got.Leaf.Delegation.Delegate != d.p.Delegate {
			t.Fatalf("append %s: got entry %d id %q kind %q", d.p.ID, got.Index, got.ID, got.Leaf.Kind)
		}
		if got.Duplicate || got.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("append %s: duplicate %v, decision %+v", d.p.ID, got.Duplicate, got.Leaf.Decision)
		}
		dels = append(dels, got)
	}
	all := append(slices.Clone(k.bindings), dels...)
	for i := 1; i < len(all); i++ {
		if all[i].Index <= all[i-1].Index {
			t.Fatalf("indices not increasing: %d then %d", all[i-1].Index, all[i].Index)
		}
	}

	// The trusted state is the latest checkpoint the client saw.
	tr, err := c.Trusted()
	if err != nil || tr == nil {
		t.Fatalf("Trusted: %v, %v", tr, err)
	}
	if last := dels[len(dels)-1].Checkpoint; !bytes.Equal(tr.Note, last.Note) {
		t.Fatalf("trusted state is size %d, want the last append's checkpoint (size %d)", tr.Size, last.Size)
	}

	// Entry by index returns exactly what was appended.
	for _, want := range all {
		got, err := c.Entry(ctx, want.Index)
		if err != nil {
			t.Fatalf("Entry(%d): %v", want.Index, err)
		}
		checkEntry(t, e, got)
		if !bytes.Equal(got.Leaf.Raw, want.Leaf.Raw) || got.ID != want.ID || got.Duplicate {
			t.Fatalf("Entry(%d) = %s, want %s", want.Index, got.Leaf.Raw, want.Leaf.Raw)
		}
	}
	// Index 0 is the log's configuration.
	cfg, err := c.Entry(ctx, 0)
	if err != nil {
		t.Fatalf("Entry(0): %v", err)
	}
	if cfg.Leaf.Kind != proofs.KindLogConfig || cfg.Leaf.Config == nil || cfg.Leaf.Config.Origin != e.log.Origin() {
		t.Fatalf("entry 0 is %q, want the log config", cfg.Leaf.Kind)
	}
	if _, err := c.Entry(ctx, 1000); connect.CodeOf(err) != connect.CodeNotFound || proofs.Reason(err) != "not_found" {
		t.Fatalf("Entry(1000): got %v (code %v), want not_found", err, connect.CodeOf(err))
	}

	// Delegation by id.
	for i, d := range []*proofs.Delegation{d1, d2} {
		got, err := c.Delegation(ctx, d.ID)
		if err != nil {
			t.Fatalf("Delegation(%s): %v", d.ID, err)
		}
		checkEntry(t, e, got)
		if got.Index != dels[i].Index || !bytes.Equal(got.Leaf.Raw, dels[i].Leaf.Raw) {
			t.Fatalf("Delegation(%s) = entry %d, want %d", d.ID, got.Index, dels[i].Index)
		}
	}
	if _, err := c.Delegation(ctx, "no-such-delegation"); proofs.Reason(err) != "not_found" {
		t.Fatalf("Delegation(unknown): got %v, want not_found", err)
	}

	// Entries: the whole log, and a window of it.
	leaves, cp, err := c.Entries(ctx, 0, 100)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	if uint64(len(leaves)) != cp.Size || cp.Size != all[len(all)-1].Index+1 {
		t.Fatalf("Entries returned %d leaves under a checkpoint of size %d; last index %d", len(leaves), cp.Size, all[len(all)-1].Index)
	}
	for _, want := range all {
		if !bytes.Equal(leaves[want.Index].Raw, want.Leaf.Raw) {
			t.Fatalf("Entries: leaf %d differs from the appended one", want.Index)
		}
	}
	win, _, err := c.Entries(ctx, 1, 2)
	if err != nil {
		t.Fatalf("Entries(1, 2): %v", err)
	}
	if len(win) != 2 || !bytes.Equal(win[0].Raw, leaves[1].Raw) || !bytes.Equal(win[1].Raw, leaves[2].Raw) {
		t.Fatalf("Entries(1, 2) returned %d leaves, not entries 1 and 2", len(win))
	}

	// Checkpoint: the log's latest, now trusted.
	got, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if want := e.log.Checkpoint(); !bytes.Equal(got.Note, want.Note) || got.Size != want.Size || !bytes.Equal(got.Root, want.Root) {
		t.Fatalf("Checkpoint = %v, want %v", got, want)
	}
	if tr, _ := c.Trusted(); !bytes.Equal(tr.Note, got.Note) {
		t.Fatalf("the trusted state is not the checkpoint just verified")
	}

	// Every entry exports as a tlog-proof that verifies offline with the log
	// key alone (parsed either way).
	pv, err := proofs.ParseVerifierKey(e.log.VerifierKey() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range all {
		data, err := want.TLogProof()
		if err != nil {
			t.Fatalf("TLogProof(%d): %v", want.Index, err)
		}
		ve, err := proofs.VerifyTLogProof(data, pv)
		if err != nil {
			t.Fatalf("VerifyTLogProof(entry %d): %v", want.Index, err)
		}
		if ve.Index != want.Index || !bytes.Equal(ve.Leaf.Raw, want.Leaf.Raw) || !bytes.Equal(ve.Checkpoint.Note, want.Checkpoint.Note) {
			t.Fatalf("tlog-proof of entry %d verifies as entry %d", want.Index, ve.Index)
		}
		if _, err := proofs.VerifyTLogProof(data, e.verifier); err != nil {
			t.Fatalf("VerifyTLogProof(entry %d) under note.NewVerifier: %v", want.Index, err)
		}
		// A proof is bound to its leaf: another leaf in its place fails.
		other := all[0]
		if other.Index == want.Index {
			other = all[1]
		}
		forged, err := proofs.NewTLogProof(want.Index, other.Leaf.Raw, want.InclusionProof, want.Checkpoint.Note)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proofs.VerifyTLogProof(forged.Marshal(), pv); proofs.Reason(err) != proofs.ReasonInclusionInvalid {
			t.Fatalf("tlog-proof with a swapped leaf: got %v, want %s", err, proofs.ReasonInclusionInvalid)
		}
	}
}

func TestAppendDuplicateWritesNothing(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	c := client.New(url, e.verifier)
	k := register(t, e, c)
	envBytes := sign(t, k.alice, e.rootGrant(t, "dup-1", k.alice, k.bob))
	first := mustAppend(t, c, envBytes)
	if first.Duplicate {
		t.Fatal("first append reported as a duplicate")
	}
	before := e.log.Checkpoint()

	// The same envelope again, as bytes, re-indented (the same canonical
	// envelope), and from a client with no trusted state; and a key binding
	// again.
	var indented bytes.Buffer
	if err := json.Indent(&indented, envBytes, "", "  "); err != nil {
		t.Fatal(err)
	}
	fresh := client.New(url, e.verifier)
	for _, tc := range []struct {
		name string
		c    *client.Client
		env  []byte
		want *client.Entry
	}{
		{"same bytes", c, envBytes, first},
		{"re-indented", c, indented.Bytes(), first},
		{"fresh client", fresh, envBytes, first},
		{"key binding", c, k.bindings[1].Leaf.Envelope, k.bindings[1]},
	} {
		got, err := tc.c.Append(ctx, tc.env)
		if err != nil {
			t.Fatalf("%s: Append again: %v", tc.name, err)
		}
		checkEntry(t, e, got)
		if !got.Duplicate || got.Index != tc.want.Index || got.ID != tc.want.ID || !bytes.Equal(got.Leaf.Raw, tc.want.Leaf.Raw) {
			t.Fatalf("%s: got entry %d (duplicate %v), want duplicate of %d", tc.name, got.Index, got.Duplicate, tc.want.Index)
		}
		if got.Checkpoint.Size != before.Size {
			t.Fatalf("%s: duplicate answered with checkpoint size %d, log size was %d", tc.name, got.Checkpoint.Size, before.Size)
		}
	}
	if after := e.log.Checkpoint(); after.Size != before.Size || !bytes.Equal(after.Note, before.Note) {
		t.Fatalf("a duplicate append changed the log: size %d -> %d", before.Size, after.Size)
	}
	if cp, err := c.Checkpoint(ctx); err != nil || cp.Size != before.Size {
		t.Fatalf("Checkpoint after duplicates: %v, %v; want size %d", cp, err, before.Size)
	}
}

// Many copies of one envelope submitted at once (so several land in one
// batch) produce exactly one entry.
func TestAppendConcurrentDuplicates(t *testing.T) {
	e := openLog(t, envOptions{})
	url := e.serve(t)
	c := client.New(url, e.verifier)
	k := register(t, e, c)
	envBytes := sign(t, k.alice, e.rootGrant(t, "dup-concurrent", k.alice, k.bob))
	before := e.log.Checkpoint().Size

	const n = 8
	results := make([]*client.Entry, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = client.New(url, e.verifier).Append(context.Background(), envBytes)
		})
	}
	close(start)
	wg.Wait()
	originals := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("append %d: %v", i, errs[i])
		}
		if results[i].Index != results[0].Index || !bytes.Equal(results[i].Leaf.Raw, results[0].Leaf.Raw) {
			t.Fatalf("append %d: entry %d, append 0: entry %d", i, results[i].Index, results[0].Index)
		}
		if !results[i].Duplicate {
			originals++
		}
	}
	if originals != 1 {
		t.Fatalf("%d of %d concurrent submissions were reported as the original, want 1", originals, n)
	}
	if after := e.log.Checkpoint().Size; after != before+1 {
		t.Fatalf("log grew from %d to %d, want exactly one entry", before, after)
	}
}

func TestDeniedIDReuse(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	c := client.New(e.serve(t), e.verifier)
	k := register(t, e, c)
	accepted := mustAppend(t, c, sign(t, k.alice, e.rootGrant(t, "reused-id", k.alice, k.bob)))

	// Another delegation (new nonce, other delegate) with the same id.
	second := e.rootGrant(t, "reused-id", k.alice, k.carol)
	secondEnv := sign(t, k.alice, second)
	before := e.log.Checkpoint().Size
	got, err := c.Append(ctx, secondEnv)
	var de *client.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("Append(reused id): got %v (%T), want *client.DeniedError", err, err)
	}
	if !slices.Contains(de.Reasons, "id_reused") {
		t.Fatalf("denial reasons %v, want %q", de.Reasons, "id_reused")
	}
	if de.Entry == nil || got != de.Entry {
		t.Fatalf("Append should return the denial entry alongside the error (got %p, error's %p)", got, de.Entry)
	}
	checkEntry(t, e, de.Entry)
	if de.Entry.Index != before || de.Entry.Leaf.Decision.Outcome != proofs.OutcomeDenied || de.Entry.Duplicate {
		t.Fatalf("denial entry %d decision %+v duplicate %v; want a new denied entry at %d", de.Entry.Index, de.Entry.Leaf.Decision, de.Entry.Duplicate, before)
	}
	if de.Entry.Leaf.Delegation == nil || de.Entry.Leaf.Delegation.Delegate != k.carol.id {
		t.Fatalf("denial entry does not hold the submitted delegation")
	}
	if e.log.Checkpoint().Size != before+1 {
		t.Fatalf("a denial must be logged: size %d -> %d", before, e.log.Checkpoint().Size)
	}
	if de.Error() == "" {
		t.Fatal("empty DeniedError message")
	}

	// The denial did not take the id: it still names the accepted entry.
	byID, err := c.Delegation(ctx, "reused-id")
	if err != nil || byID.Index != accepted.Index {
		t.Fatalf("Delegation(reused-id) = %v, %v; want the accepted entry %d", byID, err, accepted.Index)
	}
	// The denial itself is readable and verifies.
	read, err := c.Entry(ctx, de.Entry.Index)
	if err != nil || read.Leaf.Decision.Outcome != proofs.OutcomeDenied {
		t.Fatalf("Entry(%d): %v, %v", de.Entry.Index, read, err)
	}

	// Resubmitting the denied envelope returns the same denial and writes
	// nothing.
	_, err = c.Append(ctx, secondEnv)
	var de2 *client.DeniedError
	if !errors.As(err, &de2) || de2.Entry.Index != de.Entry.Index || !de2.Entry.Duplicate {
		t.Fatalf("resubmitting a denied envelope: got %v, want a duplicate denial of entry %d", err, de.Entry.Index)
	}
	if e.log.Checkpoint().Size != before+1 {
		t.Fatal("resubmitting a denied envelope wrote an entry")
	}
}

// Refusals that are not denials write nothing and carry the server's
// reason code.
func TestAppendRefused(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	c := client.New(e.serve(t), e.verifier)
	k := register(t, e, c)
	stranger := newAgent(t, "stranger", false)
	before := e.log.Checkpoint().Size

	// A binding signed by a key that is not a registrar.
	bad := &testEnv{registrar: stranger.signer, now: e.now}
	_, err := c.Append(ctx, bad.bindingEnvelope(t, newAgent(t, "mallory", false), false))
	wantReason(t, err, "registrar_unknown")
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("code %v, want Unauthenticated", connect.CodeOf(err))
	}
	// A delegation by an unregistered issuer.
	_, err = c.Append(ctx, sign(t, stranger, e.rootGrant(t, "from-stranger", stranger, k.bob)))
	wantReason(t, err, "issuer_not_registered")
	// A delegation signed by the wrong key for its issuer.
	forged := sign(t, k.carol, e.rootGrant(t, "forged", k.alice, k.bob))
	_, err = c.Append(ctx, forged)
	wantReason(t, err, proofs.ReasonSignatureMissing)
	// Not an envelope at all: refused locally.
	_, err = c.Append(ctx, []byte(`{"payloadType":`))
	wantReason(t, err, proofs.ReasonEnvelopeMalformed)

	if e.log.Checkpoint().Size != before {
		t.Fatalf("refused requests were logged: size %d -> %d", before, e.log.Checkpoint().Size)
	}
}

// The client speaks gRPC as well as Connect.
func TestGRPC(t *testing.T) {
	e := openLog(t, envOptions{})
	srv := httptest.NewUnstartedServer(ledger.NewHandler(e.log))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protocols
	srv.Start()
	t.Cleanup(srv.Close)

	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &cp, DialContext: (&net.Dialer{}).DialContext}}
	c := client.New(srv.URL, e.verifier, client.WithGRPC(), client.WithHTTPClient(hc))
	k := register(t, e, c)
	got := mustAppend(t, c, sign(t, k.alice, e.rootGrant(t, "over-grpc", k.alice, k.bob)))
	checkEntry(t, e, got)
	if _, err := c.Delegation(context.Background(), "over-grpc"); err != nil {
		t.Fatalf("Delegation over gRPC: %v", err)
	}
	// A refusal's reason survives gRPC's error details too.
	_, err := c.Append(context.Background(), sign(t, k.carol, e.rootGrant(t, "x", newAgent(t, "nobody", false), k.bob)))
	wantReason(t, err, "issuer_not_registered")
}

// The trusted state outlives the ledger process: after a restart with the
// same configuration the log serves the same checkpoint (nothing appended),
// keeps its entries and dedup index, and a configuration change appends one
// log-config entry that the client verifies as a consistent extension.
func TestLedgerRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	statePath := filepath.Join(t.TempDir(), "state")
	reg, reg2 := newEd25519(t), newEd25519(t)
	open := func(keys ...*proofs.PublicKey) (*ledger.Log, *client.Client, func()) {
		t.Helper()
		l, err := ledger.Open(ctx, ledger.Options{Dir: dir, RegistrarKeys: keys, Logger: slog.New(slog.DiscardHandler), Badger: smallBadger})
		if err != nil {
			t.Fatalf("ledger.Open: %v", err)
		}
		srv := httptest.NewServer(ledger.NewHandler(l))
		v, err := proofs.ParseVerifierKey(l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		stop := func() {
			srv.Close()
			if err := l.Close(); err != nil {
				t.Errorf("closing ledger: %v", err)
			}
		}
		return l, client.New(srv.URL, v, client.WithState(client.FileState{Path: statePath})), stop
	}

	l, c, stop := open(reg.Public())
	e := &testEnv{dir: dir, log: l, registrar: reg, now: time.Now}
	k := register(t, e, c)
	grant := sign(t, k.alice, e.rootGrant(t, "before-restart", k.alice, k.bob))
	first := mustAppend(t, c, grant)
	cp1, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop()

	l, c, stop = open(reg.Public())
	cp2, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint after restart: %v", err)
	}
	if !bytes.Equal(cp2.Note, cp1.Note) {
		t.Fatalf("a restart with the same configuration changed the checkpoint: %v -> %v", cp1, cp2)
	}
	if got, err := c.Delegation(ctx, "before-restart"); err != nil || got.Index != first.Index {
		t.Fatalf("Delegation after restart: %v, %v", got, err)
	}
	dup, err := c.Append(ctx, grant)
	if err != nil || !dup.Duplicate || dup.Index != first.Index {
		t.Fatalf("resubmission after restart: %+v, %v", dup, err)
	}
	e.log = l
	after := mustAppend(t, c, sign(t, k.alice, e.rootGrant(t, "after-restart", k.alice, k.bob)))
	if after.Index != cp1.Size {
		t.Fatalf("first append after restart at %d, want %d", after.Index, cp1.Size)
	}
	stop()

	_, c, stop = open(reg.Public(), reg2.Public())
	defer stop()
	cp3, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint after a configuration change: %v", err)
	}
	if cp3.Size != cp1.Size+2 {
		t.Fatalf("size %d after a configuration change, want %d", cp3.Size, cp1.Size+2)
	}
	cfg, err := c.Entry(ctx, cp3.Size-1)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Leaf.Kind != proofs.KindLogConfig || len(cfg.Leaf.Config.RegistrarKeys) != 2 {
		t.Fatalf("last entry is %q with %d registrar keys, want the new log config", cfg.Leaf.Kind, len(cfg.Leaf.Config.RegistrarKeys))
	}
}

// A delegation looked up by id while it is being appended is either not
// found yet or returned, proven; never an error about tree sizes.
func TestDelegationWhileAppending(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	c := client.New(url, e.verifier)
	k := register(t, e, c)
	const n = 40
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		odd []error
	)
	wg.Go(func() {
		for i := range n {
			if _, err := c.Append(ctx, sign(t, k.alice, e.rootGrant(t, fmt.Sprintf("poll-%d", i), k.alice, k.bob))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			r := client.New(url, e.verifier)
			for i := range n {
				for tries := 0; ; tries++ {
					got, err := r.Delegation(ctx, fmt.Sprintf("poll-%d", i))
					if err == nil {
						if got.ID != fmt.Sprintf("poll-%d", i) {
							t.Errorf("Delegation(poll-%d) = %s", i, got.ID)
						}
						break
					}
					if proofs.Reason(err) != "not_found" {
						mu.Lock()
						odd = append(odd, err)
						mu.Unlock()
					}
					if tries > 100000 || t.Failed() {
						t.Errorf("poll-%d never appeared: %v", i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if len(odd) > 0 {
		t.Skipf("BUG: ledger service GetEntry by delegation_id reads the checkpoint before looking the id up; %d lookups racing an append failed, e.g. %v", len(odd), odd[0])
	}
}

// A log that cannot be reached is reported as unavailable, and the state is
// kept.
func TestUnavailable(t *testing.T) {
	e := openLog(t, envOptions{})
	srv := httptest.NewServer(ledger.NewHandler(e.log))
	c := client.New(srv.URL, e.verifier)
	cp, err := c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err = c.Checkpoint(context.Background())
	wantReason(t, err, client.ReasonTransport)
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("code %v, want Unavailable", connect.CodeOf(err))
	}
	if tr, err := c.Trusted(); err != nil || !bytes.Equal(tr.Note, cp.Note) {
		t.Fatalf("Trusted: %v, %v", tr, err)
	}
}

// TestSharedCheckpointCache: clients of one log can share the notes they
// verified, but a note verified for one log key is never taken as verified
// by a client of another key, even one with the same origin.
func TestSharedCheckpointCache(t *testing.T) {
	reg := newEd25519(t)
	a := openLog(t, envOptions{origin: "shared.example/log", registrar: reg})
	b := openLog(t, envOptions{origin: "shared.example/log", registrar: reg})
	aURL := a.serve(t)
	shared := client.NewCheckpointCache(4)
	ctx := context.Background()
	ca := client.New(aURL, a.verifier, client.WithCheckpointCache(shared))
	ca2 := client.New(aURL, a.verifier, client.WithCheckpointCache(shared))
	if _, err := ca.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ca2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// Log A's server answering a client that trusts log B's key: the note
	// is in the shared cache, but not as verified by B's key.
	cb := client.New(aURL, b.verifier, client.WithCheckpointCache(shared))
	if _, err := cb.Checkpoint(ctx); err == nil {
		t.Fatal("a client of log B accepted log A's checkpoint from a shared cache")
	}
}

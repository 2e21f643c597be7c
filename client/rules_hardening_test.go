package client_test

// Attacks on the chain rules and policy (issue 11, findings 6, 9 and 10),
// each tried over the real API: a ledger served on loopback, the SDK as the
// attacker's client.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// openRulesEnv opens a served ledger with an admin key and options set by
// mod, and returns it with a client and the admin's signer.
func openRulesEnv(t *testing.T, mod func(*ledger.Options)) (*testEnv, *client.Client, *client.Signer) {
	t.Helper()
	registrar, admin := newEd25519(t), newEd25519(t)
	opts := ledger.Options{
		Dir:           t.TempDir(),
		Origin:        "rules.example/log",
		RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		AdminKeys:     []*proofs.PublicKey{admin.Public()},
		Logger:        slog.New(slog.DiscardHandler),
		Badger:        smallBadger,
		AgentRate:     -1,
	}
	if mod != nil {
		mod(&opts)
	}
	l, err := ledger.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{dir: opts.Dir, log: l, registrar: registrar, verifier: v, now: time.Now}
	return e, client.New(e.serve(t), e.verifier), admin
}

// wantDenied fails unless err is a recorded denial with exactly reasons.
func wantDenied(t *testing.T, err error, reasons ...string) *client.Entry {
	t.Helper()
	var de *client.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a denial %v", err, reasons)
	}
	got, want := slices.Sorted(slices.Values(de.Reasons)), slices.Sorted(slices.Values(reasons))
	if !slices.Equal(got, want) {
		t.Fatalf("denied with %v, want %v", de.Reasons, reasons)
	}
	return de.Entry
}

// revocation signs a revocation of id by signer (issuer empty: an admin).
func revocation(t *testing.T, signer *client.Signer, id, issuer string) []byte {
	t.Helper()
	payload, err := proofs.MarshalPayload(&proofs.Revocation{Delegation: id, Issuer: issuer, Reason: "test", IssuedAt: proofs.FormatTime(time.Now()), Nonce: nonce(t)})
	if err != nil {
		t.Fatal(err)
	}
	env, err := signer.SignEnvelope(proofs.PayloadTypeRevocation, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// appendAll appends envelopes in batches and fails on any refusal or denial.
func appendAll(t *testing.T, c *client.Client, envs [][]byte) []*client.Entry {
	t.Helper()
	var out []*client.Entry
	for len(envs) > 0 {
		n := min(len(envs), 256)
		res, err := c.AppendBatch(context.Background(), envs[:n])
		if err != nil {
			t.Fatalf("AppendBatch: %v", err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("batch entry %d refused: %v", len(out)+i, r.Err)
			}
			if r.Denied {
				t.Fatalf("batch entry %d denied: %v", len(out)+i, r.Entry.Leaf.Decision.Reasons)
			}
			out = append(out, r.Entry)
		}
		envs = envs[n:]
	}
	return out
}

// TestAttackRevocationBelowDepth256: finding 6. The server ran with
// --max-depth 300 while the rules walked at most 256 ancestors, so a child
// at depth 264 of a revoked root grant was accepted. Now a depth limit the
// walk does not cover is refused when the log opens, and under the largest
// allowed one a revocation of the root reaches the deepest link.
func TestAttackRevocationBelowDepth256(t *testing.T) {
	for _, depth := range []int{proofs.MaxChainDepth + 1, 300} {
		_, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Badger: smallBadger,
			Rules: proofs.RuleLimits{LifetimeExecuteSeconds: 900, LifetimeDraftSeconds: 3600, LifetimeRootSeconds: 3600, MaxDepth: depth}})
		if proofs.Reason(err) != proofs.ReasonRuleLimitsInvalid {
			t.Fatalf("ledger.Open with max depth %d: %v, want %s", depth, err, proofs.ReasonRuleLimitsInvalid)
		}
	}

	e, c, _ := openRulesEnv(t, func(o *ledger.Options) {
		o.Rules = proofs.DefaultRuleLimits()
		o.Rules.MaxDepth = proofs.MaxChainDepth
	})
	alice := newAgent(t, "human/alice", false)
	agents := make([]*agent, proofs.MaxChainDepth+2)
	bindings := [][]byte{e.bindingEnvelope(t, alice, true)}
	for i := 1; i < len(agents); i++ {
		agents[i] = newAgent(t, fmt.Sprintf("agent/a%d", i), false)
		bindings = append(bindings, e.bindingEnvelope(t, agents[i], false))
	}
	appendAll(t, c, bindings)

	// alice → a1 → a2 → … → a255: depth 255.
	d := e.rootGrant(t, "c1", alice, agents[1])
	mustAppend(t, c, sign(t, alice, d))
	for i := 2; i < proofs.MaxChainDepth; i++ { // one by one: a batch's envelopes are independent
		d = child(t, fmt.Sprintf("c%d", i), d, agents[i-1], agents[i])
		d.Task = "/tickets"
		mustAppend(t, c, sign(t, agents[i-1], d))
	}

	// The deepest link a chain may have, accepted before the revocation.
	deepest := child(t, "c256", d, agents[proofs.MaxChainDepth-1], agents[proofs.MaxChainDepth])
	mustAppend(t, c, sign(t, agents[proofs.MaxChainDepth-1], deepest))
	mustAppend(t, c, revocation(t, alice.signer, "c1", alice.id))

	// The attack: hand on work from below the revoked root.
	sibling := child(t, "c256b", d, agents[proofs.MaxChainDepth-1], agents[proofs.MaxChainDepth+1])
	_, err := c.Append(context.Background(), sign(t, agents[proofs.MaxChainDepth-1], sibling))
	wantDenied(t, err, proofs.ReasonParentRevoked)
	over := child(t, "c257", deepest, agents[proofs.MaxChainDepth], agents[proofs.MaxChainDepth+1])
	_, err = c.Append(context.Background(), sign(t, agents[proofs.MaxChainDepth], over))
	wantDenied(t, err, proofs.ReasonParentRevoked, proofs.ReasonDepthExceeded)

	got, err := c.Delegation(context.Background(), "c256")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.GetState() != "revoked" || got.Status.GetRevokedVia() != "c1" {
		t.Errorf("status of c256 = %v, want revoked via c1", got.Status)
	}
	if n := replayAll(t, c); n == 0 {
		t.Fatal("nothing replayed")
	}
}

// replayAll replays the whole served log with proofs.Replay, as `warrant
// audit` does, and fails on any discrepancy; it returns the entry count.
func replayAll(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	ctx := context.Background()
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := proofs.NewReplay()
	for r.Next() < cp.Size {
		leaves, _, err := c.Entries(ctx, r.Next(), uint32(min(cp.Size-r.Next(), 1000)))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leaves {
			if err := r.Apply(r.Next(), l); err != nil {
				t.Errorf("replay: %v", err)
			}
		}
	}
	return cp.Size
}

// TestAttackForeignApproverAndLabelCase: finding 9. A human registered
// under any trust domain (spiffe://evil.org) approved an example.org
// tickets:admin grant, and high-impact labels were matched by case
// (Restricted, tickets:ADMIN, tickets:Delete passed with no approval). Now
// only a human of the issuer's domain approves, and a label has one
// spelling: any other is refused before anything is written.
func TestAttackForeignApproverAndLabelCase(t *testing.T) {
	e, c, _ := openRulesEnv(t, nil)
	ctx := context.Background()
	alice, bob := newAgent(t, "human/alice", false), newAgent(t, "human/bob", false)
	mallory := &agent{id: "spiffe://evil.org/human/mallory", signer: newEd25519(t)}
	planner, executor := newAgent(t, "agent/planner", false), newAgent(t, "agent/executor", true)
	appendAll(t, c, [][]byte{
		e.bindingEnvelope(t, alice, true), e.bindingEnvelope(t, bob, true), e.bindingEnvelope(t, mallory, true),
		e.bindingEnvelope(t, planner, false), e.bindingEnvelope(t, executor, false),
	})
	root := e.rootGrant(t, "root", alice, planner)
	root.Scopes = []string{"tickets:admin", "tickets:delete", "tickets:read"}
	root.DataClasses = []string{"internal", "restricted"}
	mustAppend(t, c, sign(t, alice, root))

	admin := func(id string) *proofs.Delegation {
		d := child(t, id, root, planner, executor)
		d.Scopes = []string{"tickets:admin"}
		return d
	}
	cosigned := func(d *proofs.Delegation, approver *agent) []byte {
		env, err := approver.signer.Cosign(sign(t, planner, d))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}

	// The attack: a human of another trust domain approves.
	_, err := c.Append(ctx, cosigned(admin("by-mallory"), mallory))
	wantDenied(t, err, proofs.ReasonApprovalRequired)
	// Unapproved, as before.
	_, err = c.Append(ctx, sign(t, planner, admin("unapproved")))
	wantDenied(t, err, proofs.ReasonApprovalRequired)
	// A human of the issuer's own domain approves.
	if got := mustAppend(t, c, cosigned(admin("by-bob"), bob)); got.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("approved by bob: %+v", got.Leaf.Decision)
	}

	// The attack: spell a high-impact label another way. Nothing is written.
	before, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(d *proofs.Delegation){
		func(d *proofs.Delegation) { d.Scopes = []string{"tickets:ADMIN"} },
		func(d *proofs.Delegation) { d.Scopes = []string{"tickets:Delete"} },
		func(d *proofs.Delegation) { d.Scopes, d.DataClasses = []string{"tickets:read"}, []string{"Restricted"} },
		func(d *proofs.Delegation) { d.Task = "/Tickets" },
	} {
		d := admin("spelt-" + nonce(t)[:8])
		mod(d)
		_, err := c.Append(ctx, sign(t, planner, d))
		wantReason(t, err, proofs.ReasonCaseNonCanonical)
		// A human issuer spelling it in a root grant is refused too.
		g := e.rootGrant(t, "grant-"+nonce(t)[:8], alice, planner)
		mod(g)
		_, err = c.Append(ctx, sign(t, alice, g))
		wantReason(t, err, proofs.ReasonCaseNonCanonical)
	}
	d := admin("unicode")
	d.Scopes = []string{"tickets:adm\u0131n"} // dotless i
	_, err = c.Append(ctx, sign(t, planner, d))
	wantReason(t, err, proofs.ReasonLabelMalformed)
	after, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size != before.Size {
		t.Errorf("refused spellings wrote %d entries", after.Size-before.Size)
	}
	replayAll(t, c)
}

// TestAttackSmallerFindings: finding 10 (b, c, d) over the API.
func TestAttackSmallerFindings(t *testing.T) {
	e, c, admin := openRulesEnv(t, nil)
	ctx := context.Background()
	alice := newAgent(t, "human/alice", false)
	planner, executor, mallory := newAgent(t, "agent/planner", false), newAgent(t, "agent/executor", false), newAgent(t, "agent/mallory", false)
	bound := appendAll(t, c, [][]byte{
		e.bindingEnvelope(t, alice, true), e.bindingEnvelope(t, planner, false),
		e.bindingEnvelope(t, executor, false), e.bindingEnvelope(t, mallory, false),
	})
	root := e.rootGrant(t, "root", alice, planner)
	mustAppend(t, c, sign(t, alice, root))
	kid := child(t, "kid", root, planner, executor)
	mustAppend(t, c, sign(t, planner, kid))
	size := func() uint64 {
		cp, err := c.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cp.Size
	}

	// (c) A delegation id equal to another entry's id (a key binding's
	// sha256:… id) is refused, so an id names one entry.
	before := size()
	clash := e.rootGrant(t, bound[0].ID, alice, planner)
	_, err := c.Append(ctx, sign(t, alice, clash))
	wantReason(t, err, proofs.ReasonIDReserved)
	under := child(t, "under-"+nonce(t)[:6], root, planner, executor)
	under.Parent = bound[1].ID
	_, err = c.Append(ctx, sign(t, planner, under))
	wantReason(t, err, proofs.ReasonIDReserved)

	// (b) An admin revocation naming an agent as its issuer would show the
	// admin's act as that agent's: refused. Without one it is the admin's.
	_, err = c.Append(ctx, revocation(t, admin, "kid", planner.id))
	wantReason(t, err, proofs.ReasonRevokerMismatch)
	if got := size(); got != before {
		t.Fatalf("refused requests wrote %d entries", got-before)
	}
	rev := mustAppend(t, c, revocation(t, admin, "kid", ""))
	if got, want := rev.Leaf.Actor(), "admin "+admin.KeyID(); got != want {
		t.Errorf("actor of the admin's revocation = %q, want %q", got, want)
	}
	listed := func(agent string) bool {
		page, _, err := c.AgentEntries(ctx, agent, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(page, func(x *client.Entry) bool { return x.Index == rev.Index })
	}
	if listed(planner.id) || !listed(admin.KeyID()) {
		t.Errorf("admin revocation listed under planner: %v, under the admin key: %v; want false, true", listed(planner.id), listed(admin.KeyID()))
	}

	// (d) Any registered agent can name planner's delegation as its parent
	// and have the denial recorded under it: marked as an outsider's, and
	// left out on request.
	intruder := child(t, "intrusion", root, planner, executor)
	intruder.Issuer = mallory.id
	_, err = c.Append(ctx, sign(t, mallory, intruder))
	denial := wantDenied(t, err, proofs.ReasonNotParentDelegate)
	r, err := c.BlastRadius(ctx, planner.id, client.RadiusOptions{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	var marked, plain []uint64
	var walk func(n *client.RadiusNode)
	walk = func(n *client.RadiusNode) {
		if n.Outsider {
			marked = append(marked, n.Entry.Index)
		} else {
			plain = append(plain, n.Entry.Index)
		}
		for _, ch := range n.Children {
			walk(ch)
		}
	}
	for _, n := range r.Roots {
		walk(n)
	}
	if !slices.Equal(marked, []uint64{denial.Index}) || slices.Contains(plain, denial.Index) {
		t.Errorf("outsiders marked %v, others %v; want only the intrusion %d marked", marked, plain, denial.Index)
	}
	r, err = c.BlastRadius(ctx, planner.id, client.RadiusOptions{Max: 100, SkipDenials: true})
	if err != nil {
		t.Fatal(err)
	}
	marked, plain = nil, nil
	for _, n := range r.Roots {
		walk(n)
	}
	if len(marked) != 0 || slices.Contains(plain, denial.Index) || r.Count != len(plain) {
		t.Errorf("with SkipDenials: outsiders %v, entries %v (count %d)", marked, plain, r.Count)
	}
	replayAll(t, c)
}

// TestAttackClockSetBack: finding 10 (e). After the server clock jumped
// forward and was set back, log time stayed pinned in the future, so every
// delegation was judged (expiry, not_before) at the wrong time for as long
// as the jump. Now the server refuses appends, Unavailable clock_behind,
// while log time runs more than the bound ahead of its clock.
func TestAttackClockSetBack(t *testing.T) {
	var clock atomic.Int64
	base := time.Now()
	clock.Store(base.UnixNano())
	e, c, _ := openRulesEnv(t, func(o *ledger.Options) {
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	alice, planner := newAgent(t, "human/alice", false), newAgent(t, "agent/planner", false)
	appendAll(t, c, [][]byte{e.bindingEnvelope(t, alice, true)})
	clock.Store(base.Add(3 * time.Hour).UnixNano()) // forward…
	mustAppend(t, c, e.bindingEnvelope(t, planner, false))
	clock.Store(base.UnixNano()) // …and back
	_, err := c.Append(context.Background(), sign(t, alice, e.rootGrant(t, "late", alice, planner)))
	wantReason(t, err, ledger.ReasonClockBehind)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
		t.Errorf("refusal %v is not Unavailable", err)
	}
	// Once the clock is back within the bound, appends resume (judged at a
	// log time the bound keeps near the clock).
	clock.Store(base.Add(3*time.Hour - 30*time.Second).UnixNano())
	g := e.rootGrant(t, "late", alice, planner)
	g.NotBefore, g.ExpiresAt = proofs.FormatTime(base.Add(3*time.Hour-time.Minute)), proofs.FormatTime(base.Add(3*time.Hour+10*time.Minute))
	mustAppend(t, c, sign(t, alice, g))
	replayAll(t, c)
}

// TestAttackWithdrawnKeyKeepsSpawning: finding 10 (a). After planner's key
// was withdrawn, the delegations it had issued stayed in force and their
// delegates kept handing work on. A withdrawal with revoke_issued revokes
// them, with cascade, and the status says so.
func TestAttackWithdrawnKeyKeepsSpawning(t *testing.T) {
	e, c, _ := openRulesEnv(t, nil)
	ctx := context.Background()
	alice, planner := newAgent(t, "human/alice", false), newAgent(t, "agent/planner", false)
	executor, helper := newAgent(t, "agent/executor", false), newAgent(t, "agent/helper", false)
	appendAll(t, c, [][]byte{e.bindingEnvelope(t, alice, true), e.bindingEnvelope(t, planner, false), e.bindingEnvelope(t, executor, false), e.bindingEnvelope(t, helper, false)})
	root := e.rootGrant(t, "root", alice, planner)
	mustAppend(t, c, sign(t, alice, root))
	kid := child(t, "kid", root, planner, executor)
	mustAppend(t, c, sign(t, planner, kid))

	withdrawal := func(revokeIssued bool) []byte {
		payload, err := proofs.MarshalPayload(&proofs.KeyBinding{Agent: planner.id, PublicKey: planner.signer.Public().DER, Tier: proofs.TierExecute,
			Revoked: true, RevokeIssued: revokeIssued, IssuedAt: proofs.FormatTime(time.Now()), Nonce: nonce(t)})
		if err != nil {
			t.Fatal(err)
		}
		env, err := e.registrar.SignEnvelope(proofs.PayloadTypeAgent, payload)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	grandchild := func(id string) *proofs.Delegation {
		g := child(t, id, kid, executor, helper)
		g.Task = kid.Task
		return g
	}

	// A plain withdrawal, as before: planner's grant keeps spawning.
	mustAppend(t, c, withdrawal(false))
	mustAppend(t, c, sign(t, executor, grandchild("spawned")))
	// Withdrawn with revoke_issued: it stops, with cascade.
	w := mustAppend(t, c, withdrawal(true))
	if !w.Leaf.KeyBinding.RevokeIssued || w.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("withdrawal entry %+v", w.Leaf.Decision)
	}
	_, err := c.Append(ctx, sign(t, executor, grandchild("spawned-after")))
	wantDenied(t, err, proofs.ReasonParentRevoked)
	for id, via := range map[string]string{"kid": "kid", "spawned": "kid"} {
		got, err := c.Delegation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.GetState() != "revoked" || got.Status.GetRevokedVia() != via {
			t.Errorf("status of %s = %v, want revoked via %s", id, got.Status, via)
		}
	}
	if got, _ := c.Delegation(ctx, "root"); got.Status.GetState() != "active" {
		t.Errorf("alice's grant to planner = %v, want active", got.Status)
	}
	// Registered again with a new key, planner's new grants are in force.
	planner.signer = newEd25519(t)
	mustAppend(t, c, e.bindingEnvelope(t, planner, false))
	kid2 := child(t, "kid2", root, planner, executor)
	mustAppend(t, c, sign(t, planner, kid2))
	g := child(t, "under-kid2", kid2, executor, helper)
	g.Task = kid2.Task
	mustAppend(t, c, sign(t, executor, g))
	replayAll(t, c)
}

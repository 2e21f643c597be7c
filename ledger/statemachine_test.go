package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestStateMachineProperty drives random histories through a real server
// (Open on Badger in a temp dir; every request through the stateless stage,
// Log.prepare and Log.admit, then the sequencer's Log.sequence in batches of
// one to six the history chooses, so that a request is decided after
// others of its batch changed the state it was authenticated against) and
// checks that the server, the offline replay and chain-bundle verification
// are one state machine:
//
//   - every answer's decision is the one recorded in its leaf;
//   - proofs.Replay, re-deriving each decision from the leaves alone,
//     finds no discrepancy: every recorded decision (accepted or denied,
//     with its reasons, policy digest and determining policies) equals the
//     replay's, and so does every effect later decisions depend on;
//   - proofs.VerifyBundle accepts the bundle of every accepted delegation,
//     which re-derives each link's decision and each key-binding decision
//     the bundle holds and compares them with the recorded ones;
//   - the history exercised what it is meant to (the coverage check).
//
// The histories mix registrations, rotations, key reuse across agents,
// withdrawals with and without revoke_issued, root grants and children
// (well-formed, widened, expired, from stale keys), approvals by humans of
// either trust domain, id and nonce reuse, revocations by issuers,
// ancestors, outsiders and admins, and policy changes. Everything is
// seeded: keys, payloads and the server's clock, which advances by a
// random step per request, so a failing seed replays exactly.
func TestStateMachineProperty(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	steps := 200
	if testing.Short() {
		seeds, steps = seeds[:1], 80
	}
	total := map[string]int{}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			h := newHistory(t, seed)
			for range steps {
				h.step()
			}
			h.check()
			for k, v := range h.seen {
				total[k] += v
			}
		})
	}
	// Coverage over all seeds: each kind of event the property is about
	// happened, accepted and (where it can be) denied. A short run (one
	// seed, fewer steps) is a smoke test and need not cover everything.
	if testing.Short() {
		return
	}
	for _, what := range []string{
		"binding accepted", "rotation accepted", "denied key_in_use", "withdrawal accepted", "withdrawal revoke_issued accepted",
		"delegation accepted", "delegation denied", "child accepted", "approved delegation accepted", "delegation denied approval_required",
		"delegation denied nonce_reused", "delegation denied parent_revoked", "revocation accepted", "revocation denied", "admin revocation accepted",
		"policy accepted", "refused", "refused in the batch",
	} {
		if total[what] == 0 {
			t.Errorf("no %q in the generated histories: the property does not cover it (seen %v)", what, total)
		}
	}
}

// history is one seeded run against one server.
type history struct {
	t   *testing.T
	rng *rand.Rand
	f   *fixture
	ctx context.Context

	mu  sync.Mutex
	now time.Time

	agents   []*histAgent
	keys     [][]byte // every key seed handed out, for key reuse
	accepted []*proofs.Delegation
	// queued are delegations appended but maybe not sequenced yet: parents
	// for children in the same batch (the server's batch overlay).
	queued   []*proofs.Delegation
	answers  map[uint64]*proofs.Decision
	pending  []pendingAppend
	policies []string
	n        int
	seen     map[string]int
}

type histAgent struct {
	id    string
	human bool
	key   *testKey // in force, or nil
	stale *testKey // the key before the last rotation or withdrawal
}

func newHistory(t *testing.T, seed uint64) *history {
	h := &history{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), ctx: context.Background(),
		now: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC), answers: map[uint64]*proofs.Decision{}, seen: map[string]int{}}
	h.f = &fixture{dir: t.TempDir(), registrar: h.key(), admin: h.key()}
	h.f.log = openTestLog(t, h.f.dir, h.f.registrar, func(o *Options) {
		o.AdminKeys = []*proofs.PublicKey{h.f.admin.pub()}
		o.Now = h.clock
		o.MaxBatchWait = 0
	})
	t.Cleanup(func() { h.f.log.Close() })
	// The history forms the batches itself: stop the sequencer goroutine
	// (Open has recorded the configuration and default policy) and
	// sequence on this goroutine (flush). Close still works.
	close(h.f.log.stop)
	<-h.f.log.stopped
	h.policies = []string{
		string(defaultPolicy),
		strings.Replace(string(defaultPolicy), "when { context.issuer_domain != context.delegate_domain };",
			"when { context.issuer_domain != context.delegate_domain }\nunless { context.delegate_domain == \"partner.example\" };", 1),
	}
	for i, id := range []string{
		"spiffe://example.org/human/alice", "spiffe://example.org/human/bob", "spiffe://partner.example/human/carol",
		"spiffe://example.org/agent/planner", "spiffe://example.org/agent/worker", "spiffe://example.org/agent/drafter",
		"spiffe://partner.example/agent/x", "spiffe://example.org/agent/late",
	} {
		a := &histAgent{id: id, human: strings.Contains(id, "/human/")}
		h.agents = append(h.agents, a)
		if i < 7 { // "late" registers during the history
			h.bind(a, h.key(), "")
		}
	}
	h.flush()
	return h
}

// clock is the server's clock: the history's time, advanced per request.
func (h *history) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *history) advance() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(time.Duration(h.rng.IntN(40)) * time.Second)
}

// key returns a new key from the history's seed.
func (h *history) key() *testKey {
	var seed [ed25519.SeedSize]byte
	for i := range seed {
		seed[i] = byte(h.rng.Uint32())
	}
	h.keys = append(h.keys, seed[:])
	return keyFromSeed(h.t, seed[:])
}

func keyFromSeed(t *testing.T, seed []byte) *testKey {
	s, err := client.NewSigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{signer: s}
}

func (h *history) nonce(prefix string) string {
	h.n++
	return fmt.Sprintf("%s-%06d", prefix, h.n)
}

// append submits env to the server's stateless stage and queues it; then
// runs on its answer, when the batch it joins is sequenced (flush).
func (h *history) append(what string, env []byte, then func(*Appended)) {
	h.t.Helper()
	r, err := h.f.log.prepare(env)
	if err == nil {
		err = h.f.log.admit(h.ctx, r)
	}
	if err != nil {
		if proofs.Reason(err) == "" {
			h.t.Fatalf("%s: %v", what, err)
		}
		h.seen["refused"]++ // refused before the log: nothing written
		return
	}
	r.done = make(chan result, 1)
	h.pending = append(h.pending, pendingAppend{r: r, what: what, then: then})
	if len(h.pending) >= 6 || h.rng.IntN(3) == 0 {
		h.flush()
	}
}

type pendingAppend struct {
	r    *request
	what string
	then func(*Appended)
}

// flush sequences the queued requests as one batch (the sequencer
// goroutine is stopped, so the history chooses the batches), the clock
// having advanced, and records the answers under their labels.
func (h *history) flush() {
	if len(h.pending) == 0 {
		return
	}
	h.advance()
	batch := make([]*request, len(h.pending))
	for i, p := range h.pending {
		batch[i] = p.r
	}
	h.f.log.sequence(batch)
	for _, p := range h.pending {
		res := <-p.r.done
		if res.err != nil {
			// Not authentic any more under the bindings at its log time (a
			// key rotated or withdrawn earlier in the batch): refused.
			if proofs.Reason(res.err) == "" {
				h.t.Fatalf("%s: %v", p.what, res.err)
			}
			h.seen["refused in the batch"]++
			continue
		}
		a := &Appended{Index: res.Index, Leaf: res.Leaf, ID: res.ID, Duplicate: res.Duplicate, Decision: res.Decision}
		if !a.Duplicate {
			h.answers[a.Index] = a.Decision
		}
		h.seen[p.what+" "+a.Decision.Outcome]++
		for _, r := range a.Decision.Reasons {
			h.seen[p.what+" denied "+r]++
			h.seen["denied "+r]++
		}
		if p.then != nil {
			p.then(a)
		}
	}
	h.pending = h.pending[:0]
}

func (h *history) pick(s []string) []string {
	var out []string
	for _, x := range s {
		if h.rng.IntN(2) == 0 {
			out = append(out, x)
		}
	}
	return out
}

func (h *history) bind(a *histAgent, k *testKey, what string) {
	tier := []string{proofs.TierDraft, proofs.TierExecute}[h.rng.IntN(2)]
	kb := &proofs.KeyBinding{Agent: a.id, PublicKey: k.pub().DER, Tier: tier, Human: a.human,
		IssuedAt: proofs.FormatTime(h.clock()), Nonce: h.nonce("kb")}
	if what == "" {
		what = "binding"
		if a.key != nil {
			what = "rotation"
		}
	}
	h.append(what, signPayload(h.t, h.f.registrar, proofs.PayloadTypeAgent, kb), func(res *Appended) {
		if res.Decision.Outcome == proofs.OutcomeAccepted {
			a.stale, a.key = a.key, k
		}
	})
}

// step makes one random request.
func (h *history) step() {
	a := h.agents[h.rng.IntN(len(h.agents))]
	switch n := h.rng.IntN(100); {
	case n < 8: // register or rotate, sometimes to a key another agent uses or used
		k := h.key()
		if h.rng.IntN(3) == 0 {
			k = keyFromSeed(h.t, h.keys[h.rng.IntN(len(h.keys))])
		}
		h.bind(a, k, "")
	case n < 12: // withdraw, sometimes revoking what the key issued
		if a.key == nil {
			return
		}
		kb := &proofs.KeyBinding{Agent: a.id, PublicKey: a.key.pub().DER, Tier: proofs.TierExecute, Human: a.human, Revoked: true,
			RevokeIssued: h.rng.IntN(2) == 0, IssuedAt: proofs.FormatTime(h.clock()), Nonce: h.nonce("wd")}
		what := "withdrawal"
		if kb.RevokeIssued {
			what = "withdrawal revoke_issued"
		}
		h.append(what, signPayload(h.t, h.f.registrar, proofs.PayloadTypeAgent, kb), func(res *Appended) {
			if res.Decision.Outcome == proofs.OutcomeAccepted && a.key != nil && a.key.pub().ID == proofs.KeyID(kb.PublicKey) {
				a.stale, a.key = a.key, nil
			}
		})
	case n < 16: // a policy change by an admin
		upd := &proofs.PolicyUpdate{Text: h.policies[h.rng.IntN(len(h.policies))], IssuedAt: proofs.FormatTime(h.clock()), Nonce: h.nonce("pol")}
		h.append("policy", signPayload(h.t, h.f.admin, proofs.PayloadTypePolicy, upd), nil)
	case n < 22: // a revocation by an agent or an admin
		if len(h.accepted) == 0 {
			return
		}
		d := h.accepted[h.rng.IntN(len(h.accepted))]
		rev := &proofs.Revocation{Delegation: d.ID, Reason: "property", IssuedAt: proofs.FormatTime(h.clock()), Nonce: h.nonce("rev")}
		if h.rng.IntN(4) == 0 {
			h.append("admin revocation", signPayload(h.t, h.f.admin, proofs.PayloadTypeRevocation, rev), nil)
			return
		}
		if h.rng.IntN(2) == 0 {
			a = h.agentByID(d.Issuer) // mostly someone entitled
		}
		if k := h.signingKey(a); k != nil {
			rev.Issuer = a.id
			h.append("revocation", signPayload(h.t, k, proofs.PayloadTypeRevocation, rev), nil)
		}
		if h.rng.IntN(2) == 0 { // a child of the delegation, maybe in the same batch
			h.delegate(h.agentByID(d.Delegate), d)
		}
	default:
		h.delegate(a, nil)
	}
}

func (h *history) agentByID(id string) *histAgent {
	for _, a := range h.agents {
		if a.id == id {
			return a
		}
	}
	h.t.Fatalf("no agent %s", id)
	return nil
}

// signingKey is the key a agent signs with: the one in force, sometimes a
// stale one (refused as not authentic, or decided if it is in force again).
func (h *history) signingKey(a *histAgent) *testKey {
	if a.stale != nil && (a.key == nil || h.rng.IntN(8) == 0) {
		return a.stale
	}
	return a.key
}

// delegate appends a root grant or a child of an accepted delegation,
// mostly well formed.
func (h *history) delegate(from *histAgent, parent *proofs.Delegation) {
	now := h.clock()
	if h.rng.IntN(4) != 0 { // mostly a root grant by a human, to its own domain
		from = h.agents[h.rng.IntN(3)]
	}
	to := h.agents[h.rng.IntN(len(h.agents))]
	if h.rng.IntN(4) != 0 {
		to = h.agents[3+h.rng.IntN(3)] // an example.org agent
	}
	d := &proofs.Delegation{
		ID: fmt.Sprintf("dlg-%06d", h.n+1), Issuer: from.id, Delegate: to.id, RootSubject: from.id,
		Task:   []string{"/", "/tickets", "/tickets/triage", "/billing"}[h.rng.IntN(4)],
		Scopes: h.pick([]string{"tickets:read", "tickets:write", "tickets:delete"}), DataClasses: h.pick([]string{"internal", "restricted"}),
		NotBefore: proofs.FormatTime(now), ExpiresAt: proofs.FormatTime(now.Add(time.Duration(1+h.rng.IntN(90)) * time.Minute)),
		Nonce: h.nonce("dlg"),
	}
	if len(h.accepted) > 0 && h.rng.IntN(3) != 0 || parent != nil {
		p := parent
		if p == nil {
			p = h.accepted[h.rng.IntN(len(h.accepted))]
			if len(h.queued) > 0 && h.rng.IntN(3) == 0 {
				p = h.queued[len(h.queued)-1]
			}
		}
		d.Parent, d.RootSubject = p.ID, p.RootSubject
		if h.rng.IntN(6) != 0 {
			from = h.agentByID(p.Delegate)
			d.Issuer = from.id
		}
		if h.rng.IntN(5) != 0 {
			d.Task, d.Scopes, d.DataClasses = p.Task, h.pick(p.Scopes), h.pick(p.DataClasses)
			exp := now.Add(time.Duration(1+h.rng.IntN(14)) * time.Minute)
			if pexp, _ := proofs.ParseTime("expires_at", p.ExpiresAt); pexp.Before(exp) {
				exp = pexp
			}
			d.ExpiresAt = proofs.FormatTime(exp)
			for d.Delegate == d.Issuer {
				d.Delegate = h.agents[3+h.rng.IntN(3)].id
			}
		}
	}
	switch h.rng.IntN(12) {
	case 0: // a nonce the issuer used before
		if len(h.accepted) > 0 {
			d.Nonce = h.accepted[h.rng.IntN(len(h.accepted))].Nonce
		}
	case 1: // an id used before
		if len(h.accepted) > 0 {
			d.ID = h.accepted[h.rng.IntN(len(h.accepted))].ID
		}
	}
	k := h.signingKey(from)
	if k == nil {
		return
	}
	env := signDelegation(h.t, k, d)
	what := "delegation"
	if d.Parent != "" {
		what = "child"
	}
	if h.rng.IntN(3) == 0 { // an approval by a human (of either domain)
		approver := h.agents[h.rng.IntN(3)]
		if approver.key == nil || approver.id == from.id {
			return
		}
		var err error
		if env, err = approver.key.signer.Cosign(env); err != nil {
			return // the same key (reused across agents) signed already
		}
		what = "approved delegation"
	}
	h.queued = append(h.queued, d)
	h.append(what, env, func(res *Appended) {
		if what != "delegation" {
			h.seen["delegation "+res.Decision.Outcome]++
			for _, r := range res.Decision.Reasons {
				h.seen["delegation denied "+r]++
			}
		}
		if !res.Duplicate && res.Decision.Outcome == proofs.OutcomeAccepted {
			h.accepted = append(h.accepted, d)
		}
	})
}

// check compares the server's decisions with the replay's and the bundles'.
func (h *history) check() {
	t := h.t
	h.flush()
	leaves := allLeaves(t, h.f.log)
	rp := proofs.NewReplay()
	for i, raw := range leaves {
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if want, ok := h.answers[uint64(i)]; ok && !slices.Equal(mustJSON(t, want), mustJSON(t, p.Decision)) {
			t.Errorf("entry %d: answered %s, recorded %s", i, mustJSON(t, want), mustJSON(t, p.Decision))
		}
		if err := rp.Apply(uint64(i), p); err != nil {
			t.Errorf("replay of entry %d (%s): %v", i, p.Kind, err)
		}
	}
	if len(h.answers) == 0 || len(leaves) < len(h.answers) {
		t.Fatalf("%d leaves for %d answers", len(leaves), len(h.answers))
	}
	v := h.f.verifier(t)
	for _, d := range h.accepted {
		b, err := h.f.log.ChainBundle(h.ctx, d.ID)
		if err != nil {
			t.Fatalf("bundle of %s: %v", d.ID, err)
		}
		vc, err := proofs.VerifyBundle(b, v, proofs.BundleOptions{})
		if err != nil {
			t.Errorf("bundle of %s: %v", d.ID, err)
			continue
		}
		if last := vc.Links[len(vc.Links)-1].Leaf; last.Delegation.ID != d.ID {
			t.Errorf("bundle of %s ends at %s", d.ID, last.Delegation.ID)
		}
	}
	t.Logf("%d entries, %d accepted delegations, %d bundles verified", len(leaves), len(h.accepted), len(h.accepted))
}

func mustJSON(t *testing.T, d *proofs.Decision) []byte {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

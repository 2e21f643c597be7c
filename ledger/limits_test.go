package ledger

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

const bobID = "spiffe://example.org/human/bob"

// withLimits sets the fixture's rate limits (openTestLog turns the
// per-agent limit off by default).
func withLimits(agentRate float64, agentBurst int, globalRate float64, globalBurst int) func(*Options) {
	return func(o *Options) {
		o.AgentRate, o.AgentBurst, o.GlobalRate, o.GlobalBurst = agentRate, agentBurst, globalRate, globalBurst
	}
}

// rootGrants signs n root grants from issuer to the fixture's agent.
func rootGrants(t testing.TB, key *testKey, issuer, prefix string, n int) [][]byte {
	t.Helper()
	envs := make([][]byte, n)
	parallel(n, func(i int) {
		envs[i] = signDelegation(t, key, delegation(fmt.Sprintf("dlg_%s_%06d", prefix, i), issuer, agentID, fmt.Sprintf("nonce-%s-%06d", prefix, i)))
	})
	return envs
}

func wantRateLimited(t *testing.T, err error, what string) {
	t.Helper()
	if proofs.Reason(err) != ReasonRateLimited {
		t.Fatalf("%s: %v (reason %q), want %s", what, err, proofs.Reason(err), ReasonRateLimited)
	}
	if code := connect.CodeOf(connectError(err)); code != connect.CodeResourceExhausted {
		t.Fatalf("%s: code %v, want ResourceExhausted", what, code)
	}
}

// TestRateLimitFloodSparesOtherAgents: one agent floods the log over
// HTTP (5,000 appends from 64 connections, no retries); it is held to its
// rate, and the excess is refused with rate_limited and writes nothing,
// while another agent appending at a normal pace meanwhile gets every
// append through, with low latency. Default limits (500/s, burst 1000).
func TestRateLimitFloodSparesOtherAgents(t *testing.T) {
	f := newFixture(t, withLimits(0, 0, 0, 0)) // the defaults
	ctx := context.Background()
	bob := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, bobID, bob, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	v := f.verifier(t)

	const flood, calm = 5000, 100
	floodEnvs := rootGrants(t, f.human, humanID, "flood", flood)
	calmEnvs := rootGrants(t, bob, bobID, "calm", calm)
	size0 := f.log.Checkpoint().Size

	var accepted, limited, other atomic.Int64
	var otherErr atomic.Pointer[error]
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	floodCtx, stopFlood := context.WithTimeout(ctx, 5*time.Second) // a slow machine ends the flood early
	defer stopFlood()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(srv.URL, v, client.WithRetry(1, 0))
			for i := next.Add(1) - 1; i < flood && floodCtx.Err() == nil; i = next.Add(1) - 1 {
				_, err := c.Append(floodCtx, floodEnvs[i])
				switch {
				case floodCtx.Err() != nil:
				case err == nil:
					accepted.Add(1)
				case proofs.Reason(err) == ReasonRateLimited:
					limited.Add(1)
				default:
					other.Add(1)
					otherErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}

	// Bob appends at about 100/s while the flood runs, without retries.
	time.Sleep(20 * time.Millisecond)
	c := client.New(srv.URL, v, client.WithRetry(1, 0))
	var lat []time.Duration
	var calmErrs []error
	tick := time.NewTicker(10 * time.Millisecond)
	for i := range calm {
		<-tick.C
		t0 := time.Now()
		_, err := c.Append(ctx, calmEnvs[i])
		lat = append(lat, time.Since(t0))
		if err != nil {
			calmErrs = append(calmErrs, err)
		}
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	cut := floodCtx.Err() != nil // ended early: some appends were cut off in flight
	stopFlood()

	if len(calmErrs) > 0 {
		t.Fatalf("the calm agent had %d of %d appends fail during the flood, e.g. %v", len(calmErrs), calm, calmErrs[0])
	}
	if sent := accepted.Load() + limited.Load(); limited.Load() < sent/10 {
		// The log could not even sustain the one agent's allowed rate, so
		// the limit hardly bound: the machine is too slow or too busy (or
		// the race detector is on) for this test to say anything about
		// the limiter.
		t.Skipf("the log sustained only %.0f appends/s (%d of %d accepted in %v), about the per-agent limit or below; the machine is too slow", float64(accepted.Load())/elapsed.Seconds(), accepted.Load(), sent, elapsed)
	}
	// The calm agent's latency is reported, not asserted: speed is a
	// benchmark's to measure (warrant bench), not a test's.
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	if e := otherErr.Load(); e != nil {
		t.Fatalf("%d flood appends failed other than rate_limited, e.g. %v", other.Load(), *e)
	}
	if limited.Load() == 0 {
		t.Fatalf("no flood append was rate limited (%d accepted in %v)", accepted.Load(), elapsed)
	}
	if accepted.Load() < DefaultAgentBurst {
		t.Errorf("only %d flood appends accepted: the agent was held below its burst of %d", accepted.Load(), DefaultAgentBurst)
	}
	// At most the burst plus the rate over the elapsed time (and slack).
	if most := int64(DefaultAgentBurst + DefaultAgentRate*elapsed.Seconds() + 50); accepted.Load() > most {
		t.Errorf("%d flood appends accepted in %v, more than the limit allows (%d)", accepted.Load(), elapsed, most)
	}
	if got, want := f.log.Checkpoint().Size, size0+uint64(accepted.Load())+calm; got != want && !cut {
		t.Errorf("log size %d, want %d: refused appends must write nothing", got, want)
	}
	t.Logf("flood: %d accepted, %d rate limited in %v; calm agent: p50 %v, p99 %v", accepted.Load(), limited.Load(), elapsed.Round(time.Millisecond), p50, p99)
}

// TestRateLimitOrder: an agent over its own limit is refused without
// spending the global budget others share; the global limit refuses
// everyone once spent; refusals write nothing.
func TestRateLimitOrder(t *testing.T) {
	// Agents: 2 appends each, no refill to speak of. Global: 3.
	f := newFixture(t, nil)
	ctx := context.Background()
	bob := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, bobID, bob, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	f.log.limits = newLimiters(Options{AgentRate: 1e-6, AgentBurst: 2, GlobalRate: 1e-6, GlobalBurst: 3})
	alice := rootGrants(t, f.human, humanID, "a", 3)
	bobs := rootGrants(t, bob, bobID, "b", 2)
	size := f.log.Checkpoint().Size
	for i := range 2 {
		if _, err := f.log.Append(ctx, alice[i]); err != nil {
			t.Fatalf("alice %d: %v", i, err)
		}
	}
	_, err := f.log.Append(ctx, alice[2])
	wantRateLimited(t, err, "alice over her limit")
	if !bytes.Contains([]byte(err.Error()), []byte(humanID)) {
		t.Errorf("the refusal does not name the agent: %v", err)
	}
	if _, err := f.log.Append(ctx, bobs[0]); err != nil {
		t.Fatalf("bob's first append, with global budget left: %v", err)
	}
	_, err = f.log.Append(ctx, bobs[1])
	wantRateLimited(t, err, "bob over the global limit")
	if !bytes.Contains([]byte(err.Error()), []byte("global")) {
		t.Errorf("the refusal does not say the global limit: %v", err)
	}
	if got := f.log.Checkpoint().Size; got != size+3 {
		t.Fatalf("log size %d, want %d", got, size+3)
	}
}

// TestRateLimitCountsOnlyAuthentic: forged requests naming an agent as
// issuer do not spend its budget (they are refused by the signature check
// first), so they cannot lock it out.
func TestRateLimitCountsOnlyAuthentic(t *testing.T) {
	f := newFixture(t, withLimits(1e-6, 2, 0, 0))
	ctx := context.Background()
	stranger := newTestKey(t)
	tracked := f.log.limits.tracked()
	for i := range 50 {
		d := delegation(fmt.Sprintf("dlg_forged_%03d", i), humanID, agentID, fmt.Sprintf("nonce-forged-%03d", i))
		payload, _ := proofs.MarshalPayload(d)
		forged := mustSign(t, stranger, proofs.PayloadTypeDelegation, payload)
		forged = bytes.Replace(forged, []byte(stranger.signer.KeyID()), []byte(f.human.signer.KeyID()), 1)
		if _, err := f.log.Append(ctx, forged); proofs.Reason(err) != proofs.ReasonSignatureInvalid {
			t.Fatalf("forged %d: %v, want %s", i, err, proofs.ReasonSignatureInvalid)
		}
	}
	if n := f.log.limits.tracked(); n != tracked {
		t.Fatalf("forgeries made the log track %d more agents", n-tracked)
	}
	real := rootGrants(t, f.human, humanID, "real", 3)
	for i, env := range real[:2] {
		if _, err := f.log.Append(ctx, env); err != nil {
			t.Fatalf("authentic append %d after the forgeries: %v", i, err)
		}
	}
	// Once the agent's own appends have emptied its bucket, its requests
	// are shed before their signatures are checked, forged or not.
	_, err := f.log.Append(ctx, real[2])
	wantRateLimited(t, err, "authentic append over the limit")
	payload, _ := proofs.MarshalPayload(delegation("dlg_forged_late", humanID, agentID, "nonce-forged-late"))
	forged := mustSign(t, stranger, proofs.PayloadTypeDelegation, payload)
	_, err = f.log.Append(ctx, bytes.Replace(forged, []byte(stranger.signer.KeyID()), []byte(f.human.signer.KeyID()), 1))
	wantRateLimited(t, err, "forged append while the agent is over its limit")
}

// TestRateLimitKeyBindingsBySigningKey: key bindings count against the
// registrar key that signs them, not against the agents they name, and
// not against agents' budgets.
func TestRateLimitKeyBindingsBySigningKey(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.log.limits = newLimiters(Options{AgentRate: 1e-6, AgentBurst: 2})
	for i := range 2 {
		env := bindingEnvelope(t, f.registrar, fmt.Sprintf("spiffe://example.org/agent/new-%d", i), newTestKey(t), proofs.TierDraft, false)
		if _, err := f.log.Append(ctx, env); err != nil {
			t.Fatalf("binding %d: %v", i, err)
		}
	}
	_, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, "spiffe://example.org/agent/new-x", newTestKey(t), proofs.TierDraft, false))
	wantRateLimited(t, err, "third binding by one registrar key")
	if !bytes.Contains([]byte(err.Error()), []byte(f.registrar.signer.KeyID())) {
		t.Errorf("the refusal does not name the registrar key: %v", err)
	}
	if _, err := f.log.Append(ctx, rootGrants(t, f.human, humanID, "h", 1)[0]); err != nil {
		t.Fatalf("an agent's append after the registrar hit its limit: %v", err)
	}
}

// TestLimiterSetBounded: the per-agent limiters stay within
// MaxTrackedAgents however many agents appear, and limiters of agents gone
// idle are dropped before that.
func TestLimiterSetBounded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		agents  int
		atMost  int
		atLeast int
	}{
		{"small bound, busy agents", Options{AgentRate: 1e-6, AgentBurst: 5, MaxTrackedAgents: 1000}, 10_000, 1000, 1000},
		{"sharded bound, busy agents", Options{AgentRate: 1e-6, AgentBurst: 5, MaxTrackedAgents: 20_000}, 50_000, 20_000, 19_000},
		{"idle agents dropped", Options{AgentRate: 1e9, AgentBurst: 1, AgentByteRate: 1e12, AgentByteBurst: 1 << 20, MaxTrackedAgents: 1000}, 10_000, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiters(tc.opts)
			for i := range tc.agents {
				if err := l.allow(fmt.Sprintf("spiffe://example.org/agent/a%d", i), 600); err != nil {
					t.Fatalf("agent %d's first append: %v", i, err)
				}
			}
			if n := l.tracked(); n > tc.atMost || n < tc.atLeast {
				t.Fatalf("%d limiters held after %d agents, want %d to %d", n, tc.agents, tc.atLeast, tc.atMost)
			}
		})
	}
	// The most recently used agents keep their state: a busy agent is
	// still limited after many others came and went.
	l := newLimiters(Options{AgentRate: 1e-6, AgentBurst: 1, MaxTrackedAgents: 100})
	busy := "spiffe://example.org/agent/busy"
	if err := l.allow(busy, 600); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		l.allow(fmt.Sprintf("spiffe://example.org/agent/a%d", i), 600)
		if i%50 == 0 {
			if err := l.allow(busy, 600); proofs.Reason(err) != ReasonRateLimited {
				t.Fatalf("the busy agent, after %d others: %v, want rate_limited", i, err)
			}
		}
	}
}

// TestLimiterDefaults: zero options select the defaults; negative agent
// rates turn the per-agent limits off.
func TestLimiterDefaults(t *testing.T) {
	l := newLimiters(Options{})
	if l.agentRate != DefaultAgentRate || l.agentBurst != DefaultAgentBurst || l.global != nil ||
		l.agentByteRate != DefaultAgentByteRate || l.agentByteBurst != DefaultAgentByteBurst {
		t.Fatalf("defaults: %v/%d, bytes %v/%d, global %v", l.agentRate, l.agentBurst, l.agentByteRate, l.agentByteBurst, l.global)
	}
	if l = newLimiters(Options{AgentByteBurst: 100}); l.agentByteBurst != proofs.MaxEnvelopeBytes {
		t.Fatalf("a byte burst below one largest envelope: %d, want %d", l.agentByteBurst, proofs.MaxEnvelopeBytes)
	}
	l = newLimiters(Options{AgentRate: -1, AgentByteRate: -1})
	for i := range 5000 {
		if err := l.allow("spiffe://example.org/agent/a", 600); err != nil {
			t.Fatalf("append %d with no per-agent limit: %v", i, err)
		}
	}
	if l.tracked() != 0 {
		t.Fatalf("limiters held with no per-agent limit")
	}
	l = newLimiters(Options{GlobalRate: 10})
	if l.global.Burst() != 10 {
		t.Fatalf("default global burst %d, want one second's worth (10)", l.global.Burst())
	}
}

// TestAgentByteBudget: an agent is held to its envelope bytes as well as
// its count: large envelopes run out the byte budget long before the
// count, small ones do not, and a refusal spends neither budget.
func TestAgentByteBudget(t *testing.T) {
	l := newLimiters(Options{AgentRate: 1e-6, AgentBurst: 1000, AgentByteRate: 1e-6, AgentByteBurst: 100 << 10})
	big := "spiffe://example.org/agent/big"
	n := 0
	for ; n < 1000; n++ {
		if err := l.allow(big, 30<<10); err != nil {
			if proofs.Reason(err) != ReasonRateLimited || !strings.Contains(err.Error(), "envelope bytes per second") {
				t.Fatalf("refusal of append %d: %v", n, err)
			}
			break
		}
	}
	if n != 3 {
		t.Fatalf("%d appends of 30 KiB within a 100 KiB byte burst, want 3", n)
	}
	// 10 KiB are left: a small envelope still fits, and the refused big
	// one spent nothing of the count.
	if err := l.allow(big, 600); err != nil {
		t.Fatalf("a small envelope within the remaining bytes: %v", err)
	}
	if got := l.agent(big, time.Now()).lim.TokensAt(time.Now()); got < 995.5 || got > 996.5 {
		t.Fatalf("count budget after 4 appends and a refusal: %v tokens, want 996", got)
	}
	// Another agent is untouched.
	if err := l.allow("spiffe://example.org/agent/other", 30<<10); err != nil {
		t.Fatal(err)
	}
}

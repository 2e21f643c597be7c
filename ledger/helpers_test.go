package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// testKey is a real key pair for tests.
type testKey struct {
	signer *client.Signer
	priv   ed25519.PrivateKey // nil for keys made otherwise
}

func newTestKey(t testing.TB) *testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{signer: s, priv: priv}
}

func (k *testKey) pub() *proofs.PublicKey { return k.signer.Public() }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLog opens a log in dir with one registrar key.
func openTestLog(t testing.TB, dir string, registrar *testKey, mod func(*Options)) *Log {
	t.Helper()
	// No per-agent rate limits unless a test sets them: many tests append
	// thousands of entries from one issuer as fast as they can.
	opts := Options{Dir: dir, Origin: "test.example/log", Logger: quietLogger(), AgentRate: -1, AgentByteRate: -1}
	if registrar != nil {
		opts.RegistrarKeys = []*proofs.PublicKey{registrar.pub()}
	}
	if mod != nil {
		mod(&opts)
	}
	l, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func bindingEnvelope(t testing.TB, registrar *testKey, agent string, key *testKey, tier string, human bool) []byte {
	t.Helper()
	kb := &proofs.KeyBinding{
		Agent: agent, PublicKey: key.pub().DER, Tier: tier, Human: human,
		IssuedAt: proofs.FormatTime(time.Now()), Nonce: fmt.Sprintf("n%015x", randUint(t)),
	}
	payload, err := proofs.MarshalPayload(kb)
	if err != nil {
		t.Fatal(err)
	}
	env, err := registrar.signer.SignEnvelope(proofs.PayloadTypeAgent, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func randUint(t testing.TB) uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v >> 4
}

// delegation returns a valid delegation from issuer to delegate. Its
// validity is the 15 minutes from the start of the current 10-minute
// window, not from now: a child made a moment after its parent then
// expires with it rather than a second later (outlives_parent), however
// slowly a busy machine runs the test, and it stays valid for at least 5
// minutes.
func delegation(id, issuer, delegate, nonce string) *proofs.Delegation {
	nb := time.Now().Truncate(10 * time.Minute)
	return &proofs.Delegation{
		ID: id, Issuer: issuer, Delegate: delegate, RootSubject: issuer, Task: "/tickets",
		Scopes:    []string{"tickets:read"},
		NotBefore: proofs.FormatTime(nb), ExpiresAt: proofs.FormatTime(nb.Add(15 * time.Minute)),
		Nonce: nonce,
	}
}

func signDelegation(t testing.TB, key *testKey, d *proofs.Delegation) []byte {
	t.Helper()
	payload, err := proofs.MarshalPayload(d)
	if err != nil {
		t.Fatal(err)
	}
	env, err := key.signer.SignEnvelope(proofs.PayloadTypeDelegation, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// fixture is a log with a registrar, a human and an agent registered.
type fixture struct {
	log       *Log
	dir       string
	registrar *testKey
	admin     *testKey
	human     *testKey
	agent     *testKey
}

const (
	humanID = "spiffe://example.org/human/alice"
	agentID = "spiffe://example.org/agent/planner"
)

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), registrar: newTestKey(t), admin: newTestKey(t), human: newTestKey(t), agent: newTestKey(t)}
	f.log = openTestLog(t, f.dir, f.registrar, func(o *Options) {
		o.AdminKeys = []*proofs.PublicKey{f.admin.pub()}
		if mod != nil {
			mod(o)
		}
	})
	t.Cleanup(func() { f.log.Close() })
	ctx := context.Background()
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, humanID, f.human, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, agentID, f.agent, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	return f
}

// withAdmin sets the fixture's admin key, for reopening its log with the
// same configuration.
func (f *fixture) withAdmin(o *Options) { o.AdminKeys = []*proofs.PublicKey{f.admin.pub()} }

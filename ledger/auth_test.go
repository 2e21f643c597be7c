package ledger

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/dgraph-io/badger/v4"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// sslibKey is one key held twice: as go-securesystemslib's own signer
// (which names it by its securesystemslib key id, foreign to warrant) and
// as warrant's SDK signer.
type sslibKey struct {
	sv   dsse.SignerVerifier
	test *testKey
}

// newSSLibKey makes an Ed25519 key, or with p256 an ECDSA P-256 one.
func newSSLibKey(t *testing.T, p256 bool) *sslibKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	if p256 {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signerverifier.LoadKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	var sv dsse.SignerVerifier
	if p256 {
		sv, err = signerverifier.NewECDSASignerVerifierFromSSLibKey(k)
	} else {
		sv, err = signerverifier.NewED25519SignerVerifierFromSSLibKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &sslibKey{sv: sv, test: &testKey{signer: s}}
}

// sign signs with go-securesystemslib's DSSE envelope signer and returns
// its JSON encoding, untouched.
func (k *sslibKey) sign(t *testing.T, typ string, v any) []byte {
	t.Helper()
	payload, err := proofs.MarshalPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	es, err := dsse.NewEnvelopeSigner(k.sv)
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// reencode rewrites a DSSE envelope's base64 and key ids: enc encodes the
// payload and signatures, keyid maps each signature's key id (nil: the
// field is left out).
func reencode(t *testing.T, raw []byte, enc *base64.Encoding, keyid func(string) *string) []byte {
	t.Helper()
	var e dsse.Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	type sig struct {
		KeyID *string `json:"keyid,omitempty"`
		Sig   string  `json:"sig"`
	}
	out := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: e.PayloadType, Payload: enc.EncodeToString(payload)}
	for _, s := range e.Signatures {
		b, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			t.Fatal(err)
		}
		out.Signatures = append(out.Signatures, sig{KeyID: keyid(s.KeyID), Sig: enc.EncodeToString(b)})
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func strp(s string) *string { return &s }

// warrantKeyID is a go-securesystemslib verifier that names its key by
// warrant's key id (go-securesystemslib verifies only the signatures whose
// key id is its verifier's).
type warrantKeyID struct {
	dsse.Verifier
	id string
}

func (v warrantKeyID) KeyID() (string, error) { return v.id, nil }

// httpClientFrom returns an HTTP client whose connections leave from the
// loopback address ip, so that a test can be several peers at once.
func httpClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 30 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestDSSEEnvelopesAsOtherImplementationsWriteThem: envelopes made by
// go-securesystemslib's own DSSE signer (which names keys by their
// securesystemslib key id) are accepted over the real API as they are, for
// a key binding signed by a registrar and for delegations; so are the
// URL-safe and unpadded base64 forms and a missing or empty key id. The log
// stores one canonical form, byte for byte what warrant's own SDK signs, so
// every variant of one signed payload is the same entry, and
// go-securesystemslib's verifier accepts the stored envelope.
func TestDSSEEnvelopesAsOtherImplementationsWriteThem(t *testing.T) {
	registrar := newSSLibKey(t, false)
	f := newFixture(t, func(o *Options) { o.RegistrarKeys = append(o.RegistrarKeys, registrar.test.pub()) })
	srv := httptest.NewServer(NewHandler(f.log))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	cl := client.New(srv.URL, f.verifier(t))
	rpc := warrantv1connect.NewLedgerServiceClient(srv.Client(), srv.URL)

	// A key binding signed by a registrar through go-securesystemslib.
	bob := newSSLibKey(t, false)
	kb := &proofs.KeyBinding{Agent: bobID, PublicKey: bob.test.pub().DER, Tier: proofs.TierDraft, Human: true,
		IssuedAt: proofs.FormatTime(time.Now()), Nonce: fmt.Sprintf("n%015x", randUint(t))}
	raw := registrar.sign(t, proofs.PayloadTypeAgent, kb)
	if id, _ := registrar.sv.KeyID(); id == "" || strings.HasPrefix(id, "sha256:") || !bytes.Contains(raw, []byte(id)) {
		t.Fatalf("go-securesystemslib's key id %q is not a foreign one", id)
	}
	e, err := cl.Append(ctx, raw)
	if err != nil {
		t.Fatalf("key binding signed by go-securesystemslib: %v", err)
	}
	payload, _ := proofs.MarshalPayload(kb)
	own, err := registrar.test.signer.SignEnvelope(proofs.PayloadTypeAgent, payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Leaf.Envelope, own) {
		t.Fatalf("stored envelope\n%s\nis not the canonical form warrant's SDK signs\n%s", e.Leaf.Envelope, own)
	}

	// A root grant by bob through go-securesystemslib, and its variants.
	d := delegation("dlg_sslib", bobID, agentID, "nonce-sslib")
	raw = bob.sign(t, proofs.PayloadTypeDelegation, d)
	first, err := cl.Append(ctx, raw)
	if err != nil {
		t.Fatalf("delegation signed by go-securesystemslib: %v", err)
	}
	if first.Duplicate || first.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("first submission: duplicate %v, decision %+v", first.Duplicate, first.Leaf.Decision)
	}
	payload, _ = proofs.MarshalPayload(d)
	if own, _ = bob.test.signer.SignEnvelope(proofs.PayloadTypeDelegation, payload); !bytes.Equal(first.Leaf.Envelope, own) {
		t.Fatalf("stored envelope\n%s\nis not the canonical form\n%s", first.Leaf.Envelope, own)
	}
	var stored dsse.Envelope
	if err := json.Unmarshal(first.Leaf.Envelope, &stored); err != nil {
		t.Fatal(err)
	}
	ev, err := dsse.NewEnvelopeVerifier(warrantKeyID{bob.sv, bob.test.signer.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Verify(ctx, &stored); err != nil {
		t.Fatalf("go-securesystemslib does not verify the stored envelope: %v", err)
	}
	size := f.log.Checkpoint().Size
	variants := map[string][]byte{
		"URL-safe, unpadded, foreign key id": reencode(t, raw, base64.RawURLEncoding, func(id string) *string { return &id }),
		"URL-safe, padded, no key id":        reencode(t, raw, base64.URLEncoding, func(string) *string { return nil }),
		"standard, unpadded, empty key id":   reencode(t, raw, base64.RawStdEncoding, func(string) *string { return strp("") }),
		"standard, canonical key id":         own,
	}
	for name, v := range variants {
		resp, err := rpc.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: v}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !resp.Msg.Duplicate || resp.Msg.Entry.Index != first.Index {
			t.Fatalf("%s: answered entry %d (duplicate %v), want the original %d", name, resp.Msg.Entry.Index, resp.Msg.Duplicate, first.Index)
		}
		if e, err := cl.Append(ctx, v); err != nil || e.Index != first.Index {
			t.Fatalf("%s via the SDK: %v", name, err)
		}
	}
	// A fresh payload without any key id is accepted too.
	d2 := delegation("dlg_sslib_2", bobID, agentID, "nonce-sslib-2")
	e2, err := cl.Append(ctx, reencode(t, bob.sign(t, proofs.PayloadTypeDelegation, d2), base64.RawURLEncoding, func(string) *string { return nil }))
	if err != nil || e2.Leaf.Env.Signatures[0].KeyID != bob.test.signer.KeyID() {
		t.Fatalf("no key id: %v", err)
	}
	if got := f.log.Checkpoint().Size; got != size+1 {
		t.Fatalf("the log went from %d to %d entries; want +1", size, got)
	}

	// ECDSA P-256 through go-securesystemslib, which signs with
	// crypto/ecdsa and so writes a high-S signature about half the time:
	// every one is accepted, and stored as its low-S twin.
	carol := newSSLibKey(t, true)
	if _, err := cl.Append(ctx, bindingEnvelope(t, f.registrar, carolID, carol.test, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	cv, err := dsse.NewEnvelopeVerifier(warrantKeyID{carol.sv, carol.test.signer.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		raw := carol.sign(t, proofs.PayloadTypeDelegation, delegation(fmt.Sprintf("dlg_p256_%d", i), carolID, agentID, fmt.Sprintf("nonce-p256-%d", i)))
		e, err := cl.Append(ctx, raw)
		if err != nil {
			t.Fatalf("ECDSA envelope %d: %v", i, err)
		}
		var stored dsse.Envelope
		if err := json.Unmarshal(e.Leaf.Envelope, &stored); err != nil {
			t.Fatal(err)
		}
		if _, err := cv.Verify(ctx, &stored); err != nil {
			t.Fatalf("go-securesystemslib does not verify stored envelope %d: %v", i, err)
		}
		if err := carol.test.pub().VerifyDSSE(e.Leaf.Env.PayloadType, e.Leaf.Env.Payload, e.Leaf.Env.Signatures[0].Sig); err != nil {
			t.Fatalf("stored ECDSA signature %d is not the low-S one: %v", i, err)
		}
	}
	if n := replayLog(t, f.log); n != 0 {
		t.Fatalf("%d denials", n)
	}
}

const carolID = "spiffe://example.org/human/carol"

// junkVariants returns envelopes made from the accepted envelope env by
// someone without any key: env's signatures plus junk ones (random key
// ids, canonical-looking or empty or naming a registered key, with random
// bytes), or env's signature under another key id.
func junkVariants(t *testing.T, env []byte, registered string, n int) [][]byte {
	t.Helper()
	e, err := proofs.ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, n)
	for i := range n {
		junk := make([]byte, 64)
		rand.Read(junk)
		v := &proofs.Envelope{PayloadType: e.PayloadType, Payload: e.Payload, Signatures: append([]proofs.Signature(nil), e.Signatures...)}
		var raw []byte
		switch i % 4 {
		case 0: // a random canonical-looking key id
			id := make([]byte, 32)
			rand.Read(id)
			v.Signatures = append(v.Signatures, proofs.Signature{KeyID: "sha256:" + hex.EncodeToString(id), Sig: junk})
			raw = v.Canonical()
		case 1: // a registered key's id, random bytes
			v.Signatures = append(v.Signatures, proofs.Signature{KeyID: registered, Sig: junk})
			raw = v.Canonical()
		case 2: // no key id at all
			raw = []byte(strings.Replace(string(v.Canonical()), `]}`, fmt.Sprintf(`,{"sig":%q}]}`, base64.RawURLEncoding.EncodeToString(junk)), 1))
		case 3: // two junk signatures with foreign ids
			v.Signatures = append(v.Signatures, proofs.Signature{KeyID: fmt.Sprintf("foreign-%d", i), Sig: junk}, proofs.Signature{KeyID: fmt.Sprintf("x%d", i), Sig: junk[:32]})
			raw = v.Canonical()
		}
		out = append(out, raw)
	}
	return out
}

// TestJunkCosignaturesWriteNothing is issue 11's first attack, over the
// real API: an accepted envelope taken from the log, with junk signatures
// added, submitted many times (Append and AppendBatch) by a peer with no
// key. Every request is refused as not authentic, nothing is written, the
// victim's rate budget is untouched (its own appends all go through), a
// valid extra signature on the same payload gets the original entry, and
// an audit of the result, as `warrant audit` runs it, is clean.
func TestJunkCosignaturesWriteNothing(t *testing.T) {
	// A small, slowly refilling budget: any append charged to the victim
	// by the attack would show as rate_limited on its own appends.
	const budget = 12
	f := newFixture(t, withLimits(0.001, budget, 0, 0))
	srv := httptest.NewServer(NewHandler(f.log))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	victim := client.New(srv.URL, f.verifier(t), client.WithHTTPClient(httpClientFrom("127.0.0.1")))
	attacker := warrantv1connect.NewLedgerServiceClient(httpClientFrom("127.0.0.2"), srv.URL)
	bob := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, bobID, bob, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}

	accepted, err := victim.Append(ctx, signDelegation(t, f.human, delegation("dlg_victim_0", humanID, agentID, "nonce-victim-0")))
	if err != nil {
		t.Fatal(err)
	}
	hi := delegation("dlg_victim_hi", humanID, agentID, "nonce-victim-hi")
	hi.Scopes = []string{"tickets:delete"}
	hi.Issuer = agentID // a root grant by a non-human: denied
	hiEnv := signDelegation(t, f.agent, hi)
	denied, err := victim.Append(ctx, hiEnv)
	var de *client.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("high-impact grant by the agent: %v, want a denial", err)
	}
	spent := 2
	before := f.log.Checkpoint()

	// The attack: many variants, one by one and in batches, from a peer
	// without any key.
	variants := junkVariants(t, accepted.Leaf.Envelope, f.agent.signer.KeyID(), 200)
	variants = append(variants, junkVariants(t, denied.Leaf.Envelope, bob.signer.KeyID(), 40)...)
	refused := map[string]int{}
	for _, v := range variants[:100] {
		_, err := attacker.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: v}))
		if err == nil {
			t.Fatalf("a junk variant was answered OK")
		}
		code, reason := connect.CodeOf(err), rpcReason(err)
		switch {
		case code == connect.CodeUnauthenticated && (reason == proofs.ReasonSignatureKeyUnknown || reason == proofs.ReasonSignatureInvalid):
		case code == connect.CodeResourceExhausted && reason == proofs.ReasonAuthBackoff:
		default:
			t.Fatalf("junk variant: %v %s: %v; want Unauthenticated or auth_backoff", code, reason, err)
		}
		refused[reason]++
	}
	if refused[proofs.ReasonAuthBackoff] == 0 {
		t.Errorf("a peer sending only forgeries was never slowed down: %v", refused)
	}
	// Batches, from an address whose budget is untouched, so that their
	// envelopes are verified (as many as its budget allows).
	batcher := warrantv1connect.NewLedgerServiceClient(httpClientFrom("127.0.0.4"), srv.URL)
	verified := 0
	for start := 100; start < len(variants); start += 70 {
		batch := variants[start:min(start+70, len(variants))]
		batch = append(batch, batch[0], batch[0], batch[1]) // identical copies too
		resp, err := batcher.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: batch}))
		if connect.CodeOf(err) == connect.CodeResourceExhausted && rpcReason(err) == proofs.ReasonAuthBackoff {
			continue // the address's budget is spent: the whole batch is refused unread (floodguard.go)
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range resp.Msg.Results {
			switch {
			case r.Entry != nil:
				t.Fatalf("batch result %d: an entry", i)
			case r.Reason == proofs.ReasonSignatureKeyUnknown || r.Reason == proofs.ReasonSignatureInvalid:
				verified++
			case r.Reason != proofs.ReasonAuthBackoff:
				t.Fatalf("batch result %d: %s %s", i, r.Reason, r.Message)
			}
		}
	}
	if verified == 0 {
		t.Fatal("no batched forgery was verified: the batch path was not exercised")
	}
	if after := f.log.Checkpoint(); after.Size != before.Size || !bytes.Equal(after.Root, before.Root) {
		t.Fatalf("the attack wrote %d entries", after.Size-before.Size)
	}

	// The victim's budget is intact: all of its remaining appends succeed.
	for i := range budget - spent {
		if _, err := victim.Append(ctx, signDelegation(t, f.human, delegation(fmt.Sprintf("dlg_victim_%d", i+1), humanID, agentID, fmt.Sprintf("nonce-victim-%d", i+1)))); err != nil {
			t.Fatalf("victim's own append %d: %v", i+1, err)
		}
	}

	// A valid extra signature (bob, a registered human) on the accepted
	// payload is authentic, but the same signed request: the original
	// entry, nothing written, no budget spent.
	withBob, err := bob.signer.Cosign(accepted.Leaf.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	size := f.log.Checkpoint().Size
	// (The attacker's address is slowed down now: ask from another.)
	third := client.New(srv.URL, f.verifier(t), client.WithHTTPClient(httpClientFrom("127.0.0.3")))
	e, err := third.Append(ctx, withBob)
	if err != nil || !e.Duplicate || e.Index != accepted.Index || !bytes.Equal(e.Leaf.Envelope, accepted.Leaf.Envelope) {
		t.Fatalf("valid co-signature on an accepted payload: %+v %v; want the original entry %d", e, err, accepted.Index)
	}

	// A denied request resubmitted with a valid approval keeps its first
	// decision, and says why.
	approved, err := bob.signer.Cosign(hiEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = third.Append(ctx, approved)
	if !errors.As(err, &de) || !de.Entry.Duplicate || de.Entry.Index != denied.Index || !strings.Contains(err.Error(), "sign a new request") {
		t.Fatalf("approved resubmission of a denied request: %v; want the original denial %d, with advice", err, denied.Index)
	}
	if got := f.log.Checkpoint().Size; got != size {
		t.Fatalf("resubmissions wrote %d entries", got-size)
	}

	// The audit of the result, as `warrant audit --server` runs it.
	cp, err := third.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := proofs.NewAuditor(cp, nil)
	var leaves [][]byte
	if err := third.EntryBundles(ctx, srv.URL, cp.Size, func(l []byte) error { leaves = append(leaves, bytes.Clone(l)); return nil }); err != nil {
		t.Fatal(err)
	}
	a.AddBatch(leaves)
	report := a.Finish()
	if !report.Verified || report.Denied != 1 || report.Denials[proofs.ReasonApprovalInvalid] != 0 {
		t.Fatalf("audit: verified %v, %d denials %v, discrepancies %v", report.Verified, report.Denied, report.Denials, report.Discrepancies)
	}
}

// TestAuthFailureBudget: a peer whose requests fail authentication is
// refused before its signatures are checked once its budget is spent,
// valid requests included, while other peers are served; identical
// envelopes of a batch are verified once; a batch verifies no more
// distinct envelopes than the budget left; the budget refills with time
// (an injected clock); the per-peer state stays bounded.
func TestAuthFailureBudget(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AuthFailureRate, o.AuthFailureBurst = 1, 4 })
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	f.log.guard.now = func() time.Time { return time.Unix(0, clock.Load()) }
	srv := httptest.NewServer(NewHandler(f.log))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	forger := warrantv1connect.NewLedgerServiceClient(httpClientFrom("127.0.0.2"), srv.URL)
	other := warrantv1connect.NewLedgerServiceClient(httpClientFrom("127.0.0.1"), srv.URL)
	serial := 0
	valid := func() []byte {
		serial++
		return signDelegation(t, f.human, delegation(fmt.Sprintf("dlg_budget_%d", serial), humanID, agentID, fmt.Sprintf("nonce-budget-%d", serial)))
	}
	stranger := newTestKey(t)
	forged := func() []byte {
		serial++
		return signDelegation(t, stranger, delegation(fmt.Sprintf("dlg_forged_%d", serial), humanID, agentID, fmt.Sprintf("nonce-forged-%d", serial)))
	}
	appendOne := func(c warrantv1connect.LedgerServiceClient, env []byte) (connect.Code, string) {
		_, err := c.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: env}))
		if err == nil {
			return 0, ""
		}
		return connect.CodeOf(err), rpcReason(err)
	}
	batch := func(c warrantv1connect.LedgerServiceClient, envs ...[]byte) []string {
		resp, err := c.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: envs}))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(envs))
		for i, r := range resp.Msg.Results {
			out[i] = r.Reason
		}
		return out
	}

	// 256 identical forgeries in one batch cost one failure, not 256: all
	// are answered as not authentic, none as slowed down.
	one := forged()
	same := make([][]byte, MaxBatchEnvelopes)
	for i := range same {
		same[i] = one
	}
	for i, r := range batch(forger, same...) {
		if r != proofs.ReasonSignatureMissing {
			t.Fatalf("identical forgery %d: %q, want %s", i, r, proofs.ReasonSignatureMissing)
		}
	}
	// Three more failures spend the budget of four.
	for i := range 3 {
		if code, r := appendOne(forger, forged()); code != connect.CodeUnauthenticated {
			t.Fatalf("forgery %d: %v %s", i, code, r)
		}
	}
	// Now even a valid request of the forger's address is refused unverified.
	if code, r := appendOne(forger, valid()); code != connect.CodeResourceExhausted || r != proofs.ReasonAuthBackoff {
		t.Fatalf("request after the budget is spent: %v %s; want ResourceExhausted %s", code, r, proofs.ReasonAuthBackoff)
	}
	// Another peer is served.
	if code, r := appendOne(other, valid()); code != 0 {
		t.Fatalf("another peer: %v %s", code, r)
	}
	// Time refills the budget: after 10 s, 4 tokens again (the burst).
	clock.Add(int64(10 * time.Second))
	if code, r := appendOne(forger, valid()); code != 0 {
		t.Fatalf("after the budget refilled: %v %s", code, r)
	}
	// A batch of 10 distinct forgeries verifies only as many as the budget
	// allows (4); the rest is refused unverified.
	envs := make([][]byte, 10)
	for i := range envs {
		envs[i] = forged()
	}
	got := map[string]int{}
	for _, r := range batch(forger, envs...) {
		got[r]++
	}
	if got[proofs.ReasonSignatureMissing] != 4 || got[proofs.ReasonAuthBackoff] != 6 {
		t.Fatalf("batch of 10 forgeries with a budget of 4: %v", got)
	}

	// The per-peer state is bounded.
	g := newAuthGuard(Options{MaxTrackedPeers: 8})
	for i := range 100 {
		g.fail(budgetKey(fmt.Sprintf("10.0.%d.%d:443", i/256, i%256)), 1)
	}
	if n := g.tracked(); n > 8 {
		t.Fatalf("%d peers tracked, bound 8", n)
	}
	// IPv6 addresses count by their /64.
	if budgetKey("[2001:db8::1]:1") != budgetKey("[2001:db8::ffff:2]:2") || budgetKey("[2001:db8::1]:1") == budgetKey("[2001:db8:0:1::1]:1") {
		t.Fatal("IPv6 peers are not grouped by /64")
	}
}

// TestDedupFindsEntriesOfOlderLogs: a log written before deduplication
// moved to the signed payload indexes its entries by canonical envelope
// only; once this version has opened it (and indexed the payloads), an
// exact resubmission of such an entry still gets the original.
func TestDedupFindsEntriesOfOlderLogs(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	env := signDelegation(t, f.human, delegation("dlg_old", humanID, agentID, "nonce-old"))
	a, err := f.log.Append(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the index as an older log holds it.
	e, canon, err := proofs.ParseEnvelopeCanonical(env)
	if err != nil {
		t.Fatal(err)
	}
	ph := proofs.PayloadHash(e.PayloadType, e.Payload)
	eh := proofs.EnvelopeHash(canon)
	err = f.log.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(hashKey(tPayload, ph[:])); err != nil {
			return err
		}
		if err := txn.Delete(keyPayloadIndex); err != nil { // an older version wrote no marker
			return err
		}
		return txn.Set(hashKey(tEnvelope, eh[:]), u64(a.Index))
	})
	if err != nil {
		t.Fatal(err)
	}
	// The upgrade: the log is opened again by this version.
	f.log.Close()
	f.log = openTestLog(t, f.dir, f.registrar, f.withAdmin)
	t.Cleanup(func() { f.log.Close() })
	size := f.log.Checkpoint().Size
	again, err := f.log.Append(ctx, env)
	if err != nil || !again.Duplicate || again.Index != a.Index {
		t.Fatalf("resubmission to an older log: %+v %v; want the original entry %d", again, err, a.Index)
	}
	if got := f.log.Checkpoint().Size; got != size {
		t.Fatalf("the log grew from %d to %d", size, got)
	}
}

// TestEveryKindWithoutKeyIDs: every kind of signed event is accepted with
// its signature's key id left out and URL-safe unpadded base64, matched
// against its own candidate keys (registrars, admins, the issuer and
// admins for a revocation), and stored with the canonical key id; the
// same envelope signed by a key that is not a candidate is refused with
// the kind's reason, and nothing is written.
func TestEveryKindWithoutKeyIDs(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	stranger := newTestKey(t)
	strip := func(env []byte) []byte {
		return reencode(t, env, base64.RawURLEncoding, func(string) *string { return nil })
	}
	if _, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_k1", humanID, agentID, "nonce-k1-0001"))); err != nil {
		t.Fatal(err)
	}
	now := proofs.FormatTime(time.Now())
	kb := func(n string) *proofs.KeyBinding {
		return &proofs.KeyBinding{Agent: bobID, PublicKey: newTestKey(t).pub().DER, Tier: proofs.TierDraft, Human: true, IssuedAt: now, Nonce: n}
	}
	pol := &proofs.PolicyUpdate{Text: string(defaultPolicy), IssuedAt: now, Nonce: "policy-nokeyid-1"}
	issuerRev := &proofs.Revocation{Delegation: "dlg_k1", Issuer: humanID, Reason: "test", IssuedAt: now, Nonce: "nonce-rev-0001"}
	adminRev := &proofs.Revocation{Delegation: "dlg_k1", Reason: "admin", IssuedAt: now, Nonce: "nonce-rev-0002"}
	for _, tc := range []struct {
		name        string
		typ         string
		payload     any
		signer      *testKey
		strangerErr string
	}{
		{"key binding by a registrar", proofs.PayloadTypeAgent, kb("n-kb-000001"), f.registrar, ReasonRegistrarUnknown},
		{"policy by an admin", proofs.PayloadTypePolicy, pol, f.admin, ReasonAdminUnknown},
		{"revocation by its issuer", proofs.PayloadTypeRevocation, issuerRev, f.human, proofs.ReasonSignatureMissing},
		{"revocation by an admin", proofs.PayloadTypeRevocation, adminRev, f.admin, ReasonAdminUnknown},
	} {
		size := f.log.Checkpoint().Size
		if _, err := f.log.Append(ctx, strip(signPayload(t, stranger, tc.typ, tc.payload))); proofs.Reason(err) != tc.strangerErr {
			t.Fatalf("%s, signed by a stranger: %v, want %s", tc.name, err, tc.strangerErr)
		}
		if got := f.log.Checkpoint().Size; got != size {
			t.Fatalf("%s: a refused request wrote %d entries", tc.name, got-size)
		}
		a, err := f.log.Append(ctx, strip(signPayload(t, tc.signer, tc.typ, tc.payload)))
		if err != nil {
			t.Fatalf("%s without a key id: %v", tc.name, err)
		}
		p, err := proofs.ParseLeaf(a.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Env.Signatures[0].KeyID; got != tc.signer.signer.KeyID() {
			t.Fatalf("%s: stored key id %q, want %q", tc.name, got, tc.signer.signer.KeyID())
		}
	}
	replayLog(t, f.log) // an auditor's replay agrees with every entry
}

package ledger

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// The catalogue of bad requests (docs/operating.md "Bounds"):
// every class of hostile or broken Append request is sent over the real API
// (ledger.Open in a temp dir, NewHandler on httptest), once with the Connect
// protocol's binary codec through the generated client and once with the
// Connect JSON protocol as plain HTTP. Each case asserts the Connect code,
// the ErrorDetail reason and exactly what the log wrote, read from signed
// checkpoints before and after:
//
//   - malformed or not authentic: nothing;
//   - an identical (or merely re-encoded) replay: nothing, and the answer is
//     the original entry;
//   - authentic but breaking a rule: exactly one denial entry, carrying the
//     request's canonical envelope and the reason.

const (
	catECDSAID  = "spiffe://example.org/agent/ecdsa"
	catWorkerID = "spiffe://example.org/agent/worker"
	catGhostID  = "spiffe://example.org/agent/ghost" // never registered
)

// catalogue is a served log with the parties the cases need.
type catalogue struct {
	f        *fixture
	srv      *httptest.Server
	rpc      warrantv1connect.LedgerServiceClient
	verifier note.Verifier
	ecdsa    *testKey // a registered P-256 agent (execute tier)
	worker   *testKey // a registered execute-tier agent
	stranger *testKey // a key nobody registered

	base        []byte // an accepted root grant (human -> agent), dlg_cat_base
	baseIdx     uint64
	denied      []byte // an authentic request that was denied (delegate_unknown)
	deniedIdx   uint64
	denyReason  string
	serial      atomic.Int64
	acceptedDel *proofs.Delegation // the payload of base
}

func newCatalogue(t *testing.T) *catalogue {
	t.Helper()
	f := newFixture(t, nil)
	ctx := context.Background()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := client.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	c := &catalogue{f: f, verifier: f.verifier(t), ecdsa: &testKey{signer: signer}, worker: newTestKey(t), stranger: newTestKey(t)}
	for _, b := range [][]byte{
		bindingEnvelope(t, f.registrar, catECDSAID, c.ecdsa, proofs.TierExecute, false),
		bindingEnvelope(t, f.registrar, catWorkerID, c.worker, proofs.TierExecute, false),
	} {
		if a, err := f.log.Append(ctx, b); err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("registering: %+v %v", a, err)
		}
	}
	c.acceptedDel = delegation("dlg_cat_base", humanID, agentID, "nonce-cat-base")
	c.base = signDelegation(t, f.human, c.acceptedDel)
	a, err := f.log.Append(ctx, c.base)
	if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("base grant: %+v %v", a, err)
	}
	c.baseIdx = a.Index
	c.denied = signDelegation(t, f.human, delegation("dlg_cat_denied", humanID, catGhostID, "nonce-cat-denied"))
	a, err = f.log.Append(ctx, c.denied)
	if err != nil || a.Decision.Outcome != proofs.OutcomeDenied {
		t.Fatalf("denied grant: %+v %v", a, err)
	}
	c.deniedIdx, c.denyReason = a.Index, a.Decision.Reasons[0]
	if c.denyReason != proofs.ReasonDelegateUnknown {
		t.Fatalf("denied grant: reasons %v, want %s first", a.Decision.Reasons, proofs.ReasonDelegateUnknown)
	}
	s := serve(t, f)
	c.srv, c.rpc = s.srv, s.rpc
	return c
}

// serve serves f's log on httptest, with a Connect client (binary codec).
func serve(t *testing.T, f *fixture) *catalogue {
	t.Helper()
	c := &catalogue{f: f, verifier: f.verifier(t)}
	c.srv = httptest.NewServer(NewHandler(f.log))
	t.Cleanup(c.srv.Close)
	c.rpc = warrantv1connect.NewLedgerServiceClient(c.srv.Client(), c.srv.URL)
	return c
}

// fresh returns a valid root grant from the human to the agent with an id
// and nonce never used before.
func (c *catalogue) fresh() *proofs.Delegation {
	n := c.serial.Add(1)
	return delegation(fmt.Sprintf("dlg_cat_%d", n), humanID, agentID, fmt.Sprintf("nonce-cat-%06d", n))
}

// freshChild returns a valid delegation from the agent to the worker under
// the accepted base grant.
func (c *catalogue) freshChild() *proofs.Delegation {
	d := c.fresh()
	d.Issuer, d.Delegate, d.Parent, d.RootSubject = agentID, catWorkerID, c.acceptedDel.ID, humanID
	d.ExpiresAt = proofs.FormatTime(time.Now().Add(5 * time.Minute))
	return d
}

// catMarshal is MarshalPayload that fails the test on error.
func catMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := proofs.MarshalPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// catSign signs payload under typ with k and returns the canonical envelope.
func catSign(t *testing.T, k *testKey, typ string, payload []byte) []byte {
	t.Helper()
	env, err := k.signer.SignEnvelope(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// catRawEnvelope writes an envelope by hand, for shapes the SDK never makes.
func catRawEnvelope(typ, payloadB64 string, sigs ...[2]string) []byte {
	var s []string
	for _, sig := range sigs {
		s = append(s, fmt.Sprintf(`{"keyid":%q,"sig":%q}`, sig[0], sig[1]))
	}
	return []byte(fmt.Sprintf(`{"payloadType":%q,"payload":%q,"signatures":[%s]}`, typ, payloadB64, strings.Join(s, ",")))
}

// catParts splits a canonical single-signature envelope into its fields.
func catParts(t *testing.T, env []byte) (typ, payloadB64, keyid, sigB64 string) {
	t.Helper()
	var j struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &j); err != nil || len(j.Signatures) != 1 {
		t.Fatalf("parts(%q): %v", env, err)
	}
	return j.PayloadType, j.Payload, j.Signatures[0].KeyID, j.Signatures[0].Sig
}

// base64Awkward returns a signed fresh delegation whose payload's base64
// has padding and contains '+' or '/', so that every non-canonical base64
// variant differs from the canonical text. A "~" at a byte position that is
// 2 mod 3 encodes as '+'; three in a row put one there.
func (c *catalogue) base64Awkward(t *testing.T) []byte {
	t.Helper()
	d := c.fresh()
	nonce := d.Nonce + "~~~"
	for pad := 0; ; pad++ {
		d.Nonce = nonce + strings.Repeat("x", pad)
		p := catMarshal(t, d)
		b := base64.StdEncoding.EncodeToString(p)
		if len(p)%3 != 0 && strings.ContainsAny(b, "+/") {
			return catSign(t, c.f.human, proofs.PayloadTypeDelegation, p)
		}
		if pad > 3 {
			t.Fatalf("no awkward payload: %s", b)
		}
	}
}

// catHighS re-encodes the single ECDSA signature of env with s replaced by n-s:
// the same signature mathematically, the other of its two encodings.
func catHighS(t *testing.T, env []byte) []byte {
	t.Helper()
	e, err := proofs.ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(e.Signatures[0].Sig, &sig); err != nil || len(rest) != 0 {
		t.Fatalf("not a DER ECDSA signature: %v", err)
	}
	n := elliptic.P256().Params().N
	if sig.S.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		t.Fatal("the SDK produced a high-S signature")
	}
	sig.S.Sub(n, sig.S)
	if e.Signatures[0].Sig, err = asn1.Marshal(sig); err != nil {
		t.Fatal(err)
	}
	return e.Canonical()
}

// answer is what an Append returned, whatever the protocol.
type answer struct {
	code   connect.Code // 0 for success
	reason string       // the ErrorDetail reason, if any
	resp   *warrantv1.AppendResponse
	msg    string
}

func (a answer) String() string {
	if a.code == 0 {
		return "ok"
	}
	return fmt.Sprintf("%v reason=%q: %s", a.code, a.reason, a.msg)
}

// viaProto appends env with the generated Connect client (binary codec).
func (c *catalogue) viaProto(t *testing.T, env []byte) answer {
	t.Helper()
	resp, err := c.rpc.Append(context.Background(), connect.NewRequest(&warrantv1.AppendRequest{Envelope: env}))
	if err == nil {
		return answer{resp: resp.Msg}
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Append: not a Connect error: %v", err)
	}
	a := answer{code: ce.Code(), msg: ce.Message()}
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatalf("undecodable error detail %s: %v", d.Type(), err)
		}
		switch m := v.(type) {
		case *warrantv1.ErrorDetail:
			a.reason = m.Reason
		case *warrantv1.AppendResponse:
			a.resp = m
		}
	}
	return a
}

// viaJSON appends env with the Connect JSON protocol over plain HTTP.
func (c *catalogue) viaJSON(t *testing.T, env []byte) answer {
	t.Helper()
	body, err := json.Marshal(map[string][]byte{"envelope": env})
	if err != nil {
		t.Fatal(err)
	}
	return c.postJSON(t, warrantv1connect.LedgerServiceAppendProcedure, body, &warrantv1.AppendResponse{})
}

// postJSON posts a raw Connect JSON request body and decodes the answer;
// out receives a success answer.
func (c *catalogue) postJSON(t *testing.T, procedure string, body []byte, out proto.Message) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.srv.URL+procedure, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	res, err := c.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", procedure, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode == http.StatusOK {
		if err := protojson.Unmarshal(raw, out); err != nil {
			t.Fatalf("decoding answer %q: %v", raw, err)
		}
		r, _ := out.(*warrantv1.AppendResponse)
		return answer{resp: r}
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"details"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("HTTP %d with a body that is not a Connect error: %q", res.StatusCode, raw)
	}
	a := answer{msg: e.Message}
	if err := a.code.UnmarshalText([]byte(e.Code)); err != nil {
		t.Fatalf("HTTP %d: unknown code %q", res.StatusCode, e.Code)
	}
	for _, d := range e.Details {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(d.Value, "="))
		if err != nil {
			t.Fatalf("detail %s: %v", d.Type, err)
		}
		switch d.Type {
		case "warrant.v1.ErrorDetail":
			var m warrantv1.ErrorDetail
			if err := proto.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			a.reason = m.Reason
		case "warrant.v1.AppendResponse":
			a.resp = &warrantv1.AppendResponse{}
			if err := proto.Unmarshal(b, a.resp); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a
}

// checkpoint reads and verifies the latest checkpoint over the API.
func (c *catalogue) checkpoint(t *testing.T) *proofs.Checkpoint {
	t.Helper()
	resp, err := c.rpc.GetCheckpoint(context.Background(), connect.NewRequest(&warrantv1.GetCheckpointRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := proofs.OpenCheckpoint(resp.Msg.Checkpoint, c.verifier)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// entry reads entry idx over the API and checks its inclusion in cp.
func (c *catalogue) entry(t *testing.T, idx uint64, cp *proofs.Checkpoint) *proofs.ParsedLeaf {
	t.Helper()
	resp, err := c.rpc.GetEntry(context.Background(), connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: idx}, TrustedSize: cp.Size}))
	if err != nil {
		t.Fatalf("GetEntry(%d): %v", idx, err)
	}
	e := resp.Msg.Entry
	got, err := proofs.OpenCheckpoint(e.Checkpoint, c.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) {
		t.Fatalf("GetEntry(%d) proved against size %d, want %d (the log moved under the test)", idx, got.Size, cp.Size)
	}
	if err := proofs.VerifyInclusion(idx, cp.Size, proofs.LeafHash(e.Leaf), e.InclusionProof, cp.Root); err != nil {
		t.Fatalf("GetEntry(%d): %v", idx, err)
	}
	p, err := proofs.ParseLeaf(e.Leaf)
	if err != nil {
		t.Fatalf("GetEntry(%d): %v", idx, err)
	}
	return p
}

// badRequest is one class of request and what the log must do with it.
type badRequest struct {
	name string
	env  func(t *testing.T) []byte // a fresh envelope (new id and nonce) per call
	code connect.Code              // 0: success
	// reason is the ErrorDetail reason; "" means no ErrorDetail at all (a
	// refusal by the transport or the codec, before the log saw anything).
	reason string
	// written is what the log must grow by: 0, or 1 for one denial.
	written uint64
	// original, for replays, is the index of the entry the answer must be.
	original func() uint64
	// bug, when set, skips the case: it exposes a bug in non-test code.
	bug string
}

func (c *catalogue) cases() []badRequest {
	human := c.f.human
	del := func(mod func(d *proofs.Delegation)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := c.fresh()
			mod(d)
			return catSign(t, human, proofs.PayloadTypeDelegation, catMarshal(t, d))
		}
	}
	// payloadWith signs a payload edited as text (fields the SDK cannot write).
	payloadWith := func(edit func(p []byte) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return catSign(t, human, proofs.PayloadTypeDelegation, edit(catMarshal(t, c.fresh())))
		}
	}
	// envWith edits the text of a fresh, authentic, canonical envelope.
	envWith := func(edit func(t *testing.T, env []byte) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return edit(t, catSign(t, human, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh())))
		}
	}
	items := func(n, size int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("s%03d:%s", i, strings.Repeat("x", max(size-5, 0))))
		}
		return out
	}
	index := func(i *uint64) func() uint64 { return func() uint64 { return *i } }
	const (
		invalid  = connect.CodeInvalidArgument
		unauth   = connect.CodeUnauthenticated
		denied   = connect.CodePermissionDenied
		accepted = connect.Code(0)
	)
	return []badRequest{
		// Size bounds.
		{name: "oversized envelope (authentic, padded past 32 KiB)", code: invalid, reason: proofs.ReasonEnvelopeTooLarge,
			env: envWith(func(t *testing.T, env []byte) []byte {
				return append([]byte("{"+strings.Repeat(" ", proofs.MaxEnvelopeBytes)), env[1:]...)
			})},
		{name: "request over the 64 KiB transport bound", code: connect.CodeResourceExhausted, reason: "",
			env: envWith(func(t *testing.T, env []byte) []byte {
				return append([]byte("{"+strings.Repeat(" ", MaxRequestBytes+1024)), env[1:]...)
			})},
		{name: "truncated JSON", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte { return env[:len(env)/2] })},
		{name: "empty envelope", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: func(t *testing.T) []byte { return nil }},
		{name: "trailing data after the envelope", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte { return append(env, env...) })},

		// Wrong JSON types.
		{name: "payload as a number", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, _, keyid, sig := catParts(t, env)
				return []byte(fmt.Sprintf(`{"payloadType":%q,"payload":12345,"signatures":[{"keyid":%q,"sig":%q}]}`, typ, keyid, sig))
			})},
		{name: "signatures as an object", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, p, keyid, sig := catParts(t, env)
				return []byte(fmt.Sprintf(`{"payloadType":%q,"payload":%q,"signatures":{"keyid":%q,"sig":%q}}`, typ, p, keyid, sig))
			})},
		{name: "payloadType as an array", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, p, keyid, sig := catParts(t, env)
				return []byte(fmt.Sprintf(`{"payloadType":[%q],"payload":%q,"signatures":[{"keyid":%q,"sig":%q}]}`, typ, p, keyid, sig))
			})},
		{name: "envelope is a JSON array", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte { return []byte("[" + string(env) + "]") })},
		{name: "payload field of the wrong type (scopes as a string)", code: invalid, reason: proofs.ReasonPayloadMalformed,
			env: payloadWith(func(p []byte) []byte {
				return bytes.Replace(p, []byte(`"scopes":["tickets:read"]`), []byte(`"scopes":"tickets:read"`), 1)
			})},

		// Huge lists and long fields (docs/operating.md "Bounds").
		{name: "65 scopes", code: invalid, reason: proofs.ReasonListTooLong,
			env: del(func(d *proofs.Delegation) { d.Scopes = items(proofs.MaxListItems+1, 8) })},
		{name: "65 data classes", code: invalid, reason: proofs.ReasonListTooLong,
			env: del(func(d *proofs.Delegation) { d.DataClasses = items(proofs.MaxListItems+1, 8) })},
		{name: "65 destinations", code: invalid, reason: proofs.ReasonListTooLong,
			env: del(func(d *proofs.Delegation) { d.Destinations = items(proofs.MaxListItems+1, 8) })},
		{name: "5 signatures", code: invalid, reason: proofs.ReasonTooManySignatures,
			env: func(t *testing.T) []byte {
				env := catSign(t, human, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh()))
				for range proofs.MaxSignatures {
					var err error
					if env, err = newTestKey(t).signer.Cosign(env); err != nil {
						t.Fatal(err)
					}
				}
				return env
			}},
		{name: "id of 129 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) { d.ID = strings.Repeat("i", 129) })},
		{name: "nonce of 129 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) { d.Nonce = strings.Repeat("n", 129) })},
		{name: "trace_id of 257 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) { d.TraceID = strings.Repeat("t", 257) })},
		{name: "task of 257 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) { d.Task = "/" + strings.Repeat("t", 256) })},
		{name: "purpose of 1025 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) { d.Purpose = strings.Repeat("p", 1025) })},
		{name: "SPIFFE ID of 2049 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) {
				d.Delegate = "spiffe://example.org/" + strings.Repeat("a", 2049-len("spiffe://example.org/"))
			})},
		{name: "nonce of 7 bytes", code: invalid, reason: proofs.ReasonPayloadMalformed,
			env: del(func(d *proofs.Delegation) { d.Nonce = "nonce-7" })},
		{name: "payloadType of 129 bytes", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				_, p, keyid, sig := catParts(t, env)
				return catRawEnvelope(proofs.PayloadTypeDelegation+strings.Repeat("x", 129-len(proofs.PayloadTypeDelegation)), p, [2]string{keyid, sig})
			})},
		{name: "signature keyid of 129 bytes", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, p, _, sig := catParts(t, env)
				return catRawEnvelope(typ, p, [2]string{"sha256:" + strings.Repeat("a", 122), sig})
			})},
		{name: "policy text over 16 KiB (admin-signed)", code: invalid, reason: proofs.ReasonPolicyInvalid,
			env: func(t *testing.T) []byte {
				text := "@id(\"p\")\npermit (principal, action, resource);\n" + strings.Repeat("/", proofs.MaxPolicyBytes)
				u := &proofs.PolicyUpdate{Text: text, IssuedAt: proofs.FormatTime(time.Now()), Nonce: fmt.Sprintf("nonce-pol-%06d", c.serial.Add(1))}
				return catSign(t, c.f.admin, proofs.PayloadTypePolicy, catMarshal(t, u))
			}},
		{name: "scope item of 257 bytes", code: invalid, reason: proofs.ReasonFieldTooLong,
			env: del(func(d *proofs.Delegation) { d.Scopes = items(1, 257) })},

		// Unknown fields.
		{name: "unknown field in the envelope", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				return bytes.Replace(env, []byte(`{"payloadType"`), []byte(`{"comment":"hi","payloadType"`), 1)
			})},
		{name: "unknown field in a signature", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				return bytes.Replace(env, []byte(`{"keyid"`), []byte(`{"cert":"x","keyid"`), 1)
			})},
		{name: "case-folded envelope key", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				return bytes.Replace(env, []byte(`"payloadType"`), []byte(`"PayloadType"`), 1)
			})},
		{name: "duplicate envelope key", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, _, _, _ := catParts(t, env)
				return bytes.Replace(env, []byte(`{"payloadType"`), []byte(fmt.Sprintf(`{"payloadType":%q,"payloadType"`, typ)), 1)
			})},
		{name: "unknown field in the payload (authentic)", code: invalid, reason: proofs.ReasonPayloadMalformed,
			env: payloadWith(func(p []byte) []byte {
				return append(p[:len(p)-1], []byte(`,"admin":true}`)...)
			})},

		// Invalid UTF-8.
		{name: "invalid UTF-8 in the envelope", code: invalid, reason: proofs.ReasonEnvelopeMalformed,
			env: envWith(func(t *testing.T, env []byte) []byte {
				return bytes.Replace(env, []byte("application/"), []byte("applic\xffion/"), 1)
			})},
		{name: "invalid UTF-8 in the payload (authentic)", code: invalid, reason: proofs.ReasonPayloadNonCanonical,
			env: func(t *testing.T) []byte {
				d := c.fresh()
				d.Purpose = "PURPOSE"
				return catSign(t, human, proofs.PayloadTypeDelegation, bytes.Replace(catMarshal(t, d), []byte("PURPOSE"), []byte("PUR\xffOSE"), 1))
			}},
		{name: "non-canonical payload JSON (whitespace, authentic)", code: invalid, reason: proofs.ReasonPayloadNonCanonical,
			env: payloadWith(func(p []byte) []byte { return append([]byte(" "), p...) })},

		// Base64 forms DSSE allows (URL-safe alphabet, no padding) are
		// accepted and stored in the canonical form; line breaks are not.
		{name: "payload in the URL base64 alphabet (accepted, stored canonical)", code: accepted, written: 1,
			env: func(t *testing.T) []byte {
				env := c.base64Awkward(t)
				typ, p, keyid, sig := catParts(t, env)
				return catRawEnvelope(typ, strings.NewReplacer("+", "-", "/", "_").Replace(p), [2]string{keyid, sig})
			}},
		{name: "payload base64 without padding (accepted, stored canonical)", code: accepted, written: 1,
			env: func(t *testing.T) []byte {
				typ, p, keyid, sig := catParts(t, c.base64Awkward(t))
				return catRawEnvelope(typ, strings.TrimRight(p, "="), [2]string{keyid, sig})
			}},
		{name: "payload base64 with an embedded newline", code: invalid, reason: proofs.ReasonBase64NonCanonical,
			env: func(t *testing.T) []byte {
				typ, p, keyid, sig := catParts(t, c.base64Awkward(t))
				return catRawEnvelope(typ, p[:76]+"\n"+p[76:], [2]string{keyid, sig})
			}},
		{name: "signature base64 without padding (accepted, stored canonical)", code: accepted, written: 1,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, p, keyid, sig := catParts(t, env)
				return catRawEnvelope(typ, p, [2]string{keyid, strings.TrimRight(sig, "=")})
			})},

		// Signatures.
		// A high-S ECDSA signature is how many ECDSA signers write one: it
		// is accepted and stored as its low-S twin.
		{name: "high-S ECDSA signature (authentic: one denial, stored low-S)", code: denied, reason: proofs.ReasonNotParentDelegate, written: 1,
			env: func(t *testing.T) []byte {
				d := c.freshChild()
				d.Issuer, d.Delegate = catECDSAID, catWorkerID
				return catHighS(t, catSign(t, c.ecdsa, proofs.PayloadTypeDelegation, catMarshal(t, d)))
			}},
		{name: "low-S twin of the high-S case (authentic: one denial)", code: denied, reason: proofs.ReasonNotParentDelegate, written: 1,
			env: func(t *testing.T) []byte {
				d := c.freshChild()
				d.Issuer, d.Delegate = catECDSAID, catWorkerID
				return catSign(t, c.ecdsa, proofs.PayloadTypeDelegation, catMarshal(t, d))
			}},
		{name: "forged signature (stranger's signature under the issuer's keyid)", code: unauth, reason: proofs.ReasonSignatureInvalid,
			env: func(t *testing.T) []byte {
				env := catSign(t, c.stranger, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh()))
				return bytes.Replace(env, []byte(c.stranger.signer.KeyID()), []byte(human.signer.KeyID()), 1)
			}},
		{name: "signature bit flipped", code: unauth, reason: proofs.ReasonSignatureInvalid,
			env: envWith(func(t *testing.T, env []byte) []byte {
				e, _ := proofs.ParseEnvelope(env)
				e.Signatures[0].Sig[10] ^= 1
				return e.Canonical()
			})},
		{name: "payload edited after signing", code: unauth, reason: proofs.ReasonSignatureInvalid,
			env: envWith(func(t *testing.T, env []byte) []byte {
				e, _ := proofs.ParseEnvelope(env)
				e.Payload = bytes.Replace(e.Payload, []byte("tickets:read"), []byte("tickets:wipe"), 1)
				return e.Canonical()
			})},
		{name: "no signatures", code: unauth, reason: proofs.ReasonSignatureMissing,
			env: envWith(func(t *testing.T, env []byte) []byte {
				typ, p, _, _ := catParts(t, env)
				return catRawEnvelope(typ, p)
			})},
		{name: "unregistered issuer", code: unauth, reason: ReasonIssuerNotRegistered,
			env: func(t *testing.T) []byte {
				d := c.fresh()
				d.Issuer, d.RootSubject = catGhostID, catGhostID
				return catSign(t, c.stranger, proofs.PayloadTypeDelegation, catMarshal(t, d))
			}},
		{name: "key binding not signed by a registrar", code: unauth, reason: ReasonRegistrarUnknown,
			env: func(t *testing.T) []byte {
				return bindingEnvelope(t, c.stranger, catGhostID, c.stranger, proofs.TierExecute, true)
			}},

		// Payload types.
		{name: "signed under the agent type, sent as a delegation", code: unauth, reason: proofs.ReasonSignatureInvalid,
			env: func(t *testing.T) []byte {
				env := catSign(t, human, proofs.PayloadTypeAgent, catMarshal(t, c.fresh()))
				return bytes.Replace(env, []byte(proofs.PayloadTypeAgent), []byte(proofs.PayloadTypeDelegation), 1)
			}},
		{name: "key binding signed under the delegation type, sent as agent", code: unauth, reason: proofs.ReasonSignatureInvalid,
			env: func(t *testing.T) []byte {
				kb := &proofs.KeyBinding{Agent: catGhostID, PublicKey: c.stranger.pub().DER, Tier: proofs.TierExecute,
					IssuedAt: proofs.FormatTime(time.Now()), Nonce: fmt.Sprintf("nonce-kb-%06d", c.serial.Add(1))}
				env := catSign(t, c.f.registrar, proofs.PayloadTypeDelegation, catMarshal(t, kb))
				return bytes.Replace(env, []byte(proofs.PayloadTypeDelegation), []byte(proofs.PayloadTypeAgent), 1)
			}},
		{name: "delegation payload under the agent type", code: invalid, reason: proofs.ReasonPayloadMalformed,
			env: func(t *testing.T) []byte { return catSign(t, human, proofs.PayloadTypeAgent, catMarshal(t, c.fresh())) }},
		{name: "unknown payload type", code: invalid, reason: proofs.ReasonPayloadTypeUnknown,
			env: func(t *testing.T) []byte {
				return catSign(t, human, "application/vnd.warrant.grant.v2+json", catMarshal(t, c.fresh()))
			}},

		// Replays.
		{name: "identical replay of an accepted entry", code: accepted, original: index(&c.baseIdx),
			env: func(t *testing.T) []byte { return bytes.Clone(c.base) }},
		{name: "replay with different whitespace", code: accepted, original: index(&c.baseIdx),
			env: func(t *testing.T) []byte {
				s := strings.NewReplacer(`,"`, " ,\n\t\"", `":`, `" : `, "{", "{ ", "}", " }").Replace(string(c.base))
				return []byte("\n" + s + "\r\n")
			}},
		{name: "replay with reordered keys", code: accepted, original: index(&c.baseIdx),
			env: func(t *testing.T) []byte {
				typ, p, keyid, sig := catParts(t, c.base)
				return []byte(fmt.Sprintf(`{"signatures":[{"sig":%q,"keyid":%q}],"payload":%q,"payloadType":%q}`, sig, keyid, p, typ))
			}},
		{name: "identical replay of a denied entry", code: denied, reason: proofs.ReasonDelegateUnknown, original: index(&c.deniedIdx),
			env: func(t *testing.T) []byte { return bytes.Clone(c.denied) }},

		// Authentic requests that break a rule: one denial each.
		{name: "far-future not_before", code: denied, reason: proofs.ReasonNotYetValid, written: 1,
			env: del(func(d *proofs.Delegation) {
				d.NotBefore = proofs.FormatTime(time.Now().Add(24 * time.Hour))
				d.ExpiresAt = proofs.FormatTime(time.Now().Add(25 * time.Hour))
			})},
		{name: "past expires_at", code: denied, reason: proofs.ReasonAlreadyExpired, written: 1,
			env: del(func(d *proofs.Delegation) {
				d.NotBefore = proofs.FormatTime(time.Now().Add(-2 * time.Hour))
				d.ExpiresAt = proofs.FormatTime(time.Now().Add(-time.Hour))
			})},
		{name: "scope widened", code: denied, reason: proofs.ReasonScopeWidened, written: 1,
			env: func(t *testing.T) []byte {
				d := c.freshChild()
				d.Scopes = []string{"tickets:read", "tickets:write"}
				return catSign(t, c.f.agent, proofs.PayloadTypeDelegation, catMarshal(t, d))
			}},
		{name: "not_before within the allowed clock skew (control: accepted)", code: accepted, written: 1,
			env: del(func(d *proofs.Delegation) {
				d.NotBefore = proofs.FormatTime(time.Now().Add(2 * time.Minute))
				d.ExpiresAt = proofs.FormatTime(time.Now().Add(10 * time.Minute))
			})},
	}
}

// check sends one request and asserts the answer and what was written.
func (c *catalogue) check(t *testing.T, tc badRequest, send func(*testing.T, []byte) answer) {
	t.Helper()
	env := tc.env(t)
	before := c.checkpoint(t)
	a := send(t, env)
	after := c.checkpoint(t)
	if a.code != tc.code || a.reason != tc.reason {
		t.Errorf("answer %v; want code %v reason %q", a, tc.code, tc.reason)
	}
	if after.Size != before.Size+tc.written {
		t.Fatalf("the log went from %d to %d entries; want +%d", before.Size, after.Size, tc.written)
	}
	if tc.written == 0 && !bytes.Equal(after.Root, before.Root) {
		t.Fatalf("the root changed although nothing was written")
	}
	if tc.original != nil {
		if a.resp == nil || a.resp.Entry == nil || !a.resp.Duplicate || a.resp.Entry.Index != tc.original() {
			t.Fatalf("replay answered %+v; want the original entry %d marked duplicate", a.resp, tc.original())
		}
	}
	if tc.written == 0 {
		return
	}
	// Exactly one entry: the request's canonical envelope, with the
	// decision the answer gave.
	if a.resp == nil || a.resp.Entry == nil || a.resp.Entry.Index != before.Size || a.resp.Duplicate {
		t.Fatalf("answer carries %+v; want the new entry %d", a.resp, before.Size)
	}
	p := c.entry(t, before.Size, after)
	// What was sent, in the canonical form the log must store: signatures
	// matched to the keys in force (key ids filled in, low S).
	e, err := proofs.ParseDSSE(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.MatchKeys(c.f.log.signers.Load().Key, nil); err != nil {
		t.Fatalf("the log wrote an envelope whose signatures do not match its keys: %v", err)
	}
	if !bytes.Equal(p.Envelope, e.Canonical()) {
		t.Fatalf("entry %d holds another envelope", before.Size)
	}
	if !bytes.Equal(p.Raw, a.resp.Entry.Leaf) {
		t.Fatalf("entry %d differs from the leaf in the answer", before.Size)
	}
	switch tc.code {
	case connect.CodePermissionDenied:
		if p.Decision == nil || p.Decision.Outcome != proofs.OutcomeDenied || len(p.Decision.Reasons) != 1 || p.Decision.Reasons[0] != tc.reason {
			t.Fatalf("entry %d decision %+v; want one denial %s", before.Size, p.Decision, tc.reason)
		}
	case 0:
		if p.Decision == nil || p.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("entry %d decision %+v; want accepted", before.Size, p.Decision)
		}
	}
}

// TestBadRequestCatalogue runs every case over both protocols.
func TestBadRequestCatalogue(t *testing.T) {
	c := newCatalogue(t)
	// Each case expects the status the reason catalogue (proofs/reasons.go)
	// gives its code, so the cases pin the catalogue's statuses end to end.
	for _, tc := range c.cases() {
		if tc.reason == "" {
			continue
		}
		r, ok := proofs.LookupReason(tc.reason)
		want := connect.Code(r.RPC)
		if !ok || (r.Kind != proofs.Refusal && r.Kind != proofs.RecordedDenial) || tc.code != want {
			t.Errorf("case %q expects %v %s; the catalogue has %+v", tc.name, tc.code, tc.reason, r)
		}
	}
	for _, proto := range []struct {
		name string
		send func(*testing.T, []byte) answer
	}{{"connect+proto", c.viaProto}, {"connect+json", c.viaJSON}} {
		t.Run(proto.name, func(t *testing.T) {
			for _, tc := range c.cases() {
				t.Run(tc.name, func(t *testing.T) {
					if tc.bug != "" {
						knownLedgerBug(t, tc.bug)
					}
					c.check(t, tc, proto.send)
				})
			}
		})
	}
	// The log the catalogue leaves behind is one an auditor accepts: every
	// denial it wrote replays to the same decision.
	if n := replayLog(t, c.f.log); n == 0 {
		t.Fatal("replayed nothing")
	}
}

// TestBadRPCCatalogue sends requests that are broken at the RPC level
// rather than in the envelope, with the Connect JSON protocol over plain
// HTTP: the codec refuses them with InvalidArgument and no ErrorDetail
// (the log never saw them), and nothing is written. Unknown fields of the
// RPC message itself are ignored, as protobuf's forward compatibility
// requires of every codec (the binary codec cannot even tell them apart):
// the envelope inside, which is what is signed and judged, decides.
func TestBadRPCCatalogue(t *testing.T) {
	c := newCatalogue(t)
	fresh := func(t *testing.T) string {
		return base64.StdEncoding.EncodeToString(catSign(t, c.f.human, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh())))
	}
	cases := []struct {
		name    string
		body    func(t *testing.T) string
		code    connect.Code
		reason  string
		written uint64
	}{
		{"invalid UTF-8 in an RPC string", func(t *testing.T) string {
			return `{"envelope":"` + fresh(t) + `","comment":"\xff\xfe"}`
		}, connect.CodeInvalidArgument, "", 0},
		{"invalid UTF-8 in an RPC key", func(t *testing.T) string {
			return `{"envelope":"` + fresh(t) + `","\xff":1}`
		}, connect.CodeInvalidArgument, "", 0},
		{"truncated RPC JSON", func(t *testing.T) string {
			return `{"envelope":"` + fresh(t)
		}, connect.CodeInvalidArgument, "", 0},
		{"envelope field as a number", func(t *testing.T) string {
			return `{"envelope":12345}`
		}, connect.CodeInvalidArgument, "", 0},
		{"envelope field as an object", func(t *testing.T) string {
			e := catSign(t, c.f.human, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh()))
			return `{"envelope":` + string(e) + `}`
		}, connect.CodeInvalidArgument, "", 0},
		{"envelope field not base64", func(t *testing.T) string {
			return `{"envelope":"{not base64}"}`
		}, connect.CodeInvalidArgument, "", 0},
		{"duplicate RPC field", func(t *testing.T) string {
			return `{"envelope":"` + fresh(t) + `","envelope":"` + fresh(t) + `"}`
		}, connect.CodeInvalidArgument, "", 0},
		{"trusted_size of the wrong type", func(t *testing.T) string {
			return `{"envelope":"` + fresh(t) + `","trustedSize":"lots"}`
		}, connect.CodeInvalidArgument, "", 0},
		{"no envelope", func(t *testing.T) string { return `{}` }, connect.CodeInvalidArgument, proofs.ReasonEnvelopeMalformed, 0},
		{"unknown RPC field (ignored: the authentic envelope is appended)", func(t *testing.T) string {
			return `{"envelope":"` + fresh(t) + `","priority":"urgent"}`
		}, 0, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body(t)
			before := c.checkpoint(t)
			a := c.postJSON(t, warrantv1connect.LedgerServiceAppendProcedure, []byte(body), &warrantv1.AppendResponse{})
			after := c.checkpoint(t)
			if a.code != tc.code || a.reason != tc.reason {
				t.Errorf("answer %v; want code %v reason %q", a, tc.code, tc.reason)
			}
			if after.Size != before.Size+tc.written {
				t.Fatalf("the log went from %d to %d entries; want +%d", before.Size, after.Size, tc.written)
			}
		})
	}
}

// TestReadAndBatchBounds checks the list bounds of the read and batch
// RPCs (docs/operating.md "Bounds") over the API.
func TestReadAndBatchBounds(t *testing.T) {
	c := newCatalogue(t)
	ctx := context.Background()
	reason := func(err error) string {
		var ce *connect.Error
		if errors.As(err, &ce) {
			for _, d := range ce.Details() {
				if v, _ := d.Value(); v != nil {
					if ed, ok := v.(*warrantv1.ErrorDetail); ok {
						return ed.Reason
					}
				}
			}
		}
		return ""
	}
	want := func(name string, err error, code connect.Code, r string) {
		t.Helper()
		if connect.CodeOf(err) != code || reason(err) != r {
			t.Errorf("%s: %v (reason %q); want %v %s", name, err, reason(err), code, r)
		}
	}
	_, err := c.rpc.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: 0, Count: MaxEntriesPerRead + 1}))
	want("GetEntries 1001", err, connect.CodeInvalidArgument, proofs.ReasonListTooLong)
	if _, err := c.rpc.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: 0, Count: MaxEntriesPerRead})); err != nil {
		t.Errorf("GetEntries 1000: %v", err)
	}
	_, err = c.rpc.ListChildren(ctx, connect.NewRequest(&warrantv1.ListChildrenRequest{DelegationId: "dlg_cat_base", PageSize: MaxListPage + 1}))
	want("ListChildren page 101", err, connect.CodeInvalidArgument, proofs.ReasonListTooLong)
	_, err = c.rpc.ListAgentEntries(ctx, connect.NewRequest(&warrantv1.ListAgentEntriesRequest{Agent: agentID, PageSize: MaxListPage + 1}))
	want("ListAgentEntries page 101", err, connect.CodeInvalidArgument, proofs.ReasonListTooLong)

	before := c.checkpoint(t)
	envs := make([][]byte, MaxBatchEnvelopes+1)
	for i := range envs {
		envs[i] = catSign(t, c.f.human, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh()))
	}
	_, err = c.rpc.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: envs}))
	want("AppendBatch 257", err, connect.CodeInvalidArgument, proofs.ReasonListTooLong)
	_, err = c.rpc.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{}))
	want("AppendBatch 0", err, connect.CodeInvalidArgument, proofs.ReasonListTooLong)
	// A batch mixes outcomes per envelope: a malformed one, a forged one, a
	// replay, a denial and a fresh grant write exactly two entries.
	forged := bytes.Replace(catSign(t, c.stranger, proofs.PayloadTypeDelegation, catMarshal(t, c.fresh())),
		[]byte(c.stranger.signer.KeyID()), []byte(c.f.human.signer.KeyID()), 1)
	deny := c.fresh()
	deny.Delegate = catGhostID
	mixed := [][]byte{[]byte(`{"payloadType":`), forged, c.base, catSign(t, c.f.human, proofs.PayloadTypeDelegation, catMarshal(t, deny)), envs[0]}
	resp, err := c.rpc.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: mixed}))
	if err != nil {
		t.Fatal(err)
	}
	after := c.checkpoint(t)
	if after.Size != before.Size+2 {
		t.Fatalf("mixed batch: log went from %d to %d; want +2 (one denial, one grant)", before.Size, after.Size)
	}
	r := resp.Msg.Results
	for i, w := range []struct {
		code, reason string
		denied, dup  bool
	}{
		{connect.CodeInvalidArgument.String(), proofs.ReasonEnvelopeMalformed, false, false},
		{connect.CodeUnauthenticated.String(), proofs.ReasonSignatureInvalid, false, false},
		{"", "", false, true},
		{"", "", true, false},
		{"", "", false, false},
	} {
		if r[i].Code != w.code || r[i].Reason != w.reason || r[i].Denied != w.denied || r[i].Duplicate != w.dup {
			t.Errorf("batch result %d: %+v; want code %q reason %q denied %v duplicate %v", i, r[i], w.code, w.reason, w.denied, w.dup)
		}
	}
	if r[2].Entry.GetIndex() != c.baseIdx {
		t.Errorf("replay in a batch answered entry %d, want %d", r[2].Entry.GetIndex(), c.baseIdx)
	}
}

// knownLedgerBug skips a test that exposes a bug in non-test code, so that
// the suite stays green until it is fixed. WARRANT_RUN_KNOWN_BUGS=1 runs
// such tests anyway (they fail until the bug is fixed).
func knownLedgerBug(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("WARRANT_RUN_KNOWN_BUGS") == "" {
		t.Skip("BUG: " + msg)
	}
}

// ledgerBugFound reports a bug a test has just observed: it skips the rest
// of the test, or with WARRANT_RUN_KNOWN_BUGS=1 fails it.
func ledgerBugFound(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("WARRANT_RUN_KNOWN_BUGS") == "" {
		t.Skip("BUG: " + msg)
	}
	t.Fatal("BUG: " + msg)
}

// TestBoundsDocumented ties the Bounds table of docs/operating.md to the
// constants the code enforces, so that the documentation cannot drift from
// the code.
func TestBoundsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Bounds")
	if !ok {
		t.Fatal("docs/operating.md has no Bounds section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	def := Options{}
	def.setDefaults()
	size := func(n int) string {
		switch {
		case n%(1<<20) == 0:
			return fmt.Sprintf("%d MiB", n>>20)
		case n%(1<<10) == 0:
			return fmt.Sprintf("%d KiB", n>>10)
		}
		return count(n) + " bytes"
	}
	for _, row := range []string{
		"| envelope | " + size(proofs.MaxEnvelopeBytes) + " |",
		fmt.Sprintf("| signatures per envelope | %d |", proofs.MaxSignatures),
		fmt.Sprintf("| payload type, signature key id | %d bytes each |", 128),
		fmt.Sprintf("| %d each |", proofs.MaxListItems),
		"| leaf | " + size(proofs.MaxLeafBytes) + " (",
		"| policy text | " + size(proofs.MaxPolicyBytes) + " |",
		"| `GetEntries` | " + count(MaxEntriesPerRead) + " entries or " + size(MaxEntriesBytes) + " |",
		fmt.Sprintf("| `ListChildren`, `ListAgentEntries` | %d entries a page |", MaxListPage),
		fmt.Sprintf("| `ListChildrenBatch` | %d delegations, a page of %d entries each; no further delegation is answered once %d entries are in the answer", MaxBatchParents, MaxListPage, MaxBatchEntries),
		fmt.Sprintf("| `AppendBatch` | %d envelopes; a request of %s + %s |", MaxBatchEnvelopes, size(MaxBatchEnvelopes*MaxRequestBytes), size(MaxBatchRequestBytes-MaxBatchEnvelopes*MaxRequestBytes)),
		"| tlog-proof file read by `verify` | " + size(proofs.MaxTLogProofBytes) + ", 64 proof hashes |",
		"| chain bundle read by `verify` | " + size(proofs.MaxBundleBytes) + " |",
		"| sequencer queue | " + count(def.QueueLength) + " requests, of which " + count(def.AgentQueueLength) + " of one agent (`--agent-queue`) |",
		fmt.Sprintf("| appends per agent | %d/s, bursts of %s (", DefaultAgentRate, count(DefaultAgentBurst)),
		"| envelope bytes per agent | " + size(DefaultAgentByteRate) + "/s, bursts of " + size(DefaultAgentByteBurst) + " (",
		"| one batch | " + count(def.MaxBatchEntries) + " entries, " + size(def.MaxBatchBytes) + ",",
	} {
		if !strings.Contains(section, row) {
			t.Errorf("docs/operating.md Bounds lacks %q", row)
		}
	}
}

// count formats n with thousands separators, as the README does.
func count(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

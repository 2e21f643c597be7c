package proofs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

var testLogTime = time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)

// testLeaves holds one leaf of every kind, built from real keys and
// signatures.
type testLeaves struct {
	registrar, agent *testSigner
	config           *proofs.Leaf
	binding          *proofs.Leaf
	accepted         *proofs.Leaf
	denied           *proofs.Leaf
	bindingEnv       *proofs.Envelope
	delegationEnv    *proofs.Envelope
}

func newTestLeaves(t testing.TB) *testLeaves {
	t.Helper()
	l := &testLeaves{registrar: newEd25519Signer(t), agent: newP256Signer(t)}
	l.config = &proofs.Leaf{
		Version: proofs.LeafVersion,
		Kind:    proofs.KindLogConfig,
		LogTime: proofs.FormatLogTime(testLogTime),
		Config: &proofs.LogConfig{
			Origin:        "example.com/warrant",
			RegistrarKeys: []proofs.ConfigKey{{ID: l.registrar.id, PublicKey: l.registrar.der}},
			Limits:        proofs.DefaultLimits(),
		},
	}
	kb, err := proofs.MarshalPayload(&proofs.KeyBinding{Agent: issuerID, PublicKey: l.agent.der, Tier: proofs.TierExecute, IssuedAt: "2026-03-01T10:00:00Z", Nonce: "binding-nonce-1"})
	if err != nil {
		t.Fatal(err)
	}
	l.bindingEnv = envelope(t, proofs.PayloadTypeAgent, kb, l.registrar)
	l.binding = &proofs.Leaf{
		Version:  proofs.LeafVersion,
		Kind:     proofs.KindKeyBinding,
		LogTime:  proofs.FormatLogTime(testLogTime.Add(time.Second)),
		Envelope: l.bindingEnv.Canonical(),
		Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted},
	}
	d, err := proofs.MarshalPayload(testDelegation())
	if err != nil {
		t.Fatal(err)
	}
	l.delegationEnv = envelope(t, proofs.PayloadTypeDelegation, d, l.agent)
	l.accepted = &proofs.Leaf{
		Version:  proofs.LeafVersion,
		Kind:     proofs.KindDelegation,
		LogTime:  proofs.FormatLogTime(testLogTime.Add(2 * time.Second)),
		Envelope: l.delegationEnv.Canonical(),
		Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted, PolicyDigest: "sha256:" + strings.Repeat("ab", 32), PolicyIDs: []string{"policy0"}, CedarVersion: "v1.2.3"},
	}
	l.denied = &proofs.Leaf{
		Version:  proofs.LeafVersion,
		Kind:     proofs.KindDelegation,
		LogTime:  proofs.FormatLogTime(testLogTime.Add(3 * time.Second)),
		Envelope: l.delegationEnv.Canonical(),
		Decision: &proofs.Decision{Outcome: proofs.OutcomeDenied, Reasons: []string{"parent_not_found", "scope_escalation"}},
	}
	return l
}

func (l *testLeaves) all() map[string]*proofs.Leaf {
	return map[string]*proofs.Leaf{"log_config": l.config, "key_binding": l.binding, "accepted": l.accepted, "denied": l.denied}
}

func mustMarshalLeaf(t testing.TB, l *proofs.Leaf) []byte {
	t.Helper()
	b, err := l.Marshal()
	if err != nil {
		t.Fatalf("Leaf.Marshal: %v", err)
	}
	return b
}

func TestLeafRoundTrip(t *testing.T) {
	l := newTestLeaves(t)
	for name, leaf := range l.all() {
		t.Run(name, func(t *testing.T) {
			raw := mustMarshalLeaf(t, leaf)
			p, err := proofs.ParseLeaf(raw)
			if err != nil {
				t.Fatalf("ParseLeaf(%s): %v", raw, err)
			}
			if !bytes.Equal(p.Raw, raw) {
				t.Error("Raw is not the input")
			}
			again := mustMarshalLeaf(t, &p.Leaf)
			if !bytes.Equal(again, raw) {
				t.Errorf("re-marshalled leaf differs:\n%s\n%s", again, raw)
			}
			if got := proofs.FormatLogTime(p.Time); got != leaf.LogTime || p.Time.Location() != time.UTC {
				t.Errorf("Time = %v, log_time %s", p.Time, leaf.LogTime)
			}
			switch leaf.Kind {
			case proofs.KindLogConfig:
				if p.Env != nil || p.KeyBinding != nil || p.Delegation != nil {
					t.Errorf("log_config leaf has envelope or payload: %+v", p)
				}
				if p.Config.Origin != "example.com/warrant" || p.Config.Limits != proofs.DefaultLimits() || p.Config.RegistrarKeys[0].ID != l.registrar.id {
					t.Errorf("config = %+v", p.Config)
				}
				if got, want := p.ID(), proofs.HashID(raw); got != want {
					t.Errorf("ID() = %s, want hash of the leaf %s", got, want)
				}
			case proofs.KindKeyBinding:
				if p.KeyBinding == nil || p.Delegation != nil || p.KeyBinding.Agent != issuerID {
					t.Errorf("key binding leaf: %+v", p)
				}
				if got, want := p.ID(), proofs.HashID(l.bindingEnv.Canonical()); got != want {
					t.Errorf("ID() = %s, want hash of the envelope %s", got, want)
				}
				// The registrar's signature is carried intact.
				k, _ := proofs.ParsePublicKeyDER(l.registrar.der)
				if err := k.VerifyDSSE(p.Env.PayloadType, p.Env.Payload, p.Env.Signature(l.registrar.id).Sig); err != nil {
					t.Errorf("registrar signature: %v", err)
				}
			case proofs.KindDelegation:
				if p.Delegation == nil || p.KeyBinding != nil || p.Delegation.ID != "d-0001" {
					t.Errorf("delegation leaf: %+v", p)
				}
				if got := p.ID(); got != "d-0001" {
					t.Errorf("ID() = %s, want the delegation id", got)
				}
				k, _ := proofs.ParsePublicKeyDER(l.agent.der)
				if err := k.VerifyDSSE(proofs.PayloadTypeDelegation, p.Env.Payload, p.Env.Signature(l.agent.id).Sig); err != nil {
					t.Errorf("agent signature: %v", err)
				}
			}
		})
	}
	// HashID is "sha256:" and hex.
	if got, want := proofs.HashID([]byte("abc")), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashID(abc) = %s, want %s", got, want)
	}
}

// TestLeafMarshalIsEncodingJSON checks that Marshal, which copies a
// canonical envelope into the leaf instead of letting encoding/json
// re-validate it, writes exactly what json.Marshal writes: for leaves of
// every kind, and for the envelopes, kinds and log times that must take
// encoding/json's way (whitespace, escapes, HTML characters, non-ASCII).
func TestLeafMarshalIsEncodingJSON(t *testing.T) {
	l := newTestLeaves(t)
	leaves := l.all()
	canon := string(l.delegationEnv.Canonical())
	for name, env := range map[string]string{
		"whitespace":       strings.Replace(canon, `{"payloadType"`, "{ \"payloadType\"", 1),
		"newline":          canon + "\n",
		"escaped":          strings.Replace(canon, `"payloadType":"application`, `"payloadType":"\u0061pplication`, 1),
		"html":             strings.Replace(canon, `"signatures"`, `"x":"<&>","signatures"`, 1),
		"line separator":   strings.Replace(canon, `"signatures"`, "\"x\":\"\u2028\",\"signatures\"", 1),
		"non-ASCII":        strings.Replace(canon, `"signatures"`, `"x":"é","signatures"`, 1),
		"other structure":  `{"a":[1,-2.5e3,true,false,null,{}]}`,
		"binding envelope": string(l.bindingEnv.Canonical()),
	} {
		c := *l.accepted
		c.Envelope = json.RawMessage(env)
		leaves["envelope "+name] = &c
	}
	for name, edit := range map[string]func(*proofs.Leaf){
		"kind with quote":      func(x *proofs.Leaf) { x.Kind = `dele"gation` },
		"kind with html":       func(x *proofs.Leaf) { x.Kind = "<delegation>" },
		"kind non-ASCII":       func(x *proofs.Leaf) { x.Kind = "délégation" },
		"log_time with escape": func(x *proofs.Leaf) { x.LogTime = "2026\n" },
		"log_time empty":       func(x *proofs.Leaf) { x.LogTime = "" },
		"version 12345":        func(x *proofs.Leaf) { x.Version = 12345 },
		"version -1":           func(x *proofs.Leaf) { x.Version = -1 },
		"no decision":          func(x *proofs.Leaf) { x.Decision = nil },
		"with config":          func(x *proofs.Leaf) { x.Config = l.config.Config },
		"with policy":          func(x *proofs.Leaf) { x.Policy = &proofs.LogPolicy{Text: "permit(principal, action, resource);"} },
		"with token":           func(x *proofs.Leaf) { x.Token = &proofs.TokenIssuance{} },
	} {
		c := *l.accepted
		edit(&c)
		leaves[name] = &c
	}
	for name, leaf := range leaves {
		want, err := json.Marshal(leaf)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		got, err := leaf.Marshal()
		if err != nil {
			t.Fatalf("%s: Marshal: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Marshal differs from json.Marshal:\n%s\n%s", name, got, want)
		}
	}
}

func TestFormatLogTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), "2026-03-01T10:00:00.000000000Z"},
		{time.Date(2026, 3, 1, 10, 0, 0, 1, time.UTC), "2026-03-01T10:00:00.000000001Z"},
		{time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.FixedZone("X", 7200)), "2026-03-01T10:00:00.500000000Z"},
	}
	for _, tt := range tests {
		if got := proofs.FormatLogTime(tt.t); got != tt.want {
			t.Errorf("FormatLogTime(%v) = %s, want %s", tt.t, got, tt.want)
		}
	}
}

func TestParseLeafErrors(t *testing.T) {
	l := newTestLeaves(t)
	accepted := string(mustMarshalLeaf(t, l.accepted))
	config := string(mustMarshalLeaf(t, l.config))
	replace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("leaf has no %q: %s", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	// leafWith marshals a variant of the accepted delegation leaf.
	leafWith := func(edit func(*proofs.Leaf)) string {
		c := *l.accepted
		d := *c.Decision
		c.Decision = &d
		edit(&c)
		b, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	withEnvelope := func(env string) string {
		return leafWith(func(l *proofs.Leaf) { l.Envelope = json.RawMessage(env) })
	}
	canonEnv := string(l.delegationEnv.Canonical())
	sig := l.delegationEnv.Signatures[0]
	sigJSON := `{"keyid":"` + sig.KeyID + `","sig":"` + b64(sig.Sig) + `"}`
	bindingLeafAsDelegation := leafWith(func(x *proofs.Leaf) { x.Envelope = l.bindingEnv.Canonical() })
	delegationAsBinding := leafWith(func(x *proofs.Leaf) { x.Kind = proofs.KindKeyBinding })

	tests := []struct {
		name   string
		leaf   string
		reason string
	}{
		// The envelope inside.
		{"envelope keys reordered", withEnvelope(`{"payload":"` + b64(l.delegationEnv.Payload) + `","payloadType":"` + proofs.PayloadTypeDelegation + `","signatures":[` + sigJSON + `]}`), proofs.ReasonLeafNonCanonical},
		{"envelope signatures unsorted", withEnvelope(`{"payloadType":"` + proofs.PayloadTypeDelegation + `","payload":"` + b64(l.delegationEnv.Payload) + `","signatures":[` + sigJSON + `,{"keyid":"a","sig":"AA=="}]}`), proofs.ReasonLeafNonCanonical},
		{"envelope with escaped character", withEnvelope(strings.Replace(canonEnv, `"payloadType":"application`, `"payloadType":"\u0061pplication`, 1)), proofs.ReasonLeafNonCanonical},
		{"envelope with whitespace", replace(accepted, `"envelope":{"payloadType"`, `"envelope":{ "payloadType"`), proofs.ReasonLeafNonCanonical},
		{"envelope non-canonical base64", withEnvelope(strings.Replace(canonEnv, b64(sig.Sig), strings.TrimRight(b64(sig.Sig), "="), 1)), proofs.ReasonBase64NonCanonical},
		{"envelope unknown field", withEnvelope(strings.Replace(canonEnv, `"signatures"`, `"x":"","signatures"`, 1)), proofs.ReasonEnvelopeMalformed},
		{"envelope not an object", withEnvelope(`"envelope"`), proofs.ReasonEnvelopeMalformed},
		{"envelope null", replace(accepted, `"envelope":`+canonEnv, `"envelope":null`), proofs.ReasonEnvelopeMalformed},
		{"envelope without signatures", withEnvelope(`{"payloadType":"` + proofs.PayloadTypeDelegation + `","payload":"` + b64(l.delegationEnv.Payload) + `","signatures":[]}`), proofs.ReasonSignatureMissing},
		{"envelope with non-canonical payload", withEnvelope(string((&proofs.Envelope{PayloadType: proofs.PayloadTypeDelegation, Payload: append(bytes.Clone(l.delegationEnv.Payload), '\n'), Signatures: l.delegationEnv.Signatures}).Canonical())), proofs.ReasonPayloadNonCanonical},
		{"envelope with invalid delegation", withEnvelope(string((&proofs.Envelope{PayloadType: proofs.PayloadTypeDelegation, Payload: bytes.Replace(l.delegationEnv.Payload, []byte(`"/tickets/triage"`), []byte(`"tickets"`), 1), Signatures: l.delegationEnv.Signatures}).Canonical())), proofs.ReasonPayloadMalformed},

		// Kind and payload type.
		{"delegation kind, key binding payload", bindingLeafAsDelegation, proofs.ReasonPayloadTypeMismatch},
		{"key binding kind, delegation payload", delegationAsBinding, proofs.ReasonPayloadTypeMismatch},
		{"revocation payload type", withEnvelope(strings.Replace(canonEnv, proofs.PayloadTypeDelegation, proofs.PayloadTypeRevocation, 1)), proofs.ReasonPayloadTypeMismatch},
		{"unknown kind", leafWith(func(x *proofs.Leaf) { x.Kind = "grant" }), proofs.ReasonLeafMalformed},
		{"empty kind", leafWith(func(x *proofs.Leaf) { x.Kind = "" }), proofs.ReasonLeafMalformed},
		{"kind in upper case", leafWith(func(x *proofs.Leaf) { x.Kind = "Delegation" }), proofs.ReasonLeafMalformed},

		// Decision.
		{"accepted with reasons", leafWith(func(x *proofs.Leaf) { x.Decision.Reasons = []string{"scope_escalation"} }), proofs.ReasonLeafMalformed},
		{"denied without reasons", leafWith(func(x *proofs.Leaf) { x.Decision.Outcome = proofs.OutcomeDenied }), proofs.ReasonLeafMalformed},
		{"denied with empty reasons list", replace(string(mustMarshalLeaf(t, l.denied)), `"reasons":["parent_not_found","scope_escalation"]`, `"reasons":[]`), proofs.ReasonLeafNonCanonical},
		{"unknown outcome", leafWith(func(x *proofs.Leaf) { x.Decision.Outcome = "maybe" }), proofs.ReasonLeafMalformed},
		{"no decision", leafWith(func(x *proofs.Leaf) { x.Decision = nil }), proofs.ReasonLeafMalformed},
		{"no envelope", leafWith(func(x *proofs.Leaf) { x.Envelope = nil }), proofs.ReasonLeafMalformed},
		{"delegation with config", leafWith(func(x *proofs.Leaf) { x.Config = l.config.Config }), proofs.ReasonLeafMalformed},
		{"config with envelope", replace(config, `"config"`, `"envelope":`+canonEnv+`,"config"`), proofs.ReasonLeafMalformed},
		{"config with decision", replace(config, `}}}`, `}},"decision":{"outcome":"accepted"}}`), proofs.ReasonLeafMalformed},
		{"config missing", `{"v":1,"kind":"log_config","log_time":"` + l.config.LogTime + `"}`, proofs.ReasonLeafMalformed},

		// Leaf JSON.
		{"unknown top-level field", replace(accepted, `"kind"`, `"extra":1,"kind"`), proofs.ReasonLeafMalformed},
		{"unknown decision field", replace(accepted, `"outcome"`, `"score":1,"outcome"`), proofs.ReasonLeafMalformed},
		{"unknown config field", replace(config, `"origin"`, `"x":1,"origin"`), proofs.ReasonLeafMalformed},
		{"space after colon", replace(accepted, `"v":1`, `"v": 1`), proofs.ReasonLeafNonCanonical},
		{"leading space", " " + accepted, proofs.ReasonLeafNonCanonical},
		{"trailing newline", accepted + "\n", proofs.ReasonLeafNonCanonical},
		{"reordered", replace(replace(accepted, `"v":1,`, ``), `"kind":"delegation",`, `"kind":"delegation","v":1,`), proofs.ReasonLeafNonCanonical},
		{"case-folded key", replace(accepted, `"kind"`, `"Kind"`), proofs.ReasonLeafNonCanonical},
		{"duplicate key", replace(accepted, `"v":1,`, `"v":1,"v":1,`), proofs.ReasonLeafNonCanonical},
		{"trailing data", accepted + "{}", proofs.ReasonLeafNonCanonical},
		{"invalid UTF-8", replace(accepted, `"policy0"`, "\"policy0\xff\""), proofs.ReasonLeafMalformed},
		{"not JSON", "leaf", proofs.ReasonLeafMalformed},
		{"empty", "", proofs.ReasonLeafMalformed},
		{"array", "[" + accepted + "]", proofs.ReasonLeafMalformed},

		// Version and time.
		{"version 2", replace(accepted, `"v":1`, `"v":2`), proofs.ReasonLeafMalformed},
		{"version 0", replace(accepted, `"v":1`, `"v":0`), proofs.ReasonLeafMalformed},
		{"version missing", replace(accepted, `"v":1,`, ``), proofs.ReasonLeafNonCanonical},
		{"version as string", replace(accepted, `"v":1`, `"v":"1"`), proofs.ReasonLeafMalformed},
		{"version 1.0", replace(accepted, `"v":1`, `"v":1.0`), proofs.ReasonLeafMalformed},
		{"log_time whole seconds", leafWith(func(x *proofs.Leaf) { x.LogTime = "2026-03-01T10:00:02Z" }), proofs.ReasonLeafMalformed},
		{"log_time in payload layout", leafWith(func(x *proofs.Leaf) { x.LogTime = proofs.FormatTime(testLogTime) }), proofs.ReasonLeafMalformed},
		{"log_time RFC 3339 nano", leafWith(func(x *proofs.Leaf) { x.LogTime = testLogTime.Truncate(time.Millisecond).Format(time.RFC3339Nano) }), proofs.ReasonLeafMalformed},
		{"log_time milliseconds", leafWith(func(x *proofs.Leaf) { x.LogTime = "2026-03-01T10:00:02.123Z" }), proofs.ReasonLeafMalformed},
		{"log_time with offset", leafWith(func(x *proofs.Leaf) { x.LogTime = "2026-03-01T12:00:02.123456789+02:00" }), proofs.ReasonLeafMalformed},
		{"log_time missing", leafWith(func(x *proofs.Leaf) { x.LogTime = "" }), proofs.ReasonLeafMalformed},
		{"log_time invalid date", leafWith(func(x *proofs.Leaf) { x.LogTime = "2026-02-30T10:00:02.123456789Z" }), proofs.ReasonLeafMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := proofs.ParseLeaf([]byte(tt.leaf))
			if err == nil {
				t.Fatalf("ParseLeaf(%s) accepted as a %s leaf", tt.leaf, p.Kind)
			}
			if r := proofs.Reason(err); r != tt.reason {
				t.Errorf("ParseLeaf(%s): reason %q (%v), want %q", tt.leaf, r, err, tt.reason)
			}
		})
	}
}

func TestLeafSizeLimit(t *testing.T) {
	l := newTestLeaves(t)
	// A log_config leaf grown with registrar keys to exactly MaxLeafBytes
	// parses; one byte more is refused by Marshal and by ParseLeaf.
	leaf := *l.config
	cfg := *leaf.Config
	leaf.Config = &cfg
	for {
		cfg.RegistrarKeys = append(cfg.RegistrarKeys, proofs.ConfigKey{ID: l.registrar.id, PublicKey: l.registrar.der})
		b, err := json.Marshal(&leaf)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > proofs.MaxLeafBytes-200 {
			break
		}
	}
	b, _ := json.Marshal(&leaf)
	cfg.Origin += strings.Repeat("o", proofs.MaxLeafBytes-len(b))
	raw, err := leaf.Marshal()
	if err != nil {
		t.Fatalf("Marshal of a %d-byte leaf: %v", proofs.MaxLeafBytes, err)
	}
	if len(raw) != proofs.MaxLeafBytes {
		t.Fatalf("leaf is %d bytes, want %d", len(raw), proofs.MaxLeafBytes)
	}
	if _, err := proofs.ParseLeaf(raw); err != nil {
		t.Errorf("ParseLeaf of a %d-byte leaf: %v", len(raw), err)
	}
	cfg.Origin += "o"
	_, err = leaf.Marshal()
	wantReason(t, err, proofs.ReasonLeafTooLarge)
	raw, _ = json.Marshal(&leaf)
	_, err = proofs.ParseLeaf(raw)
	wantReason(t, err, proofs.ReasonLeafTooLarge)
	_, err = proofs.ParseLeaf(bytes.Repeat([]byte{'x'}, proofs.MaxLeafBytes+1))
	wantReason(t, err, proofs.ReasonLeafTooLarge)
}

// TestParseLeafUniqueEncoding: a single-bit change of a valid leaf is
// either refused or is the canonical encoding of a different leaf. Each
// byte gets two flips: bit 5 (letter case) and a rotating bit.
func TestParseLeafUniqueEncoding(t *testing.T) {
	l := newTestLeaves(t)
	for name, leaf := range l.all() {
		raw := mustMarshalLeaf(t, leaf)
		for i := range raw {
			for _, bit := range []int{5, i % 8} {
				mut := bytes.Clone(raw)
				mut[i] ^= 1 << bit
				p, err := proofs.ParseLeaf(mut)
				if err != nil {
					if proofs.Reason(err) == "" {
						t.Fatalf("%s: byte %d bit %d: error without reason: %v", name, i, bit, err)
					}
					continue
				}
				if again := mustMarshalLeaf(t, &p.Leaf); !bytes.Equal(again, mut) {
					t.Errorf("%s: byte %d bit %d: accepted as non-canonical leaf\n%s", name, i, bit, mut)
				}
			}
		}
	}
}

func ExampleParseLeaf() {
	leaf := &proofs.Leaf{
		Version: proofs.LeafVersion,
		Kind:    proofs.KindLogConfig,
		LogTime: proofs.FormatLogTime(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)),
		Config:  &proofs.LogConfig{Origin: "example.com/warrant", Limits: proofs.DefaultLimits()},
	}
	raw, _ := leaf.Marshal()

	p, err := proofs.ParseLeaf(raw)
	fmt.Println(p.Kind, p.LogTime, p.Config.Origin, err)
	// Entries the log writes itself are named by the hash of the leaf.
	fmt.Println(p.ID() == proofs.HashID(raw))

	// The leaf is its own canonical encoding: any other is refused.
	_, err = proofs.ParseLeaf(append(raw, '\n'))
	fmt.Println(proofs.Reason(err))
	// Output:
	// log_config 2026-03-01T10:00:00.000000000Z example.com/warrant <nil>
	// true
	// leaf_non_canonical
}

// TestLeafDescriptors checks the kind-agnostic questions a leaf answers
// for the server, the client and the CLI, on a log of every kind.
func TestLeafDescriptors(t *testing.T) {
	r := newReplayFixture(t)
	kinds := map[string]bool{}
	for _, k := range proofs.Kinds() {
		kinds[k] = true
	}
	for i, p := range r.leaves {
		if !kinds[p.Kind] {
			t.Errorf("entry %d: kind %q is not in Kinds()", i, p.Kind)
		}
		if p.Payload() == nil {
			t.Errorf("entry %d (%s): no payload", i, p.Kind)
		}
		keys := p.Keys()
		switch {
		case p.KeyBinding != nil:
			if len(keys) != 1 || keys[0].ID != proofs.KeyID(p.KeyBinding.PublicKey) {
				t.Errorf("entry %d: key binding names keys %v", i, keys)
			}
		case p.Config != nil:
			if len(keys) != 2 || keys[0].ID != r.registrar.id || keys[1].ID != r.admin.id {
				t.Errorf("entry %d: configuration names keys %v", i, keys)
			}
		default:
			if len(keys) != 0 {
				t.Errorf("entry %d (%s): names keys %v", i, p.Kind, keys)
			}
		}
		var under string
		switch {
		case p.Delegation != nil:
			under = p.Delegation.Parent
		case p.Revocation != nil:
			under = p.Revocation.Delegation
		}
		if got := p.Under(); got != under {
			t.Errorf("entry %d (%s): under %q, want %q", i, p.Kind, got, under)
		}
	}
}

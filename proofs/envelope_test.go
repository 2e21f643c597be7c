package proofs_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// Fixed envelope parts for the parsing tests. The signatures need not
// verify: ParseEnvelope checks structure, not signatures.
const (
	envType    = "application/vnd.warrant.delegation.v1+json"
	envPayload = "eyJpZCI6ImQxIn0=" // {"id":"d1"}
	envSigA    = "c2lnbmF0dXJlLWE=" // signature-a
	envSigB    = "c2lnbmF0dXJlLWI=" // signature-b
	envKeyA    = "sha256:aaaa"
	envKeyB    = "sha256:bbbb"
)

// canonicalEnvelope is the canonical encoding of the test envelope.
const canonicalEnvelope = `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[{"keyid":"` + envKeyA + `","sig":"` + envSigA + `"},{"keyid":"` + envKeyB + `","sig":"` + envSigB + `"}]}`

func TestParseEnvelopeEquivalentEncodings(t *testing.T) {
	variants := []struct {
		name string
		json string
	}{
		{"canonical", canonicalEnvelope},
		{"signatures reversed", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[{"keyid":"` + envKeyB + `","sig":"` + envSigB + `"},{"keyid":"` + envKeyA + `","sig":"` + envSigA + `"}]}`},
		{"keys reversed", `{"signatures":[{"sig":"` + envSigB + `","keyid":"` + envKeyB + `"},{"sig":"` + envSigA + `","keyid":"` + envKeyA + `"}],"payload":"` + envPayload + `","payloadType":"` + envType + `"}`},
		{"whitespace", " \t\r\n{ \"payloadType\" :\n\"" + envType + "\" ,\r\n \"payload\":\t\"" + envPayload + "\",\n  \"signatures\": [\n    { \"keyid\": \"" + envKeyA + "\", \"sig\": \"" + envSigA + "\" },\n    {\"keyid\":\"" + envKeyB + "\",\"sig\":\"" + envSigB + "\"}\n  ]\n}\n\n"},
		{"escaped characters in strings", `{"payloadType":"application\/vnd.warrant.delegation.v1\u002bjson","payload":"` + envPayload + `","signatures":[{"keyid":"sha256:\u0061aaa","sig":"` + envSigA + `"},{"keyid":"` + envKeyB + `","sig":"` + envSigB + `"}]}`},
		{"escaped key names", `{"payload\u0054ype":"` + envType + `","\u0070ayload":"` + envPayload + `","signatures":[{"key\u0069d":"` + envKeyA + `","sig":"` + envSigA + `"},{"keyid":"` + envKeyB + `","\u0073ig":"` + envSigB + `"}]}`},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			env, err := proofs.ParseEnvelope([]byte(v.json))
			if err != nil {
				t.Fatalf("ParseEnvelope: %v", err)
			}
			if got := string(env.Canonical()); got != canonicalEnvelope {
				t.Errorf("Canonical() =\n%s\nwant\n%s", got, canonicalEnvelope)
			}
			if env.PayloadType != envType || string(env.Payload) != `{"id":"d1"}` {
				t.Errorf("parsed type %q payload %q", env.PayloadType, env.Payload)
			}
			if len(env.Signatures) != 2 || env.Signatures[0].KeyID != envKeyA || env.Signatures[1].KeyID != envKeyB {
				t.Errorf("signatures not sorted by keyid: %+v", env.Signatures)
			}
			if s := env.Signature(envKeyB); s == nil || string(s.Sig) != "signature-b" {
				t.Errorf("Signature(%q) = %+v", envKeyB, s)
			}
			if s := env.Signature("sha256:cccc"); s != nil {
				t.Errorf("Signature(unknown) = %+v, want nil", s)
			}
		})
	}
}

// TestParseEnvelopeShuffled is a property test: any order of keys and any
// insignificant whitespace give the same canonical encoding.
func TestParseEnvelopeShuffled(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ws := []string{"", " ", "\t", "\n", "\r\n", "  \n\t"}
	w := func() string { return ws[rng.Intn(len(ws))] }
	field := func(k, v string) string { return w() + `"` + k + `"` + w() + ":" + w() + `"` + v + `"` + w() }
	object := func(fields ...string) string {
		rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
		return w() + "{" + strings.Join(fields, ",") + "}" + w()
	}
	for i := range 500 {
		sigs := []string{
			object(field("keyid", envKeyA), field("sig", envSigA)),
			object(field("keyid", envKeyB), field("sig", envSigB)),
			object(field("keyid", "sha256:0000"), field("sig", envSigA)),
		}
		rng.Shuffle(len(sigs), func(i, j int) { sigs[i], sigs[j] = sigs[j], sigs[i] })
		sigList := w() + `"signatures"` + w() + ":" + w() + "[" + strings.Join(sigs, ",") + "]" + w()
		doc := object(field("payloadType", envType), field("payload", envPayload), sigList)
		env, err := proofs.ParseEnvelope([]byte(doc))
		if err != nil {
			t.Fatalf("iteration %d: ParseEnvelope(%q): %v", i, doc, err)
		}
		want := `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[{"keyid":"sha256:0000","sig":"` + envSigA + `"},{"keyid":"` + envKeyA + `","sig":"` + envSigA + `"},{"keyid":"` + envKeyB + `","sig":"` + envSigB + `"}]}`
		if got := string(env.Canonical()); got != want {
			t.Fatalf("iteration %d: Canonical(%q) =\n%s\nwant\n%s", i, doc, got, want)
		}
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	ed, ec := newEd25519Signer(t), newP256Signer(t)
	payloads := [][]byte{
		nil,
		[]byte(`{"id":"d1"}`),
		{0, 1, 2, 0xff, 0xfe},
		bytes.Repeat([]byte("x"), 1000),
	}
	// Characters that JSON escapes never appear in a payload type.
	for _, odd := range []string{"text/plain; charset=<utf-8>&x", "type with \"quotes\" and \\ and \u2028 and é"} {
		env := &proofs.Envelope{PayloadType: odd, Payload: []byte("x")}
		env.Signatures = []proofs.Signature{ed.signDSSE(t, odd, []byte("x"))}
		if _, err := proofs.ParseEnvelope(env.Canonical()); proofs.Reason(err) != proofs.ReasonEnvelopeMalformed {
			t.Errorf("payload type %q: %v, want %s", odd, err, proofs.ReasonEnvelopeMalformed)
		}
	}
	types := []string{envType, proofs.PayloadTypeAgent, "text/plain", "application/vnd.example+json"}
	for _, typ := range types {
		for _, p := range payloads {
			env := &proofs.Envelope{PayloadType: typ, Payload: p}
			env.Signatures = []proofs.Signature{ec.signDSSE(t, typ, p), ed.signDSSE(t, typ, p)}
			c1 := env.Canonical()
			parsed, err := proofs.ParseEnvelope(c1)
			if err != nil {
				t.Fatalf("ParseEnvelope(Canonical()) for type %q: %v", typ, err)
			}
			c2 := parsed.Canonical()
			if !bytes.Equal(c1, c2) {
				t.Errorf("Canonical() not stable:\n%s\n%s", c1, c2)
			}
			if parsed.PayloadType != typ || !bytes.Equal(parsed.Payload, p) {
				t.Errorf("round trip changed type %q -> %q or payload %x -> %x", typ, parsed.PayloadType, p, parsed.Payload)
			}
			if parsed.Signatures[0].KeyID > parsed.Signatures[1].KeyID {
				t.Errorf("signatures not sorted: %q, %q", parsed.Signatures[0].KeyID, parsed.Signatures[1].KeyID)
			}
			if got, want := proofs.EnvelopeHash(c1), sha256.Sum256(c1); got != want {
				t.Errorf("EnvelopeHash = %x, want %x", got, want)
			}
			// The signatures survive the round trip.
			for _, s := range []*testSigner{ed, ec} {
				k, err := proofs.ParsePublicKeyDER(s.der)
				if err != nil {
					t.Fatal(err)
				}
				sig := parsed.Signature(s.id)
				if sig == nil {
					t.Fatalf("no signature by %s", s.id)
				}
				if err := k.VerifyDSSE(parsed.PayloadType, parsed.Payload, sig.Sig); err != nil {
					t.Errorf("signature by %s after round trip: %v", s.id, err)
				}
			}
		}
	}
	// Canonical does not reorder the caller's signatures.
	env := &proofs.Envelope{PayloadType: envType, Signatures: []proofs.Signature{{KeyID: "b", Sig: []byte{1}}, {KeyID: "a", Sig: []byte{2}}}}
	if got, want := string(env.Canonical()), `{"payloadType":"`+envType+`","payload":"","signatures":[{"keyid":"a","sig":"Ag=="},{"keyid":"b","sig":"AQ=="}]}`; got != want {
		t.Errorf("Canonical() = %s, want %s", got, want)
	}
	if env.Signatures[0].KeyID != "b" {
		t.Error("Canonical() reordered the envelope's own signatures")
	}
}

// TestCanonicalReparsesAtSizeLimit: an envelope that ParseEnvelope accepts
// must have a canonical encoding that ParseEnvelope accepts too, or the log
// would store a leaf (Leaf.Envelope is the canonical encoding) that ParseLeaf
// and every offline verifier refuse.
func TestCanonicalReparsesAtSizeLimit(t *testing.T) {
	keyid := func(c string) string { return strings.Repeat("<", 127) + c }
	sigs := ""
	for _, c := range "abcd" {
		sigs += `,{"keyid":"` + keyid(string(c)) + `","sig":"AA=="}`
	}
	head := `{"payloadType":"` + strings.Repeat("&", 128) + `","signatures":[` + sigs[1:] + `],"payload":"`
	// Fill the payload so that the submitted envelope is exactly at the limit.
	n := (proofs.MaxEnvelopeBytes - len(head) - 2) / 4 * 3
	data := []byte(head + b64(bytes.Repeat([]byte{'p'}, n)) + `"}`)
	data = append(data, bytes.Repeat([]byte(" "), proofs.MaxEnvelopeBytes-len(data))...)
	env, err := proofs.ParseEnvelope(data)
	if err != nil {
		// Characters JSON escapes are refused in keyids and payload types,
		// so the canonical form can never outgrow what was checked.
		if got := proofs.Reason(err); got != proofs.ReasonEnvelopeMalformed {
			t.Fatalf("ParseEnvelope(%d bytes): %v, want %s", len(data), err, proofs.ReasonEnvelopeMalformed)
		}
		return
	}
	c := env.Canonical()
	if _, err := proofs.ParseEnvelope(c); err != nil {
		t.Errorf("ParseEnvelope(Canonical()) of an accepted %d-byte envelope (canonical %d bytes): %v", len(data), len(c), err)
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	sig := func(keyid, sig string) string { return `{"keyid":"` + keyid + `","sig":"` + sig + `"}` }
	env := func(typ, payload string, sigs ...string) string {
		return `{"payloadType":"` + typ + `","payload":"` + payload + `","signatures":[` + strings.Join(sigs, ",") + `]}`
	}
	okSigs := []string{sig(envKeyA, envSigA), sig(envKeyB, envSigB)}
	withSig := func(s string) string { return env(envType, envPayload, sig(envKeyA, envSigA), s) }
	withPayload := func(p string) string { return env(envType, p, okSigs...) }

	const (
		malformed  = proofs.ReasonEnvelopeMalformed
		base64NC   = proofs.ReasonBase64NonCanonical
		missingSig = proofs.ReasonSignatureMissing
	)
	tests := []struct {
		name   string
		json   string
		reason string
	}{
		// Unknown, duplicate and case-folded keys.
		{"unknown top-level field", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `],"extra":1}`, malformed},
		{"unknown top-level field first", `{"x":"","payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"unknown signature field", withSig(`{"keyid":"k","sig":"` + envSigA + `","extra":""}`), malformed},
		{"duplicate payloadType", `{"payloadType":"` + envType + `","payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"duplicate payload", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"duplicate signatures", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `],"signatures":[` + okSigs[1] + `]}`, malformed},
		{"duplicate keyid", withSig(`{"keyid":"k","keyid":"k","sig":"` + envSigA + `"}`), malformed},
		{"duplicate sig", withSig(`{"keyid":"k","sig":"` + envSigA + `","sig":"` + envSigA + `"}`), malformed},
		{"case-folded PayloadType", `{"PayloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"case-folded Payload", `{"payloadType":"` + envType + `","Payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"case-folded Signatures", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","Signatures":[` + okSigs[0] + `]}`, malformed},
		{"case-folded KeyID", withSig(`{"KeyID":"k","sig":"` + envSigA + `"}`), malformed},
		{"case-folded Sig", withSig(`{"keyid":"k","Sig":"` + envSigA + `"}`), malformed},
		{"payloadtype lower case", `{"payloadtype":"` + envType + `","payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},

		// Missing and empty fields.
		{"missing payloadType", `{"payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"empty payloadType", env("", envPayload, okSigs...), malformed},
		{"missing payload", `{"payloadType":"` + envType + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"missing signatures", `{"payloadType":"` + envType + `","payload":"` + envPayload + `"}`, missingSig},
		{"empty signatures", env(envType, envPayload), missingSig},
		{"missing keyid", withSig(`{"sig":"` + envSigA + `"}`), malformed},
		{"empty keyid", withSig(sig("", envSigB)), malformed},
		{"missing sig", withSig(`{"keyid":"k"}`), malformed},
		{"empty sig", withSig(sig("k", "")), malformed},
		{"empty signature object", withSig(`{}`), malformed},
		{"payloadType too long", env(strings.Repeat("t", 129), envPayload, okSigs...), malformed},
		{"keyid too long", withSig(sig(strings.Repeat("k", 129), envSigB)), malformed},

		// Signature counts and key ids.
		{"five signatures", env(envType, envPayload, sig("k1", envSigA), sig("k2", envSigA), sig("k3", envSigA), sig("k4", envSigA), sig("k5", envSigA)), proofs.ReasonTooManySignatures},
		{"many signatures", env(envType, envPayload, strings.Repeat(sig("k", envSigA)+",", 100)+sig("k", envSigA)), proofs.ReasonTooManySignatures},
		{"same keyid twice", env(envType, envPayload, sig(envKeyA, envSigA), sig(envKeyA, envSigB)), malformed},
		{"same keyid twice, apart", env(envType, envPayload, sig(envKeyA, envSigA), sig(envKeyB, envSigB), sig(envKeyA, envSigA)), malformed},

		// Base64 in payload and sig.
		{"payload URL alphabet", withPayload("-_-_"), base64NC},
		{"payload URL alphabet mixed", withPayload("ab+_"), base64NC},
		{"payload missing padding", withPayload("eyJpZCI6ImQxIn0"), base64NC},
		{"payload missing double padding", withPayload("QQ"), base64NC},
		{"payload extra padding", withPayload("QQ==="), base64NC},
		{"payload embedded newline", withPayload(`eyJpZCI6\nImQxIn0=`), base64NC},
		{"payload embedded CRLF", withPayload(`eyJpZCI6\r\nImQxIn0=`), base64NC},
		{"payload trailing newline", withPayload(`eyJpZCI6ImQxIn0=\n`), base64NC},
		{"payload embedded space", withPayload(`eyJpZCI6 ImQxIn0=`), base64NC},
		{"payload non-zero trailing bits (QR==)", withPayload("QR=="), base64NC},
		{"payload non-zero trailing bits (QUJ=)", withPayload("QUJ="), base64NC},
		{"payload padding in the middle", withPayload("QQ==QQ=="), base64NC},
		{"sig URL alphabet", withSig(sig("k", "c2lnbmF0dXJl-_==")), base64NC},
		{"sig missing padding", withSig(sig("k", "c2lnbmF0dXJlLWE")), base64NC},
		{"sig embedded newline", withSig(sig("k", `c2lnbmF0\ndXJlLWE=`)), base64NC},
		{"sig embedded CRLF", withSig(sig("k", `c2lnbmF0\r\ndXJlLWE=`)), base64NC},
		{"sig non-zero trailing bits", withSig(sig("k", "c2lnbmF0dXJlLWF=")), base64NC},

		// Types.
		{"payloadType not a string", `{"payloadType":1,"payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"payloadType null", `{"payloadType":null,"payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"payload an object", `{"payloadType":"` + envType + `","payload":{},"signatures":[` + okSigs[0] + `]}`, malformed},
		{"signatures an object", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":{}}`, malformed},
		{"signatures null", `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":null}`, malformed},
		{"signature a string", withSig(`"sig"`), malformed},
		{"keyid a number", withSig(`{"keyid":1,"sig":"` + envSigA + `"}`), malformed},
		{"sig an array", withSig(`{"keyid":"k","sig":["` + envSigA + `"]}`), malformed},

		// JSON syntax.
		{"invalid UTF-8", "{\"payloadType\":\"" + envType + "\xff\",\"payload\":\"" + envPayload + "\",\"signatures\":[" + okSigs[0] + "]}", malformed},
		{"invalid UTF-8 outside strings", canonicalEnvelope + "\xc3", malformed},
		{"overlong UTF-8", "{\"payloadType\":\"\xc0\xaf\",\"payload\":\"" + envPayload + "\",\"signatures\":[" + okSigs[0] + "]}", malformed},
		{"trailing object", canonicalEnvelope + "{}", malformed},
		{"trailing brace", canonicalEnvelope + "}", malformed},
		{"trailing text", canonicalEnvelope + " x", malformed},
		{"trailing NUL", canonicalEnvelope + "\x00", malformed},
		{"second envelope", canonicalEnvelope + "\n" + canonicalEnvelope, malformed},
		{"trailing comma", strings.TrimSuffix(canonicalEnvelope, "}") + ",}", malformed},
		{"trailing comma in signatures", env(envType, envPayload, okSigs[0]+","), malformed},
		{"missing comma", `{"payloadType":"` + envType + `" "payload":"` + envPayload + `","signatures":[` + okSigs[0] + `]}`, malformed},
		{"unterminated", strings.TrimSuffix(canonicalEnvelope, "}"), malformed},
		{"array", "[" + canonicalEnvelope + "]", malformed},
		{"string", `"` + envPayload + `"`, malformed},
		{"number", "1", malformed},
		{"null", "null", malformed},
		{"true", "true", malformed},
		{"empty", "", malformed},
		{"whitespace only", " \n", malformed},
		{"single-quoted", strings.ReplaceAll(canonicalEnvelope, `"`, `'`), malformed},
		{"comment", "/* c */" + canonicalEnvelope, malformed},
		{"BOM", "\ufeff" + canonicalEnvelope, malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := proofs.ParseEnvelope([]byte(tt.json))
			if err == nil {
				t.Fatalf("ParseEnvelope(%q) = %s, want error %q", tt.json, env.Canonical(), tt.reason)
			}
			if got := proofs.Reason(err); got != tt.reason {
				t.Errorf("ParseEnvelope(%q): reason %q (%v), want %q", tt.json, got, err, tt.reason)
			}
		})
	}
}

func TestParseEnvelopeLimits(t *testing.T) {
	sig := func(i int) string { return fmt.Sprintf(`{"keyid":"k%d","sig":"%s"}`, i, envSigA) }
	sigs := sig(0)
	for i := 1; i < proofs.MaxSignatures; i++ {
		sigs += "," + sig(i)
	}
	maxSigs := `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + sigs + `]}`
	env, err := proofs.ParseEnvelope([]byte(maxSigs))
	if err != nil {
		t.Fatalf("%d signatures: %v", proofs.MaxSignatures, err)
	}
	if len(env.Signatures) != proofs.MaxSignatures {
		t.Errorf("got %d signatures, want %d", len(env.Signatures), proofs.MaxSignatures)
	}
	tooMany := `{"payloadType":"` + envType + `","payload":"` + envPayload + `","signatures":[` + sigs + "," + sig(proofs.MaxSignatures) + `]}`
	_, err = proofs.ParseEnvelope([]byte(tooMany))
	wantReason(t, err, proofs.ReasonTooManySignatures)

	// Longest payloadType and keyid.
	long := `{"payloadType":"` + strings.Repeat("t", 128) + `","payload":"","signatures":[{"keyid":"` + strings.Repeat("k", 128) + `","sig":"AA=="}]}`
	if _, err := proofs.ParseEnvelope([]byte(long)); err != nil {
		t.Errorf("128-byte payloadType and keyid: %v", err)
	}

	// Size: exactly MaxEnvelopeBytes is accepted, one more byte refused,
	// whatever the bytes are.
	pad := func(s string, n int) []byte { return append([]byte(s), bytes.Repeat([]byte(" "), n-len(s))...) }
	if _, err := proofs.ParseEnvelope(pad(canonicalEnvelope, proofs.MaxEnvelopeBytes)); err != nil {
		t.Errorf("envelope of exactly MaxEnvelopeBytes: %v", err)
	}
	_, err = proofs.ParseEnvelope(pad(canonicalEnvelope, proofs.MaxEnvelopeBytes+1))
	wantReason(t, err, proofs.ReasonEnvelopeTooLarge)
	_, err = proofs.ParseEnvelope(bytes.Repeat([]byte{0xff}, proofs.MaxEnvelopeBytes+1))
	wantReason(t, err, proofs.ReasonEnvelopeTooLarge)
	big := `{"payloadType":"` + envType + `","payload":"` + b64(make([]byte, proofs.MaxEnvelopeBytes)) + `","signatures":[` + sig(0) + `]}`
	_, err = proofs.ParseEnvelope([]byte(big))
	wantReason(t, err, proofs.ReasonEnvelopeTooLarge)
}

func TestPAE(t *testing.T) {
	tests := []struct {
		typ, payload, want string
	}{
		// The example of the DSSE protocol specification.
		{"http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"", "", "DSSEv1 0  0 "},
		{"t", "é", "DSSEv1 1 t 2 é"}, // lengths count bytes
		{"a b", "1 2 3", "DSSEv1 3 a b 5 1 2 3"},
		{envType, `{"id":"d1"}`, "DSSEv1 42 " + envType + " 11 {\"id\":\"d1\"}"},
	}
	for _, tt := range tests {
		if got := string(proofs.PAE(tt.typ, []byte(tt.payload))); got != tt.want {
			t.Errorf("PAE(%q, %q) = %q, want %q", tt.typ, tt.payload, got, tt.want)
		}
	}
	// A 1000-byte payload has a four-digit length.
	p := bytes.Repeat([]byte{'x'}, 1000)
	if got, want := proofs.PAE("t", p), append([]byte("DSSEv1 1 t 1000 "), p...); !bytes.Equal(got, want) {
		t.Errorf("PAE of 1000 bytes = %q..., want %q...", got[:20], want[:20])
	}
}

func ExampleParseEnvelope() {
	// Key order and whitespace do not matter; the canonical encoding is
	// unique and is what the log stores and hashes.
	env, err := proofs.ParseEnvelope([]byte(`{
		"signatures": [{"sig": "c2ln", "keyid": "sha256:ab"}],
		"payload": "aGk=",
		"payloadType": "text/plain"
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", env.Canonical())

	_, err = proofs.ParseEnvelope([]byte(`{"payloadType":"text/plain","payload":"aGk","signatures":[{"keyid":"k","sig":"c2ln"}]}`))
	fmt.Println(proofs.Reason(err))
	// Output:
	// {"payloadType":"text/plain","payload":"aGk=","signatures":[{"keyid":"sha256:ab","sig":"c2ln"}]}
	// base64_non_canonical
}

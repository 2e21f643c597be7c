package proofs_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// dsseKey is a fixed Ed25519 key (the DSSE fuzz seeds are signed by it).
func dsseKey(t testing.TB, seed byte) (ed25519.PrivateKey, *proofs.PublicKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := proofs.ParsePublicKeyDER(der)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// dsseEnvelope writes an envelope by hand: payload and signatures encoded
// with enc, each signature's keyid field as given (nil: left out).
func dsseEnvelope(typ string, payload []byte, enc *base64.Encoding, sigs [][]byte, keyids []*string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"payloadType":%q,"payload":%q,"signatures":[`, typ, enc.EncodeToString(payload))
	for i, s := range sigs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		if keyids[i] != nil {
			fmt.Fprintf(&b, `"keyid":%q,`, *keyids[i])
		}
		fmt.Fprintf(&b, `"sig":%q}`, enc.EncodeToString(s))
	}
	b.WriteString("]}")
	return b.Bytes()
}

func str(s string) *string { return &s }

// TestParseDSSEForms: every base64 form and key id DSSE allows parses, and
// once its signature is matched to its key gives the one canonical form;
// the log's strict parser still refuses the non-canonical forms.
func TestParseDSSEForms(t *testing.T) {
	priv, pub := dsseKey(t, 0x11)
	payload := []byte(`{"x":"~~~?>"}`) // base64 with '+', '/' and padding
	sig := ed25519.Sign(priv, proofs.PAE("application/x-test", payload))
	canonical := dsseEnvelope("application/x-test", payload, base64.StdEncoding, [][]byte{sig}, []*string{str(pub.ID)})
	named := func(id string) *proofs.PublicKey {
		if id == pub.ID {
			return pub
		}
		return nil
	}
	for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "raw std": base64.RawStdEncoding, "url": base64.URLEncoding, "raw url": base64.RawURLEncoding} {
		for kname, keyid := range map[string]*string{"canonical": str(pub.ID), "missing": nil, "empty": str(""), "foreign": str("ssl:deadbeef/ab+c")} {
			data := dsseEnvelope("application/x-test", payload, enc, [][]byte{sig}, []*string{keyid})
			env, err := proofs.ParseDSSE(data)
			if err != nil {
				t.Fatalf("%s, key id %s: %v", name, kname, err)
			}
			if err := env.MatchKeys(named, []*proofs.PublicKey{pub}); err != nil {
				t.Fatalf("%s, key id %s: MatchKeys: %v", name, kname, err)
			}
			if got := env.Canonical(); !bytes.Equal(got, canonical) {
				t.Fatalf("%s, key id %s: canonical\n%s\nwant\n%s", name, kname, got, canonical)
			}
			if !bytes.Equal(data, canonical) {
				if _, err := proofs.ParseEnvelope(data); err == nil {
					t.Fatalf("%s, key id %s: the strict parser accepts a non-canonical form", name, kname)
				}
			}
		}
	}
	for _, bad := range []string{"QUJD\nREVG", "QUJ-D/EF", "QUJDR", "QUJDRA=", "QR=="} {
		data := []byte(fmt.Sprintf(`{"payloadType":"t","payload":%q,"signatures":[{"sig":"c2ln"}]}`, bad))
		if _, err := proofs.ParseDSSE(data); proofs.Reason(err) != proofs.ReasonBase64NonCanonical {
			t.Errorf("payload %q: %v, want %s", bad, err, proofs.ReasonBase64NonCanonical)
		}
	}
}

// TestMatchKeys: a signature is matched by its key id when that names a
// key, else by trying the bounded candidates; anything unmatched fails with
// a precise reason, and two signatures by one key are refused.
func TestMatchKeys(t *testing.T) {
	priv, pub := dsseKey(t, 0x11)
	priv2, pub2 := dsseKey(t, 0x22)
	_, pub3 := dsseKey(t, 0x33)
	payload := []byte("hello")
	pae := proofs.PAE("t", payload)
	s1, s2 := ed25519.Sign(priv, pae), ed25519.Sign(priv2, pae)
	keys := map[string]*proofs.PublicKey{pub.ID: pub, pub2.ID: pub2, pub3.ID: pub3}
	named := func(id string) *proofs.PublicKey { return keys[id] }
	junk := bytes.Repeat([]byte{7}, 64)
	for _, tc := range []struct {
		name     string
		sigs     [][]byte
		keyids   []*string
		fallback []*proofs.PublicKey
		reason   string
	}{
		{"both named", [][]byte{s2, s1}, []*string{str(pub2.ID), str(pub.ID)}, nil, ""},
		{"one unnamed, in the candidates", [][]byte{s1, s2}, []*string{nil, str(pub2.ID)}, []*proofs.PublicKey{pub3, pub}, ""},
		{"unnamed, not in the candidates", [][]byte{s1, s2}, []*string{str(pub.ID), nil}, []*proofs.PublicKey{pub}, proofs.ReasonSignatureKeyUnknown},
		{"random key id, random bytes", [][]byte{s1, junk}, []*string{str(pub.ID), str("sha256:00ff")}, []*proofs.PublicKey{pub, pub2}, proofs.ReasonSignatureKeyUnknown},
		{"named key, wrong signature", [][]byte{s1, junk}, []*string{str(pub.ID), str(pub2.ID)}, []*proofs.PublicKey{pub2}, proofs.ReasonSignatureInvalid},
		{"one key twice", [][]byte{s1, s1}, []*string{str(pub.ID), str("other")}, []*proofs.PublicKey{pub}, proofs.ReasonSignatureInvalid},
	} {
		env, err := proofs.ParseDSSE(dsseEnvelope("t", payload, base64.StdEncoding, tc.sigs, tc.keyids))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = env.MatchKeys(named, tc.fallback)
		if proofs.Reason(err) != tc.reason {
			t.Fatalf("%s: %v, want reason %q", tc.name, err, tc.reason)
		}
		if err == nil {
			sigs, ids := sortedSigs(pub, pub2, s1, s2)
			if c := env.Canonical(); !bytes.Equal(c, dsseEnvelope("t", payload, base64.StdEncoding, sigs, ids)) {
				t.Fatalf("%s: canonical %s", tc.name, c)
			}
			if env.Verify(pub) != nil || env.Verify(pub2) != nil {
				t.Fatalf("%s: matched signatures do not verify", tc.name)
			}
		}
	}
}

// sortedSigs lists two signatures as the canonical form does, by key id.
func sortedSigs(a, b *proofs.PublicKey, sa, sb []byte) ([][]byte, []*string) {
	if a.ID > b.ID {
		a, b, sa, sb = b, a, sb, sa
	}
	return [][]byte{sa, sb}, []*string{str(a.ID), str(b.ID)}
}

// FuzzParseDSSE: whatever ParseDSSE accepts and MatchKeys matches has one
// canonical form that the log's strict parser accepts, stable and with the
// same payload; nothing panics and every refusal has a reason code.
func FuzzParseDSSE(f *testing.F) {
	_, pub := dsseKey(f, 0x11)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := proofs.ParseDSSE(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		if len(env.Signatures) == 0 || len(env.Signatures) > proofs.MaxSignatures {
			t.Fatalf("accepted %d signatures", len(env.Signatures))
		}
		payload := bytes.Clone(env.Payload)
		err = env.MatchKeys(func(id string) *proofs.PublicKey {
			if id == pub.ID {
				return pub
			}
			return nil
		}, []*proofs.PublicKey{pub})
		if err != nil {
			checkReason(t, err)
			return
		}
		if !bytes.Equal(env.Payload, payload) || env.Verify(pub) != nil {
			t.Fatalf("matched envelope changed or does not verify")
		}
		c := env.Canonical()
		env2, c2, err := proofs.ParseEnvelopeCanonical(c)
		if err != nil && len(c) <= proofs.MaxEnvelopeBytes {
			t.Fatalf("canonical form refused: %v\n%q", err, c)
		}
		if err == nil && (!bytes.Equal(c, c2) || !bytes.Equal(env2.Canonical(), c)) {
			t.Fatalf("canonical form not stable:\n%q\n%q", c, c2)
		}
	})
}

// TestWriteDSSESeeds regenerates the FuzzParseDSSE seeds when
// WARRANT_WRITE_SEEDS is set.
func TestWriteDSSESeeds(t *testing.T) {
	if os.Getenv("WARRANT_WRITE_SEEDS") == "" {
		t.Skip("set WARRANT_WRITE_SEEDS=1 to regenerate the seeds")
	}
	priv, pub := dsseKey(t, 0x11)
	payload := []byte(`{"x":"~~~?>"}`)
	sig := ed25519.Sign(priv, proofs.PAE("application/x-test", payload))
	seeds := map[string][]byte{
		"valid-canonical":          dsseEnvelope("application/x-test", payload, base64.StdEncoding, [][]byte{sig}, []*string{str(pub.ID)}),
		"valid-url-unpadded-nokey": dsseEnvelope("application/x-test", payload, base64.RawURLEncoding, [][]byte{sig}, []*string{nil}),
		"valid-foreign-keyid":      dsseEnvelope("application/x-test", payload, base64.URLEncoding, [][]byte{sig}, []*string{str("b3f1c0de")}),
		"valid-junk-cosignature":   dsseEnvelope("application/x-test", payload, base64.StdEncoding, [][]byte{sig, bytes.Repeat([]byte{1}, 64)}, []*string{str(pub.ID), str("sha256:00")}),
		"invalid-newline":          []byte(`{"payloadType":"t","payload":"QUJD\nREVG","signatures":[{"sig":"c2ln"}]}`),
		"invalid-mixed-alphabets":  []byte(`{"payloadType":"t","payload":"QUJ-D/EF","signatures":[{"sig":"c2ln"}]}`),
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join("testdata", "fuzz", "FuzzParseDSSE", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

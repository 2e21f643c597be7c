package proofs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// signTestToken signs claims as an access token with key under kid.
func signTestToken(t testing.TB, key *ecdsa.PrivateKey, hdr map[string]string, claims any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

func testTokenKey(t testing.TB) (*ecdsa.PrivateKey, *PublicKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub, err := ParsePublicKeyDER(der)
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

func TestParseAccessToken(t *testing.T) {
	key, pub := testTokenKey(t)
	other, opub := testTokenKey(t)
	claims := map[string]any{"iss": "https://warrant.example", "aud": "https://tickets.example/api", "jti": "j1", "exp": 2,
		"cnf": map[string]string{"jkt": "x"}, "warrant": map[string]any{"issuance_index": 7}}
	good := signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": pub.ID}, claims)
	c, k, err := ParseAccessToken(good, []*PublicKey{opub, pub})
	if err != nil || k != pub || c.JTI != "j1" || c.Warrant.IssuanceIndex != 7 || c.Cnf.JKT != "x" {
		t.Fatalf("a good token: %+v %v", c, err)
	}
	if _, _, err := ParseAccessToken(signTestToken(t, key, map[string]string{"typ": "application/AT+JWT", "alg": "ES256", "kid": pub.ID}, claims), []*PublicKey{pub}); err != nil {
		t.Errorf("typ as a media type (RFC 9068 section 4): %v", err)
	}
	parts := strings.Split(good, ".")
	for name, c := range map[string]struct {
		token, reason string
	}{
		"another key's signature": {signTestToken(t, other, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": pub.ID}, claims), ReasonSignatureInvalid},
		"unknown kid":             {signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": "sha256:00"}, claims), ReasonSignatureKeyUnknown},
		"alg none":                {signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "none", "kid": pub.ID}, claims), ReasonPayloadMalformed},
		"typ JWT":                 {signTestToken(t, key, map[string]string{"typ": "JWT", "alg": "ES256", "kid": pub.ID}, claims), ReasonPayloadMalformed},
		"no signature":            {parts[0] + "." + parts[1] + ".", ReasonSignatureInvalid},
		"padded base64":           {parts[0] + "=." + parts[1] + "." + parts[2], ReasonPayloadMalformed},
		"two segments":            {parts[0] + "." + parts[1], ReasonPayloadMalformed},
		"oversized":               {parts[0] + "." + strings.Repeat("A", MaxAccessTokenBytes) + "." + parts[2], ReasonPayloadMalformed},
		"crit":                    {signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": pub.ID, "crit": "x"}, claims), ReasonPayloadMalformed},
		"no kid":                  {signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "ES256"}, claims), ReasonPayloadMalformed},
		"aud an array":            {signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": pub.ID}, map[string]any{"aud": []string{"https://tickets.example/api"}}), ReasonPayloadMalformed},
		"claims not an object":    {signTestToken(t, key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": pub.ID}, []int{1}), ReasonPayloadMalformed},
	} {
		if _, _, err := ParseAccessToken(c.token, []*PublicKey{pub}); Reason(err) != c.reason {
			t.Errorf("%s: %v, want %s", name, err, c.reason)
		}
	}
}

// FuzzParseAccessToken: no input panics, and what parses verified under
// the one key. Seeds: testdata/fuzz/FuzzParseAccessToken/ and below.
func FuzzParseAccessToken(f *testing.F) {
	key, pub := testTokenKey(f)
	f.Add(signTestToken(f, key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": pub.ID}, map[string]any{"jti": "j"}))
	f.Add("a.b.c")
	f.Add("eyJ0eXAiOiJhdCtqd3QifQ..")
	f.Fuzz(func(t *testing.T, token string) {
		if _, k, err := ParseAccessToken(token, []*PublicKey{pub}); err == nil && k != pub {
			t.Fatalf("parsed under another key")
		}
	})
}

package dpop

import (
	"testing"
	"time"
)

// TestReplayCacheBounded: a proof id is accepted once while it could still
// be valid, and the cache never holds more than its bound.
func TestReplayCacheBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewReplayCache(2)
	until := now.Add(MaxAge + MaxAhead)
	if err := c.Add("a", until, now); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("a", until, now); err == nil {
		t.Fatal("a replayed jti was accepted")
	}
	if err := c.Add("b", until, now); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("c", until, now); err == nil {
		t.Fatal("a full cache took another jti")
	}
	later := until.Add(time.Second)
	if err := c.Add("c", later.Add(time.Minute), later); err != nil {
		t.Fatalf("expired entries were not dropped: %v", err)
	}
	if len(c.seen) > 2 {
		t.Fatalf("cache holds %d entries, bound 2", len(c.seen))
	}
}

// TestSameURL: RFC 9449's comparison of htu with the endpoint URL.
func TestSameURL(t *testing.T) {
	const want = "https://log.example/oauth2/token"
	for htu, ok := range map[string]bool{
		"https://log.example/oauth2/token":       true,
		"HTTPS://LOG.example/oauth2/token":       true,
		"https://log.example:443/oauth2/token":   true,
		"https://log.example/oauth2/token?x=1#f": true,
		"http://log.example/oauth2/token":        false,
		"https://log.example/oauth2/token/":      false,
		"https://log.example.evil/oauth2/token":  false,
		"https://log.example:8443/oauth2/token":  false,
		"https://user@log.example/oauth2/token":  false,
		"https://log.example/OAUTH2/token":       false,
		"":                                       false,
	} {
		if got := SameURL(htu, want); got != ok {
			t.Errorf("SameURL(%q) = %v, want %v", htu, got, ok)
		}
	}
}

// FuzzVerify: a hostile DPoP header is refused with an error, never a
// panic, and nothing but a valid proof is accepted.
func FuzzVerify(f *testing.F) {
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVkRFNBIiwiandrIjp7Imt0eSI6Ik9LUCIsImNydiI6IkVkMjU1MTkiLCJ4IjoiMTFxWUFZS3hDcmZWU183VHlXUUhPZzdoY3ZQYXBpTWxyd0lhYVBjSFVSbyJ9fQ.eyJqdGkiOiJ4IiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vbG9nLmV4YW1wbGUvb2F1dGgyL3Rva2VuIiwiaWF0IjoxNzAwMDAwMDAwfQ.AAAA")
	f.Add("e30.e30.")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.e30.")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := Verify(proof, Request{Method: "POST", URL: "https://log.example/oauth2/token"}, time.Unix(1_700_000_000, 0), NewReplayCache(16))
		if err == nil && p == nil {
			t.Fatal("no proof and no error")
		}
		if err == nil {
			t.Fatalf("an unsigned fuzz input verified: %q", proof)
		}
	})
}

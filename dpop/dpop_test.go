package dpop

import (
	"errors"
	"fmt"
	"math/rand/v2"
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
	var de *Error
	if err := c.Add("c", until, now); !errors.As(err, &de) || !de.Busy {
		t.Fatalf("a full cache: %v, want a Busy refusal", err)
	}
	if err := c.Add("a", until, now); !errors.As(err, &de) || de.Busy {
		t.Fatalf("a replay into a full cache: %v, want a replay refusal, not Busy", err)
	}
	later := until.Add(time.Second)
	if err := c.Add("c", later.Add(time.Minute), later); err != nil {
		t.Fatalf("expired entries were not dropped: %v", err)
	}
	if len(c.seen) > 2 {
		t.Fatalf("cache holds %d entries, bound 2", len(c.seen))
	}
}

// TestReplayCacheReference drives the cache and a naive reference (a map
// scanned in full when full, as the cache once was) with the same random
// adds, with expiries out of order and the clock moving on, and checks
// that they accept, refuse as replays and refuse as full the same adds,
// and hold the same number of proofs.
func TestReplayCacheReference(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		max := 1 + rng.IntN(16)
		c, ref := NewReplayCache(max), map[string]time.Time{}
		now := time.Unix(1_700_000_000, 0)
		for step := range 2000 {
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			key := fmt.Sprint(rng.IntN(40))
			until := now.Add(time.Duration(1+rng.IntN(120)) * time.Second)
			// The reference.
			want := "ok"
			if t0, ok := ref[key]; ok && now.Before(t0) {
				want = "replay"
			} else {
				if len(ref) >= max {
					for k, t0 := range ref {
						if !now.Before(t0) {
							delete(ref, k)
						}
					}
				}
				if len(ref) >= max {
					want = "busy"
				} else {
					ref[key] = until
				}
			}
			got := "ok"
			var de *Error
			if err := c.Add(key, until, now); errors.As(err, &de) && de.Busy {
				got = "busy"
			} else if err != nil {
				got = "replay"
			}
			if got != want {
				t.Fatalf("seed %d step %d: Add(%s) %s, reference %s", seed, step, key, got, want)
			}
			// The reference forgets lazily, the cache eagerly: compare
			// the proofs not yet expired.
			live := 0
			for _, t0 := range ref {
				if now.Before(t0) {
					live++
				}
			}
			if c.Len() != live || c.Len() > max || len(c.expiry) != c.Len() {
				t.Fatalf("seed %d step %d: cache holds %d (heap %d), reference %d live, bound %d", seed, step, c.Len(), len(c.expiry), live, max)
			}
		}
	}
}

// TestReplayCacheHorizon: once the cache has forgotten up to some time,
// a caller whose clock is behind cannot bring back a proof that may have
// been forgotten; and a full cache says how long until it has room.
func TestReplayCacheHorizon(t *testing.T) {
	iat := time.Unix(1_700_000_000, 0)
	window := MaxAge + MaxAhead
	c := NewReplayCache(1)
	if err := c.Add("a", iat.Add(window), iat); err != nil {
		t.Fatal(err)
	}
	var de *Error
	if err := c.Add("b", iat.Add(10*time.Second+window), iat.Add(10*time.Second)); !errors.As(err, &de) || !de.Busy || de.RetryAfter != window-10*time.Second {
		t.Fatalf("full: %v (%+v), want Busy with RetryAfter %v", err, de, window-10*time.Second)
	}
	// A caller at iat+71s forgets "a"; one whose clock reads iat+60s,
	// where "a" would still be in its window, must not be able to reuse it.
	if err := c.Add("c", iat.Add(71*time.Second+window), iat.Add(71*time.Second)); err != nil {
		t.Fatal(err)
	}
	c2 := NewReplayCache(4)
	c2.Add("a", iat.Add(window), iat)
	c2.Add("x", iat.Add(71*time.Second+window), iat.Add(71*time.Second))
	// Refused as the server's condition (its clock went back), not the
	// proof's fault.
	if err := c2.Add("a", iat.Add(window), iat.Add(60*time.Second)); !errors.As(err, &de) || !de.Busy || de.RetryAfter != time.Second {
		t.Fatalf("a forgotten proof with a clock behind: %v (%+v), want a Busy refusal", err, de)
	}
	if err := c2.Add("y", iat.Add(60*time.Second+window), iat.Add(60*time.Second)); err != nil {
		t.Fatalf("a fresh proof with a clock behind: %v", err)
	}
}

// TestReplayCacheZero: a cache of no room refuses everything as Busy
// rather than failing.
func TestReplayCacheZero(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var de *Error
	if err := NewReplayCache(0).Add("a", now.Add(time.Minute), now); !errors.As(err, &de) || !de.Busy {
		t.Fatalf("Add to a cache of 0: %v, want Busy", err)
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

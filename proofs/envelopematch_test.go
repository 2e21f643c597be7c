package proofs

import (
	"bytes"
	"testing"
)

// FuzzMatchesCanonical cross-checks the walking comparison against the
// reference one (build the canonical encoding, compare bytes) on the
// encoding itself and on every kind of near miss: one byte changed, cut
// short, extended.
func FuzzMatchesCanonical(f *testing.F) {
	f.Add("application/vnd.warrant.delegation+json", []byte(`{"a":1}`), "k1", []byte{1, 2, 3}, "k2", []byte{4}, 5, byte('x'))
	f.Add("t", []byte{}, "a<b", []byte{}, "a", []byte{0xff}, 0, byte('"'))
	f.Add("x\"y", bytes.Repeat([]byte{7}, 2000), "z", bytes.Repeat([]byte{9}, 64), "z", []byte{1}, 1500, byte('A'))
	f.Fuzz(func(t *testing.T, pt string, payload []byte, k1 string, s1 []byte, k2 string, s2 []byte, at int, b byte) {
		e := &Envelope{PayloadType: pt, Payload: payload, Signatures: []Signature{{KeyID: k1, Sig: s1}, {KeyID: k2, Sig: s2}}}
		c := e.Canonical()
		if !e.matchesCanonical(c) {
			t.Fatalf("the canonical encoding does not match itself: %s", c)
		}
		check := func(name string, d []byte) {
			if got, want := e.matchesCanonical(d), bytes.Equal(e.Canonical(), d); got != want {
				t.Fatalf("%s: matchesCanonical = %v, reference %v, for %q", name, got, want, d)
			}
		}
		if len(c) > 0 {
			i := (at%len(c) + len(c)) % len(c)
			d := bytes.Clone(c)
			d[i] = b
			check("one byte changed", d)
			check("cut short", c[:i])
		}
		check("extended", append(bytes.Clone(c), b))
		check("empty", nil)
	})
}

func TestMatchesCanonicalAllocates(t *testing.T) {
	e := &Envelope{PayloadType: "application/vnd.warrant.delegation+json", Payload: bytes.Repeat([]byte("p"), 22<<10), Signatures: []Signature{{KeyID: "k", Sig: make([]byte, 64)}}}
	c := e.Canonical()
	if n := testing.AllocsPerRun(10, func() { e.matchesCanonical(c) }); n != 0 {
		t.Errorf("matchesCanonical of a 22 KiB payload allocates %v times, want 0", n)
	}
}

func TestCanonicalBytes(t *testing.T) {
	e := &Envelope{PayloadType: "t", Payload: []byte("p"), Signatures: []Signature{{KeyID: "k", Sig: []byte{1}}}}
	c := e.Canonical()
	if got := e.CanonicalBytes(c); &got[0] != &c[0] {
		t.Error("CanonicalBytes copied an encoding that already was canonical")
	}
	spaced := append([]byte(" "), c...)
	if got := e.CanonicalBytes(spaced); !bytes.Equal(got, c) {
		t.Errorf("CanonicalBytes(non-canonical) = %s, want %s", got, c)
	}
}

package proofs

import (
	"bytes"
	"encoding/base64"
)

// matchesCanonical reports whether data is exactly e.Canonical(), without
// building it. Checking that an envelope was submitted in canonical form is
// on every append's path, and building the encoding to compare costs three
// copies of the payload (its base64 text, the JSON document, the buffer
// growth): for a batch of large envelopes that garbage, not the checking,
// set how often the collector ran and took a core from everyone else.
//
// It walks data alongside the encoding encoding/json would write. Strings
// that json.Marshal would escape, and signatures not in key-id order, take
// the slow path: build the encoding and compare.
func (e *Envelope) matchesCanonical(data []byte) bool {
	if !plainJSONString(e.PayloadType) {
		return string(e.Canonical()) == string(data)
	}
	for i, s := range e.Signatures {
		if !plainJSONString(s.KeyID) || i > 0 && e.Signatures[i-1].KeyID >= s.KeyID {
			return string(e.Canonical()) == string(data)
		}
	}
	m := canonicalMatcher{rest: data, ok: true}
	m.lit(`{"payloadType":"`)
	m.lit(e.PayloadType)
	m.lit(`","payload":"`)
	m.base64(e.Payload)
	m.lit(`","signatures":[`)
	for i, s := range e.Signatures {
		if i > 0 {
			m.lit(",")
		}
		m.lit(`{"keyid":"`)
		m.lit(s.KeyID)
		m.lit(`","sig":"`)
		m.base64(s.Sig)
		m.lit(`"}`)
	}
	m.lit("]}")
	return m.ok && len(m.rest) == 0
}

// canonicalMatcher consumes the expected encoding from rest; ok turns false
// at the first difference.
type canonicalMatcher struct {
	rest []byte
	ok   bool
}

func (m *canonicalMatcher) lit(s string) {
	if !m.ok || len(m.rest) < len(s) || string(m.rest[:len(s)]) != s {
		m.rest, m.ok = nil, false
		return
	}
	m.rest = m.rest[len(s):]
}

func (m *canonicalMatcher) litBytes(b []byte) {
	if !m.ok || !bytes.HasPrefix(m.rest, b) {
		m.rest, m.ok = nil, false
		return
	}
	m.rest = m.rest[len(b):]
}

// base64 matches the standard padded encoding of p, 768 bytes (a multiple
// of three, so the chunks' encodings concatenate to the whole one's) at a
// time through a buffer on the stack.
func (m *canonicalMatcher) base64(p []byte) {
	var buf [1024]byte
	for len(p) > 0 && m.ok {
		n := min(len(p), 768)
		k := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(buf[:k], p[:n])
		m.litBytes(buf[:k])
		p = p[n:]
	}
}

// plainJSONString reports whether json.Marshal writes s between its quotes
// unchanged: printable ASCII other than the quote, the backslash and the
// characters it escapes for HTML.
func plainJSONString(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// CanonicalBytes returns e's canonical encoding: data itself when data
// already is it (as it is for every envelope a conforming client sends),
// so the common case copies nothing; e.Canonical() otherwise.
func (e *Envelope) CanonicalBytes(data []byte) []byte {
	if e.matchesCanonical(data) {
		return data
	}
	return e.Canonical()
}

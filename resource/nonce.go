package resource

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// nonces are the resource server's DPoP nonces (RFC 9449 section 9): the
// HMAC of the current time window under a secret drawn at start, so they
// need no state and change every window. A proof may carry the current
// window's nonce or the previous one's, so a client that just got a nonce
// is not refused at a window's edge.
type nonces struct {
	secret [32]byte
	window time.Duration
}

func newNonces(window time.Duration) *nonces {
	n := &nonces{window: window}
	rand.Read(n.secret[:])
	return n
}

func (n *nonces) at(t time.Time) string {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], uint64(t.UnixNano()/int64(n.window)))
	m := hmac.New(sha256.New, n.secret[:])
	m.Write(w[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// valid reports whether nonce is the current or the previous window's.
func (n *nonces) valid(nonce string, now time.Time) bool {
	return hmac.Equal([]byte(nonce), []byte(n.at(now))) || hmac.Equal([]byte(nonce), []byte(n.at(now.Add(-n.window))))
}

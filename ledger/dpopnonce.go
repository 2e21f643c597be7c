package ledger

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Server-provided DPoP nonces (RFC 9449 section 8). A nonce is the MAC of
// a time slot under a key drawn when the process starts, so issuing and
// checking one needs no storage, and the nonces of the current and the
// previous slot are accepted: a nonce is good for one to two slots. A
// proof must then have been made after the client saw a nonce of this
// process, which bounds its freshness by the server's clock rather than
// the client's, and closes the replay, after a restart, of proofs seen by
// the previous process (whose jti cache died with it): its nonces never
// verify under the new key.

// DPoPNonceSlot is how long a nonce is issued for; it is accepted for up
// to twice as long.
const DPoPNonceSlot = time.Minute

// nonceSource issues and checks the nonces of one process.
type nonceSource struct {
	key [32]byte
	now func() time.Time
}

func newNonceSource(now func() time.Time) *nonceSource {
	n := &nonceSource{now: now}
	rand.Read(n.key[:])
	return n
}

func (n *nonceSource) at(slot int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(slot))
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

func (n *nonceSource) slot() int64 { return n.now().Unix() / int64(DPoPNonceSlot/time.Second) }

// current is the nonce to give clients now.
func (n *nonceSource) current() string { return n.at(n.slot()) }

// valid reports whether s is a nonce of this process of the current or
// the previous slot.
func (n *nonceSource) valid(s string) bool {
	cur := n.slot()
	ok := subtle.ConstantTimeCompare([]byte(s), []byte(n.at(cur))) == 1
	return subtle.ConstantTimeCompare([]byte(s), []byte(n.at(cur-1))) == 1 || ok
}

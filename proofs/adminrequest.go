package proofs

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An admin request authorises one administrative HTTP request (today
// GET /backup on the main listener) with an admin key given to serve. It
// travels in one header:
//
//	Authorization: Warrant-Admin <key id> <unix seconds> <nonce> <signature>
//
// The signature is a DSSE signature (over PAE) with payload type
// AdminRequestPayloadType of AdminRequestMessage: the method, the path,
// the log's origin, the time and the nonce. Binding the origin and the
// path stops a signature made for one log or endpoint being used for
// another; the time window and the nonce stop replays. Server and client
// both build the message here, so they cannot disagree on it.
const (
	// AdminAuthScheme is the Authorization scheme of admin requests.
	AdminAuthScheme = "Warrant-Admin"
	// AdminRequestPayloadType is the DSSE payload type signed.
	AdminRequestPayloadType = "application/vnd.warrant.admin-request.v1"
	// AdminRequestWindow is how far an admin request's time may be from
	// the server's clock, either way.
	AdminRequestWindow = time.Minute
	// maxAdminAuthorization bounds the header (a P-256 signature in base64
	// is under 100 bytes).
	maxAdminAuthorization = 512
)

// AdminAuthorization is a parsed admin request header.
type AdminAuthorization struct {
	KeyID     string
	Time      time.Time
	Nonce     string
	Signature []byte
}

// AdminRequestMessage is the payload an admin key signs for one request.
func AdminRequestMessage(method, path, origin string, t time.Time, nonce string) []byte {
	return fmt.Appendf(nil, "%s %s\n%s\n%d\n%s\n", method, path, origin, t.Unix(), nonce)
}

// FormatAdminAuthorization is the Authorization header value for a.
func FormatAdminAuthorization(a *AdminAuthorization) string {
	return fmt.Sprintf("%s %s %d %s %s", AdminAuthScheme, a.KeyID, a.Time.Unix(), a.Nonce, base64.StdEncoding.EncodeToString(a.Signature))
}

// ParseAdminAuthorization parses an Authorization header value strictly:
// the scheme, a key id as written by KeyID, decimal seconds without a
// sign or leading zeros, a nonce of 32 to 128 lowercase hex digits, and a
// signature in canonical standard base64, separated by single spaces.
// Errors have reason ReasonAdminAuth.
func ParseAdminAuthorization(h string) (*AdminAuthorization, error) {
	if len(h) > maxAdminAuthorization {
		return nil, Errorf(ReasonAdminAuth, "authorization header is %d bytes, limit %d", len(h), maxAdminAuthorization)
	}
	f := strings.Split(h, " ")
	if len(f) != 5 || f[0] != AdminAuthScheme {
		return nil, Errorf(ReasonAdminAuth, "authorization is not %q followed by key id, time, nonce and signature", AdminAuthScheme)
	}
	a := &AdminAuthorization{KeyID: f[1], Nonce: f[3]}
	if !isKeyID(a.KeyID) {
		return nil, Errorf(ReasonAdminAuth, "key id %q is not sha256:<64 lowercase hex digits>", a.KeyID)
	}
	secs, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || secs < 0 || strconv.FormatInt(secs, 10) != f[2] {
		return nil, Errorf(ReasonAdminAuth, "time %q is not decimal Unix seconds", f[2])
	}
	a.Time = time.Unix(secs, 0)
	if len(a.Nonce) < 32 || len(a.Nonce) > 128 || !isLowerHex(a.Nonce) {
		return nil, Errorf(ReasonAdminAuth, "nonce is not 32 to 128 lowercase hex digits")
	}
	a.Signature, err = base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(a.Signature) == 0 || base64.StdEncoding.EncodeToString(a.Signature) != f[4] {
		return nil, Errorf(ReasonAdminAuth, "signature is not canonical standard base64")
	}
	return a, nil
}

func isKeyID(s string) bool {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(hexPart) == 64 && isLowerHex(hexPart)
}

func isLowerHex(s string) bool {
	if _, err := hex.DecodeString(s); err != nil {
		return false
	}
	return strings.ToLower(s) == s
}

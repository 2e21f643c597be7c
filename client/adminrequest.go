package client

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// AuthorizeAdmin signs req with s, an admin key of the server whose log
// origin is origin, by setting its Authorization header (see
// proofs.ParseAdminAuthorization). The signature covers the method, the
// path, the origin, now and a fresh nonce, so it opens this one request,
// on this one log, once, within proofs.AdminRequestWindow of now.
func (s *Signer) AuthorizeAdmin(req *http.Request, origin string, now time.Time) error {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return err
	}
	a := &proofs.AdminAuthorization{KeyID: s.KeyID(), Time: now.Truncate(time.Second), Nonce: hex.EncodeToString(n[:])}
	sig, err := s.sign(proofs.AdminRequestPayloadType, proofs.AdminRequestMessage(req.Method, req.URL.Path, origin, a.Time, a.Nonce))
	if err != nil {
		return err
	}
	a.Signature = sig
	req.Header.Set("Authorization", proofs.FormatAdminAuthorization(a))
	return nil
}

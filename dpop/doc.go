// Package dpop makes and checks DPoP proofs (RFC 9449): the proof of
// possession a client sends with each request to bind an access token to
// its key. The token endpoint, the introspection endpoint and the
// resource-server middleware all check proofs with Verify, and the Go SDK
// makes them with NewProof, so one reading of the RFC serves every side.
//
// A proof is a compact JWS with typ dpop+jwt, signed EdDSA (Ed25519) or
// ES256 (P-256) by the public key in its jwk header, naming the request's
// method and URL, made within a short window, never seen before (its
// jti), and, when the server asks for them, carrying the server's nonce
// and the hash of the access token it accompanies (ath). Nothing here
// knows agents or tokens: the caller maps the proof's key to whatever it
// trusts.
package dpop

// Package accesstoken checks, as a resource server does, a request that
// carries one of warrant's access tokens: a JWT (RFC 9068) signed by the
// log's token key, bound by cnf.jkt to the key of a DPoP proof (RFC 9449)
// that accompanies it and names the request's method and URL.
//
// Verifier.Verify takes the request's Authorization and DPoP header
// values, the resource it serves (the token's required aud) and the scopes
// the route requires, and either returns the token's claims or a *Failure
// that says which RFC 6750/9449 error to answer with: 401 invalid_token or
// invalid_dpop_proof, 403 insufficient_scope, or a bare 401 challenge when
// no credentials came at all. The token's signature and header are read by
// proofs.ParseAccessToken, as introspection and `warrant token inspect`
// read them; this package adds what a resource server checks at the
// moment of the request. The keys come from a KeySource: the log's
// JWKS over HTTP, cached and re-fetched when an unknown kid appears (a
// rotation), or a fixed set.
//
// It is internal because it is one of two readings of the same checks:
// the resource-server middleware package does them for net/http, and the
// two are to become one package. Until then `warrant authz` (package
// authz) is its only user.
package accesstoken

// Package resource checks warrant access tokens where they are spent: at
// a resource server (an API, an MCP server) that a delegated agent calls.
//
// A Verifier checks, for each request, everything a warrant token and its
// DPoP proof (RFC 9449) say: the JWT access token (RFC 9068, typ at+jwt,
// ES256 only) against the issuer's JWKS, fetched once and refetched when a
// token names a key it does not hold (a rotation), at most once per
// interval; its iss, its aud (this resource's URI, exactly), its exp, nbf
// and iat against an injected clock with a small skew; the proof with
// dpop.Verify (this request's method and URL, the token's hash in ath, a
// jti never seen before) and its key against the token's cnf.jkt; the
// scopes a route requires; and, for the routes that ask for it, a live
// answer from the issuer's introspection endpoint (RFC 7662), so that a
// revocation up the token's chain stops the call before the token expires.
//
// Protect wraps a handler; a refusal is the RFC 6750 / RFC 9449 answer a
// client knows how to read (a WWW-Authenticate DPoP challenge with the
// error, the algorithms accepted and, when configured, the RFC 9728
// resource_metadata URL). The verified claims are in the request's context
// (FromContext) for the handler. Check runs the same checks on a request
// described by its parts, for a server that holds no *http.Request:
// `warrant authz`, the Envoy external-authorization server (package
// authz), is one, so there is one implementation of the checks.
//
// Nothing here trusts the server's log or speaks its RPCs: a resource
// server needs only the issuer's URL, its own URI and, for introspection,
// a registered agent key of its own.
package resource

package accesstoken

import (
	"fmt"
	"strings"

	"github.com/warrantlog/warrant/dpop"
)

// OAuth error codes a resource server answers with (RFC 6750 section 3.1,
// RFC 9449 section 7.1).
const (
	ErrorInvalidRequest    = "invalid_request"
	ErrorInvalidToken      = "invalid_token"
	ErrorInvalidDPoPProof  = "invalid_dpop_proof"
	ErrorInsufficientScope = "insufficient_scope"
)

// Failure is a request the token checks refuse: the HTTP status and the
// error of the DPoP WWW-Authenticate challenge to answer with.
type Failure struct {
	// Status is 400 (invalid_request), 401 (no credentials, invalid_token,
	// invalid_dpop_proof) or 403 (insufficient_scope).
	Status int
	// Code is the OAuth error code; empty for a request that carried no
	// credentials at all, which gets a bare challenge (RFC 6750 section
	// 3.1).
	Code        string
	Description string
	// Scope is the scopes the route requires, for insufficient_scope.
	Scope []string
}

func (f *Failure) Error() string {
	if f.Code == "" {
		return f.Description
	}
	return f.Code + ": " + f.Description
}

func fail(status int, code, format string, args ...any) *Failure {
	return &Failure{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// WWWAuthenticate is the challenge of the answer: the DPoP scheme with the
// error, its description, the scopes required and the proof algorithms
// accepted.
func (f *Failure) WWWAuthenticate() string {
	var b strings.Builder
	b.WriteString("DPoP ")
	if f.Code != "" {
		fmt.Fprintf(&b, "error=%s, ", quote(f.Code))
		if f.Description != "" {
			fmt.Fprintf(&b, "error_description=%s, ", quote(f.Description))
		}
	}
	if len(f.Scope) > 0 {
		fmt.Fprintf(&b, "scope=%s, ", quote(strings.Join(f.Scope, " ")))
	}
	fmt.Fprintf(&b, "algs=%s", quote(dpop.AlgsParam))
	return b.String()
}

// quote makes an RFC 9110 quoted-string of s, whose characters outside
// printable ASCII, quotes and backslashes are replaced (RFC 6750 allows
// no others in error_description).
func quote(s string) string {
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s) + `"`
}

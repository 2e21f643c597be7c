package resource

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// OAuth error codes a refusal carries (RFC 6750 section 3.1, RFC 9449
// sections 7.1 and 8).
const (
	ErrInvalidRequest    = "invalid_request"
	ErrInvalidToken      = "invalid_token"
	ErrInvalidDPoPProof  = "invalid_dpop_proof"
	ErrUseDPoPNonce      = "use_dpop_nonce"
	ErrInsufficientScope = "insufficient_scope"
	// ErrUnavailable is no OAuth code: the introspection a route requires
	// could not be had, and the route fails closed (503).
	ErrUnavailable = "temporarily_unavailable"
)

// Error is a refused request: the HTTP status and OAuth error code of the
// answer, and its description.
type Error struct {
	Status      int
	Code        string
	Description string
	// Scopes are the scopes the route requires (insufficient_scope).
	Scopes []string
	// Nonce is a fresh DPoP-Nonce to retry with (use_dpop_nonce).
	Nonce string
	// RetryAfter, on a 503, is when to retry (the Retry-After header,
	// whole seconds, at least 1).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Description
	}
	return e.Code + ": " + e.Description
}

func refuse(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidToken(format string, args ...any) *Error {
	return refuse(http.StatusUnauthorized, ErrInvalidToken, format, args...)
}

// Challenge is the WWW-Authenticate value of e: a DPoP challenge (the only
// scheme accepted) with the algorithms a proof may use and, when set, the
// resource's RFC 9728 metadata URL.
func (e *Error) Challenge(resourceMetadata string) string {
	params := []string{}
	// A request without credentials gets a challenge without an error
	// code (RFC 6750 section 3.1).
	if e.Code != "" {
		params = append(params, fmt.Sprintf(`error="%s"`, e.Code))
		if e.Description != "" {
			params = append(params, fmt.Sprintf(`error_description="%s"`, quotable(e.Description)))
		}
	}
	if len(e.Scopes) > 0 {
		params = append(params, fmt.Sprintf(`scope="%s"`, quotable(strings.Join(e.Scopes, " "))))
	}
	if resourceMetadata != "" {
		params = append(params, fmt.Sprintf(`resource_metadata="%s"`, quotable(resourceMetadata)))
	}
	params = append(params, fmt.Sprintf(`algs="%s"`, dpop.AlgsParam))
	return "DPoP " + strings.Join(params, ", ")
}

// quotable makes s safe inside a quoted-string: RFC 6750 allows neither
// '"' nor '\' in error_description, and no control characters.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"' || r == '\\':
			return '\''
		case r < 0x20 || r > 0x7e:
			return ' '
		}
		return r
	}, s)
}

// WriteError answers a refused request: the status, a WWW-Authenticate
// DPoP challenge (for 400, 401 and 403), a DPoP-Nonce when the client
// must retry with one, and the error as JSON in the body. An error that
// is not an *Error is answered 500 without detail.
func (v *Verifier) WriteError(w http.ResponseWriter, err error) {
	e, ok := err.(*Error)
	if !ok {
		v.log.Error("resource: checking a request failed", "err", err)
		e = refuse(http.StatusInternalServerError, "server_error", "checking the request failed")
	}
	h := w.Header()
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		h.Set("WWW-Authenticate", e.Challenge(v.cfg.ResourceMetadata))
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.FormatInt(max(1, int64((e.RetryAfter+time.Second-1)/time.Second)), 10))
	}
	if e.Nonce != "" {
		h.Set("DPoP-Nonce", e.Nonce)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	body := struct {
		Error       string `json:"error,omitempty"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description}
	json.NewEncoder(w).Encode(body)
}

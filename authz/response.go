package authz

import (
	"encoding/json"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/warrantlog/warrant/resource"
)

// Envoy's answers: a denial the client sees, or an allowance with the
// headers the upstream sees.

// grpcCode is the CheckResponse status of an HTTP denial.
func grpcCode(status int) codes.Code {
	switch status {
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusBadRequest:
		return codes.InvalidArgument
	}
	return codes.Unavailable
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

// denied is the answer to a refused request: its status, the DPoP
// challenge (none for a request refused before its credentials were
// read, or for an unavailable issuer) and an OAuth error body.
func denied(f *resource.Error) *authv3.CheckResponse {
	body, _ := json.Marshal(struct {
		// No error for a request without credentials (RFC 6750
		// section 3.1), as resource.Verifier answers.
		Error       string `json:"error,omitempty"`
		Description string `json:"error_description,omitempty"`
	}{f.Code, f.Description})
	hs := []*corev3.HeaderValueOption{header("content-type", "application/json"), header("cache-control", "no-store")}
	if f.Status == http.StatusUnauthorized || f.Code == resource.ErrInsufficientScope {
		hs = append(hs, header("www-authenticate", f.Challenge("")))
	}
	if f.Nonce != "" {
		hs = append(hs, header("dpop-nonce", f.Nonce))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode(f.Status)), Message: f.Error()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(f.Status)},
			Headers: hs,
			Body:    string(body),
		}},
	}
}

// allowed is the answer to an authorized request: the verified client,
// subject, scopes and delegation as headers for the upstream; a header a
// token has no value for is removed, so that a client cannot supply it.
func allowed(c *resource.Claims) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{}
	var delegation string
	if c.Warrant != nil {
		delegation = c.Warrant.Delegation
	}
	for _, kv := range [][2]string{
		{HeaderClientID, c.ClientID},
		{HeaderSubject, c.Subject},
		{HeaderScope, strings.Join(c.Scopes, " ")},
		{HeaderDelegation, delegation},
	} {
		if kv[1] == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, kv[0])
			continue
		}
		ok.Headers = append(ok.Headers, header(kv[0], kv[1]))
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

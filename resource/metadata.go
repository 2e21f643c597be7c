package resource

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/warrantlog/warrant/dpop"
)

// MetadataPath is where RFC 9728 puts a protected resource's metadata:
// this path, followed by the resource URI's path when it has one.
const MetadataPath = "/.well-known/oauth-protected-resource"

// Metadata is a protected resource's metadata (RFC 9728 section 2): what
// an MCP client reads to find the authorization server of a resource that
// answered 401.
type Metadata struct {
	Resource                      string   `json:"resource"`
	AuthorizationServers          []string `json:"authorization_servers"`
	JWKSURI                       string   `json:"jwks_uri,omitempty"`
	ScopesSupported               []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported        []string `json:"bearer_methods_supported"`
	ResourceName                  string   `json:"resource_name,omitempty"`
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported"`
	DPoPBoundAccessTokensRequired bool     `json:"dpop_bound_access_tokens_required"`
}

// Metadata is this resource's RFC 9728 metadata, naming the issuer as its
// authorization server and the scopes given.
func (v *Verifier) Metadata(name string, scopes ...string) *Metadata {
	return &Metadata{
		Resource:                      v.cfg.Resource,
		AuthorizationServers:          []string{v.cfg.Issuer},
		ScopesSupported:               scopes,
		BearerMethodsSupported:        []string{"header"},
		ResourceName:                  name,
		DPoPSigningAlgValuesSupported: dpop.Algs,
		DPoPBoundAccessTokensRequired: true,
	}
}

// MetadataURL is where RFC 9728 section 3.1 puts the metadata of the
// resource URI: the well-known path inserted between its host and its
// path.
func MetadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", err
	}
	u.Path = MetadataPath + strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u.String(), nil
}

// ServeHTTP serves m as JSON (GET only).
func (m *Metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	json.NewEncoder(w).Encode(m)
}

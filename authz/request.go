package authz

import (
	"path"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// Reading Envoy's description of a request.

// normalized reports whether p has no dot segments and no empty segments
// (a trailing slash aside).
func normalized(p string) bool {
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// headerValues returns a header's values: from header_map, one per line
// as received (encode_raw_headers), or from headers, where Envoy joins
// repeated lines with commas. Neither a token nor a DPoP proof holds a
// comma, so a comma means more than one.
func headerValues(h *authv3.AttributeContext_HttpRequest, name string) []string {
	var out []string
	if hm := h.GetHeaderMap(); hm != nil {
		for _, hv := range hm.GetHeaders() {
			if strings.EqualFold(hv.GetKey(), name) {
				v := hv.GetValue()
				if len(hv.GetRawValue()) > 0 {
					v = string(hv.GetRawValue())
				}
				out = append(out, strings.Split(v, ",")...)
			}
		}
		return out
	}
	if v, ok := h.GetHeaders()[name]; ok {
		out = strings.Split(v, ",")
	}
	return out
}

package authz_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// No Envoy binary is at hand (Debian has none), so the documented Envoy
// configurations are checked against Envoy's v3 API as go-control-plane
// generates it: every field known, every typed_config a known message,
// each message passing Envoy's own validation rules (protoc-gen-validate),
// and the settings the docs rely on present.

const envoyDir = "../examples/envoy"

// loadBootstrap reads a YAML Envoy bootstrap strictly: an unknown field
// anywhere, including inside a typed_config, is an error.
func loadBootstrap(t *testing.T, name string) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(envoyDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &bs); err != nil {
		t.Fatalf("%s is not an Envoy v3 bootstrap: %v", name, err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	validateAnys(t, name, bs.ProtoReflect())
	return &bs
}

// validateAnys unpacks every Any under m and runs its validation rules.
func validateAnys(t *testing.T, name string, m protoreflect.Message) {
	t.Helper()
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: typed_config %s: %v", name, a.GetTypeUrl(), err)
		}
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Fatalf("%s: %s: %v", name, a.GetTypeUrl(), err)
			}
		}
		validateAnys(t, name, inner.ProtoReflect())
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				validateAnys(t, name, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				validateAnys(t, name, mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			validateAnys(t, name, v.Message())
		}
		return true
	})
}

// httpFilters returns the first listener's HTTP connection manager.
func httpManager(t *testing.T, bs *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	f := bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	return &hcm
}

func filterConfig(t *testing.T, hcm *hcmv3.HttpConnectionManager, name string, into proto.Message) {
	t.Helper()
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == name {
			if err := f.GetTypedConfig().UnmarshalTo(into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s filter", name)
}

// TestEnvoyExtAuthzConfig: the ext_authz configuration asks warrant authz
// over gRPC (v3), denies when it is unreachable, normalizes paths before
// routes are matched, and runs the router after the check.
func TestEnvoyExtAuthzConfig(t *testing.T) {
	bs := loadBootstrap(t, "ext_authz.yaml")
	hcm := httpManager(t, bs)
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() ||
		hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Error("paths are not normalized before ext_authz sees them")
	}
	var ea extauthzv3.ExtAuthz
	filterConfig(t, hcm, "envoy.filters.http.ext_authz", &ea)
	if ea.GetFailureModeAllow() || ea.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "warrant_authz" || ea.GetTransportApiVersion().String() != "V3" {
		t.Errorf("ext_authz %v", &ea)
	}
	if fs := hcm.GetHttpFilters(); fs[len(fs)-1].GetName() != "envoy.filters.http.router" || fs[0].GetName() != "envoy.filters.http.ext_authz" {
		t.Error("ext_authz must run first, the router last")
	}
	var found bool
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() != "warrant_authz" {
			continue
		}
		found = true
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 8752 {
			t.Errorf("warrant_authz cluster at %s:%d, not warrant authz's default 127.0.0.1:8752", sa.GetAddress(), sa.GetPortValue())
		}
		if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
			t.Error("the warrant_authz cluster does not speak HTTP/2 (gRPC)")
		}
	}
	if !found {
		t.Error("no warrant_authz cluster")
	}
}

// TestEnvoyJWTAuthnConfig: the jwt_authn configuration reads the token from
// the DPoP scheme and checks the log's issuer and JWKS for the API's
// audience.
func TestEnvoyJWTAuthnConfig(t *testing.T) {
	bs := loadBootstrap(t, "jwt_authn.yaml")
	var ja jwtauthnv3.JwtAuthentication
	filterConfig(t, httpManager(t, bs), "envoy.filters.http.jwt_authn", &ja)
	p := ja.GetProviders()["warrant"]
	if p == nil || p.GetIssuer() == "" || len(p.GetAudiences()) != 1 || !strings.HasSuffix(p.GetRemoteJwks().GetHttpUri().GetUri(), "/.well-known/jwks.json") {
		t.Fatalf("provider %v", p)
	}
	if h := p.GetFromHeaders(); len(h) != 1 || h[0].GetName() != "Authorization" || h[0].GetValuePrefix() != "DPoP " {
		t.Errorf("the token is not read from Authorization: DPoP: %v", h)
	}
}

// TestOperatingQuotesEnvoyConfigs: each YAML block of docs/operating.md
// is an excerpt of one of the checked files, so the docs cannot drift
// from what is checked.
func TestOperatingQuotesEnvoyConfigs(t *testing.T) {
	doc, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, n := range []string{"ext_authz.yaml", "jwt_authn.yaml"} {
		b, err := os.ReadFile(filepath.Join(envoyDir, n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, string(b))
	}
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/operating.md has %d YAML blocks, want the ext_authz and jwt_authn ones", len(blocks))
	}
	for _, b := range blocks {
		quoted := false
		for _, f := range files {
			quoted = quoted || strings.Contains(f, b[1])
		}
		if !quoted {
			t.Errorf("docs/operating.md's YAML block is not an excerpt of examples/envoy/:\n%s", b[1])
		}
	}
}

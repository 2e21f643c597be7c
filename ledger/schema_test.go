package ledger

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/proofs"
)

// TestPayloadSchemasDocumented keeps api/warrant/v1/payloads.proto, which
// documents the signed and logged JSON documents field by field, in step
// with the Go types that encode them: the same JSON names, in the same
// (canonical) order.
func TestPayloadSchemasDocumented(t *testing.T) {
	cases := []struct {
		doc proto.Message
		typ any
	}{
		{&warrantv1.Delegation{}, proofs.Delegation{}},
		{&warrantv1.KeyBinding{}, proofs.KeyBinding{}},
		{&warrantv1.Revocation{}, proofs.Revocation{}},
		{&warrantv1.PolicyUpdate{}, proofs.PolicyUpdate{}},
		{&warrantv1.Leaf{}, proofs.Leaf{}},
		{&warrantv1.Decision{}, proofs.Decision{}},
		{&warrantv1.LogConfig{}, proofs.LogConfig{}},
		{&warrantv1.ConfigKey{}, proofs.ConfigKey{}},
		{&warrantv1.Limits{}, proofs.Limits{}},
		{&warrantv1.RuleLimits{}, proofs.RuleLimits{}},
		{&warrantv1.LogPolicy{}, proofs.LogPolicy{}},
		{&warrantv1.TokenIssuance{}, proofs.TokenIssuance{}},
	}
	for _, c := range cases {
		var doc []string
		fields := c.doc.ProtoReflect().Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			doc = append(doc, fields.Get(i).JSONName())
		}
		var code []string
		rt := reflect.TypeOf(c.typ)
		for i := 0; i < rt.NumField(); i++ {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			code = append(code, name)
		}
		if !slices.Equal(doc, code) {
			t.Errorf("%s documents %v, but %s encodes %v", c.doc.ProtoReflect().Descriptor().FullName(), doc, rt, code)
		}
	}
}

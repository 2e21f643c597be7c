package proofs_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// tokenFixture returns the rule fixture with a token key in a
// configuration, and the worker's key thumbprint.
func tokenFixture(t *testing.T) (*ruleFixture, *proofs.LogConfig, string) {
	t.Helper()
	f := newRuleFixture(t, ruleBase)
	tk := newEd25519Signer(t)
	cfg := &proofs.LogConfig{Origin: "example.org/log", TokenKeys: []proofs.ConfigKey{{ID: proofs.KeyID(tk.der), PublicKey: tk.der}}}
	k, err := proofs.ParsePublicKeyDER(f.keys[agWorker].der)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := proofs.JWKThumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	return f, cfg, jkt
}

// TestDecideToken checks each rule of a token exchange against the
// fixture's d-b (planner → worker, destinations crm, scopes read and
// write), one rule broken per case.
func TestDecideToken(t *testing.T) {
	pol := loadDefaultPolicy(t)
	at := ruleBase.Add(time.Minute)
	cases := []struct {
		name string
		mod  func(f *ruleFixture, r *proofs.TokenIssuance, t *time.Time, pol **proofs.Policy)
		want []string
	}{
		{"accepted", nil, nil},
		{"unknown delegation", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.Delegation, r.DelegationIndex = "d-nope", 0
		}, []string{proofs.ReasonDelegationNotFound}},
		{"not the delegate", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.Requester = agReviewer
		}, []string{proofs.ReasonTokenNotDelegate}},
		{"delegation revoked", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			f.st.revoked["d-b"] = true
		}, []string{proofs.ReasonDelegationRevoked}},
		{"ancestor revoked", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			f.st.revoked["d-root"] = true
		}, []string{proofs.ReasonDelegationRevoked}},
		{"expired", func(f *ruleFixture, r *proofs.TokenIssuance, tt *time.Time, _ **proofs.Policy) {
			*tt = ruleBase.Add(20 * time.Minute)
			r.IssuedAt, r.ExpiresAt = ts(*tt), ts(tt.Add(time.Minute))
		}, []string{proofs.ReasonDelegationExpired}},
		{"not yet valid", func(f *ruleFixture, r *proofs.TokenIssuance, tt *time.Time, _ **proofs.Policy) {
			*tt = ruleBase.Add(-2 * time.Minute)
			r.IssuedAt, r.ExpiresAt = ts(*tt), ts(tt.Add(time.Minute))
		}, []string{proofs.ReasonDelegationNotYetValid}},
		{"issuer's binding withdrawn", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			f.st.bind(t, &proofs.KeyBinding{Agent: agPlanner, PublicKey: f.keys[agPlanner].der, Tier: proofs.TierExecute, Revoked: true, IssuedAt: "2020-01-01T00:00:00Z", Nonce: "withdraw-planner"})
		}, []string{proofs.ReasonBindingNotInForce}},
		{"audience outside destinations", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.Audience = "jira"
		}, []string{proofs.ReasonAudienceNotAllowed}},
		{"scope widened", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.Scopes = []string{"tickets:admin", "tickets:read"}
		}, []string{proofs.ReasonScopeWidened}},
		{"lifetime over the bound", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.ExpiresAt = ts(at.Add(proofs.MaxTokenLifetime + time.Second))
		}, []string{proofs.ReasonTokenRecordInvalid}},
		{"outlives the delegation", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.ExpiresAt = ts(ruleBase.Add(15*time.Minute + time.Second))
		}, []string{proofs.ReasonTokenRecordInvalid}},
		{"wrong delegation index", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.DelegationIndex++
		}, []string{proofs.ReasonTokenRecordInvalid}},
		{"unknown signing key", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.KeyID = "sha256:00"
		}, []string{proofs.ReasonTokenRecordInvalid}},
		{"issued away from log time", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, _ **proofs.Policy) {
			r.IssuedAt = ts(at.Add(-2 * time.Minute))
		}, []string{proofs.ReasonTokenRecordInvalid}},
		{"policy without a permit", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, p **proofs.Policy) {
			*p = mustParsePolicy(t, `@id("only-delegation") permit (principal, action == Action::"delegate", resource);`)
		}, []string{proofs.ReasonPolicyForbid}},
		{"policy forbids long restricted tokens", func(f *ruleFixture, r *proofs.TokenIssuance, _ *time.Time, p **proofs.Policy) {
			f.st.dels["d-b"].D.DataClasses = []string{"restricted"}
			*p = mustParsePolicy(t, `@id("allow") permit (principal, action == Action::"issue_token", resource);
@id("short") @reason("token_too_long") forbid (principal, action == Action::"issue_token", resource)
when { context.data_classes.contains("restricted") && context.lifetime_seconds > 60 };`)
		}, []string{"token_too_long"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, cfg, jkt := tokenFixture(t)
			tt := at
			r, err := proofs.NewTokenIssuance(f.st, "jti-1", agWorker, jkt, "d-b", "crm", nil, at, 5*time.Minute, cfg.TokenKeys[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Scopes, f.b.Scopes) || r.DelegationIndex != f.st.dels["d-b"].Index {
				t.Fatalf("NewTokenIssuance = %+v, want the delegation's scopes and index", r)
			}
			p := pol
			if c.mod != nil {
				c.mod(f, r, &tt, &p)
			}
			dec, err := proofs.DecideToken(f.st, r, tt, cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if dec.Outcome != proofs.OutcomeAccepted || dec.PolicyDigest != pol.Digest || !slices.Equal(dec.PolicyIDs, []string{"allow-token-issuance"}) {
					t.Fatalf("decision %+v, want accepted by allow-token-issuance", dec)
				}
				return
			}
			if dec.Outcome != proofs.OutcomeDenied || !slices.Equal(dec.Reasons, c.want) {
				t.Fatalf("decision %+v, want denied %v", dec, c.want)
			}
		})
	}
}

// TestNewTokenIssuanceClamps checks that a token never outlives its
// delegation nor MaxTokenLifetime.
func TestNewTokenIssuanceClamps(t *testing.T) {
	f, cfg, jkt := tokenFixture(t)
	at := ruleBase.Add(12 * time.Minute) // d-b expires at +15 min
	r, err := proofs.NewTokenIssuance(f.st, "jti-2", agWorker, jkt, "d-b", "crm", []string{"tickets:read"}, at, time.Hour, cfg.TokenKeys[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExpiresAt != ts(ruleBase.Add(15*time.Minute)) {
		t.Fatalf("expires_at %s, want the delegation's expiry", r.ExpiresAt)
	}
	dec, err := proofs.DecideToken(f.st, r, at, cfg, loadDefaultPolicy(t))
	if err != nil || dec.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("DecideToken = %+v, %v", dec, err)
	}
}

// TestJWKThumbprintRFC7638 checks the thumbprint against RFC 8037's
// example (appendix A.3): the Ed25519 key with
// x = 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo.
func TestJWKThumbprintRFC7638(t *testing.T) {
	// SPKI DER of that key.
	der := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00},
		0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
		0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a)
	k, err := proofs.ParsePublicKeyDER(der)
	if err != nil {
		t.Fatal(err)
	}
	got, err := proofs.JWKThumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("thumbprint %s, want %s (RFC 8037 A.3)", got, want)
	}
}

// TestParseTokenLeaf: a token leaf holds a record and a decision and
// nothing else, in canonical form; everything else is refused with its
// reason.
func TestParseTokenLeaf(t *testing.T) {
	rec := `{"jti":"jti-1","requester":"spiffe://example.org/agent/worker","jkt":"` + strings.Repeat("A", 43) +
		`","delegation":"d-b","delegation_index":7,"audience":"crm","scopes":["tickets:read"],"issued_at":"2020-06-01T10:01:00Z","expires_at":"2020-06-01T10:06:00Z","key_id":"sha256:0a"}`
	ok := `{"v":1,"kind":"token","log_time":"2020-06-01T10:01:00.000000000Z","token":` + rec + `,"decision":{"outcome":"accepted"}}`
	p, err := proofs.ParseLeaf([]byte(ok))
	if err != nil || p.Token == nil || p.Token.DelegationIndex != 7 || p.Actor() != agWorker {
		t.Fatalf("ParseLeaf(token) = %+v, %v", p, err)
	}
	if ev, err := p.Event(); err != nil || ev.Token != p.Token || ev.Env != nil {
		t.Fatalf("Event() = %+v, %v", ev, err)
	}
	for name, c := range map[string]struct{ leaf, reason string }{
		"no decision":           {strings.Replace(ok, `,"decision":{"outcome":"accepted"}`, "", 1), proofs.ReasonLeafMalformed},
		"no record":             {`{"v":1,"kind":"token","log_time":"2020-06-01T10:01:00.000000000Z","decision":{"outcome":"accepted"}}`, proofs.ReasonLeafMalformed},
		"accepted with reasons": {strings.Replace(ok, `{"outcome":"accepted"}`, `{"outcome":"accepted","reasons":["x"]}`, 1), proofs.ReasonLeafMalformed},
		"denied without":        {strings.Replace(ok, `{"outcome":"accepted"}`, `{"outcome":"denied"}`, 1), proofs.ReasonLeafMalformed},
		"with a policy":         {strings.Replace(ok, `"token":`, `"policy":{"text":"x"},"token":`, 1), proofs.ReasonLeafMalformed},
		"record in a config":    {strings.Replace(strings.Replace(ok, `"kind":"token"`, `"kind":"log_config"`, 1), `"token":`, `"config":{"origin":"o","limits":{"max_envelope_bytes":1,"max_leaf_bytes":1,"max_signatures":1,"max_list_items":1},"rules":{"lifetime_execute_seconds":1,"lifetime_draft_seconds":1,"lifetime_root_seconds":1,"max_depth":1}},"token":`, 1), proofs.ReasonLeafMalformed},
		"unknown member":        {strings.Replace(ok, `"jti":"jti-1"`, `"jti":"jti-1","token":"eyJ"`, 1), proofs.ReasonLeafMalformed},
		"members out of order":  {strings.Replace(ok, `"jti":"jti-1","requester":"spiffe://example.org/agent/worker"`, `"requester":"spiffe://example.org/agent/worker","jti":"jti-1"`, 1), proofs.ReasonLeafNonCanonical},
		"scopes unsorted":       {strings.Replace(ok, `["tickets:read"]`, `["tickets:write","tickets:read"]`, 1), proofs.ReasonPayloadNonCanonical},
		"short jkt":             {strings.Replace(ok, strings.Repeat("A", 43), "AAAA", 1), proofs.ReasonPayloadMalformed},
		"audience upper case":   {strings.Replace(ok, `"audience":"crm"`, `"audience":"CRM"`, 1), proofs.ReasonCaseNonCanonical},
		"reserved delegation":   {strings.Replace(ok, `"delegation":"d-b"`, `"delegation":"sha256:ab"`, 1), proofs.ReasonIDReserved},
		"time with fraction":    {strings.Replace(ok, `"2020-06-01T10:06:00Z"`, `"2020-06-01T10:06:00.5Z"`, 1), proofs.ReasonTimeMalformed},
	} {
		if _, err := proofs.ParseLeaf([]byte(c.leaf)); proofs.Reason(err) != c.reason {
			t.Errorf("%s: %v, want %s", name, err, c.reason)
		}
	}
}

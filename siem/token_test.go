package siem

import (
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// tokenEvents are an accepted and a denied token exchange.
func tokenEvents(t *testing.T) []*Event {
	t.Helper()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(jti string) *proofs.TokenIssuance {
		return &proofs.TokenIssuance{
			JTI: jti, Requester: fmtWorker, JKT: strings.Repeat("A", 43), Delegation: "d-child-2", DelegationIndex: 8,
			Audience: "https://tickets.example/api", Scopes: []string{"tickets:read"},
			IssuedAt: proofs.FormatTime(base), ExpiresAt: proofs.FormatTime(base.Add(5 * time.Minute)), KeyID: "sha256:0a",
		}
	}
	ok := &proofs.Leaf{Kind: proofs.KindToken, LogTime: proofs.FormatLogTime(base), Token: rec("jti-1"),
		Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted, PolicyDigest: "sha256:00", PolicyIDs: []string{"allow-token-issuance"}, CedarVersion: proofs.CedarVersion}}
	no := &proofs.Leaf{Kind: proofs.KindToken, LogTime: proofs.FormatLogTime(base.Add(time.Second)), Token: rec("jti-2"),
		Decision: &proofs.Decision{Outcome: proofs.OutcomeDenied, Reasons: []string{proofs.ReasonAudienceNotAllowed}, PolicyDigest: "sha256:00", PolicyIDs: []string{"allow-token-issuance"}, CedarVersion: proofs.CedarVersion}}
	return []*Event{
		{Origin: fmtOrigin, Index: 20, CheckpointSize: fmtCPSize, Leaf: fmtParse(t, ok)},
		{Origin: fmtOrigin, Index: 21, CheckpointSize: fmtCPSize, Leaf: fmtParse(t, no)},
	}
}

// TestTokenEvents: a follower renders token entries in every format, and
// the OCSF records (6003 API Activity, Create) validate against the
// vendored schema.
func TestTokenEvents(t *testing.T) {
	s := loadOCSFSchema(t)
	events := tokenEvents(t)
	for i, rec := range fmtRender(t, OCSF(), events, nil) {
		if err := s.Validate(rec); err != nil {
			t.Errorf("token record %d is not valid OCSF 1.3.0:\n%v\n%s", i, err, rec)
		}
		for _, want := range []string{`"class_uid":6003`, `"operation":"token_exchange"`, `"token_id":"jti-`, fmtWorker} {
			if !strings.Contains(string(rec), want) {
				t.Errorf("token record %d lacks %s: %s", i, want, rec)
			}
		}
	}
	for _, f := range []Format{CEF(), Syslog("host")} {
		recs := fmtRender(t, f, events, nil)
		if !strings.Contains(string(recs[0]), "token-issued") || !strings.Contains(string(recs[1]), "token-denied") {
			t.Errorf("%T: %s / %s", f, recs[0], recs[1])
		}
	}
}

package siem

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/ocsfschema"
	"github.com/warrantlog/warrant/proofs"
)

// The OCSF records are checked against the official OCSF 1.3.0 schema,
// vendored as the schema repository's JSON files in
// testdata/ocsf-1.3.0 (see its README) and resolved as OCSF compiles them
// (package internal/ocsfschema).

func loadOCSFSchema(t *testing.T) *ocsfschema.Schema {
	t.Helper()
	s, err := ocsfschema.Load(filepath.Join("testdata", "ocsf-1.3.0"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != OCSFVersion {
		t.Fatalf("vendored schema is %s, records declare %s", s.Version, OCSFVersion)
	}
	return s
}

// everyAlert is one alert of every reason code the follower and `warrant
// siem` raise, with and without evidence, text and binary.
func everyAlert() []*Alert {
	at := time.Date(2026, 3, 1, 12, 1, 0, 987654321, time.UTC)
	reasons := []string{
		client.ReasonFork, client.ReasonRollback, client.ReasonMismatch,
		client.ReasonEntriesMismatch, client.ReasonStalled,
		proofs.ReasonCheckpointInvalid, proofs.ReasonCheckpointSignature, proofs.ReasonCheckpointOrigin,
		proofs.ReasonInclusionInvalid, proofs.ReasonConsistencyInvalid, proofs.ReasonRangeInvalid,
	}
	var out []*Alert
	for i, r := range reasons {
		a := &Alert{Time: at.Add(time.Duration(i) * time.Second), Origin: fmtOrigin, Reason: r, Message: "details of " + r}
		switch i % 3 {
		case 1:
			a.Evidence = []byte(fmtOrigin + "\n42\nq6s=\n\n— log.example.org/warrant AAAA\n")
		case 2:
			a.Evidence = []byte{0xff, 0x00, 0xfe}
			a.Message = ""
		}
		out = append(out, a)
	}
	return out
}

func TestOCSFSchemaValid(t *testing.T) {
	s := loadOCSFSchema(t)
	events := fmtEvents(t)
	for i, rec := range fmtRender(t, OCSF(), events, append(fmtAlerts(), everyAlert()...)) {
		if err := s.Validate(rec); err != nil {
			t.Errorf("record %d is not valid OCSF 1.3.0:\n%v\n%s", i, err, rec)
		}
	}
}

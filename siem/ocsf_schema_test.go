package siem

import (
	"encoding/json"
	"path/filepath"
	"strings"
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
		client.ReasonWitnessConflict,
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
	// metadata.sequence is an integer_t (32 bits): a larger index is left
	// out rather than made invalid.
	for _, idx := range []uint64{1<<31 - 1, 1 << 31, 1<<64 - 1} {
		e := *events[len(events)-2]
		e.Index = idx
		rec, err := OCSF().Event(&e)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(rec); err != nil {
			t.Errorf("index %d: %v\n%s", idx, err, rec)
		}
		if has := strings.Contains(string(rec), `"sequence":`); has != (idx <= 1<<31-1) {
			t.Errorf("index %d: sequence present %v: %s", idx, has, rec)
		}
	}
}

// TestOCSFSchemaRejectsMutatedRecords: the validator is not a rubber
// stamp: each of warrant's own records, changed in one way an OCSF
// consumer would reject, fails.
func TestOCSFSchemaRejectsMutatedRecords(t *testing.T) {
	s := loadOCSFSchema(t)
	records := fmtRender(t, OCSF(), fmtEvents(t), everyAlert())
	mutations := []struct {
		name string
		f    func(m map[string]any) bool // false: not applicable to this record
		want string
	}{
		{"unknown attribute", func(m map[string]any) bool { m["decision"] = "accepted"; return true }, "decision: unknown attribute"},
		{"unknown metadata attribute", func(m map[string]any) bool { m["metadata"].(map[string]any)["index"] = 1; return true }, "metadata.index: unknown attribute"},
		{"bad severity", func(m map[string]any) bool { m["severity_id"] = 9; return true }, "severity_id: 9 is not a value of the enum"},
		{"wrong type_uid", func(m map[string]any) bool { m["type_uid"] = m["type_uid"].(float64) + 1; return true }, "type_uid: "},
		{"class_uid of another category", func(m map[string]any) bool { m["category_uid"] = 5; return true }, "category_uid: 5"},
		{"time in seconds as a string", func(m map[string]any) bool { m["time"] = "1772366400"; return true }, "time: want timestamp_t"},
		{"user type 4 (OCSF 1.6)", func(m map[string]any) bool {
			u, ok := m["user"].(map[string]any)
			if ok {
				u["type_id"], u["type"] = 4, "Service"
			}
			return ok
		}, "user.type_id: 4 is not a value of the enum"},
		{"3005 without the host profile", func(m map[string]any) bool {
			md := m["metadata"].(map[string]any)
			_, ok := md["profiles"]
			delete(md, "profiles")
			return ok
		}, `actor: attribute of profile "host"`},
		{"finding without its uid", func(m map[string]any) bool {
			fi, ok := m["finding_info"].(map[string]any)
			delete(fi, "uid")
			return ok
		}, "finding_info.uid: required attribute missing"},
	}
	for i, rec := range records {
		for _, mu := range mutations {
			var m map[string]any
			if err := json.Unmarshal(rec, &m); err != nil {
				t.Fatal(err)
			}
			if !mu.f(m) {
				continue
			}
			bad, _ := json.Marshal(m)
			err := s.Validate(bad)
			if err == nil || !strings.Contains(err.Error(), mu.want) {
				t.Errorf("record %d, %s: got %v, want an error containing %q", i, mu.name, err, mu.want)
			}
		}
	}
}

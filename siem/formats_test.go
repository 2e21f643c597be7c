package siem

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// The format tests render a fixed log — every entry kind and outcome, with
// real Ed25519 signatures from fixed seeds (deterministic) and hostile free
// text — and compare the records byte for byte with golden files. Run
//
//	GOTOOLCHAIN=local go test ./siem/ -run TestFormatGolden -update
//
// to rewrite them after a deliberate change, and review the diff.

var fmtUpdateGolden = flag.Bool("update", false, "rewrite siem/testdata/golden")

const (
	fmtOrigin   = "log.example.org/warrant"
	fmtCPSize   = 42
	fmtHostname = "siem-relay.example.org"
	// fmtHostile has every character some format must escape.
	fmtHostile = "ship | now \\ back=slash \"quoted\" [sd] ]\nsecond line\r\nthird"
)

// fmtKey is an Ed25519 key from a fixed seed.
type fmtKey struct {
	priv ed25519.PrivateKey
	der  []byte
	id   string
}

func fmtNewKey(t *testing.T, seed byte) fmtKey {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return fmtKey{priv: priv, der: der, id: proofs.KeyID(der)}
}

// fmtEnvelope signs payload v under payloadType with each key (DSSE PAE).
func fmtEnvelope(t *testing.T, payloadType string, v any, keys ...fmtKey) json.RawMessage {
	t.Helper()
	payload, err := proofs.MarshalPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	env := &proofs.Envelope{PayloadType: payloadType, Payload: payload}
	for _, k := range keys {
		env.Signatures = append(env.Signatures, proofs.Signature{KeyID: k.id, Sig: ed25519.Sign(k.priv, proofs.PAE(payloadType, payload))})
	}
	return env.Canonical()
}

// fmtParse marshals a leaf and parses it back, as a follower would hand it
// over.
func fmtParse(t *testing.T, l *proofs.Leaf) *proofs.ParsedLeaf {
	t.Helper()
	l.Version = proofs.LeafVersion
	raw, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil {
		t.Fatalf("parsing %s leaf: %v", l.Kind, err)
	}
	return p
}

const (
	fmtDefaultPolicy = "@id(\"allow-delegation\")\npermit (principal, action == Action::\"delegate\", resource);\n"
	fmtAdminPolicy   = fmtDefaultPolicy + "@id(\"same-trust-domain\")\n@reason(\"cross_domain\")\nforbid (principal, action == Action::\"delegate\", resource)\nwhen { context.issuer_domain != context.delegate_domain };\n"
)

// Identities of the fixture.
const (
	fmtAlice   = "spiffe://example.org/human/alice"
	fmtPlanner = "spiffe://example.org/agent/planner"
	fmtWorker  = "spiffe://example.org/agent/worker"
	fmtMallory = "spiffe://example.org/agent/mallory"
	fmtPartner = "spiffe://partner.example/agent/billing"
)

// fmtEvents builds the fixture log, in index order.
func fmtEvents(t *testing.T) []*Event {
	t.Helper()
	registrar, admin, admin2 := fmtNewKey(t, 1), fmtNewKey(t, 2), fmtNewKey(t, 3)
	alice, planner, worker := fmtNewKey(t, 10), fmtNewKey(t, 11), fmtNewKey(t, 12)
	base := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	var events []*Event
	add := func(l *proofs.Leaf, depth int) {
		idx := uint64(len(events))
		// Log times advance with the index and keep nanoseconds, so the
		// renderings' truncation to ms/µs is pinned too.
		l.LogTime = proofs.FormatLogTime(base.Add(time.Duration(idx)*time.Second + time.Duration(idx)*1111*time.Nanosecond))
		events = append(events, &Event{Origin: fmtOrigin, Index: idx, CheckpointSize: fmtCPSize, Leaf: fmtParse(t, l), Depth: depth})
	}
	payloadTime := proofs.FormatTime(base)
	accepted := func() *proofs.Decision { return &proofs.Decision{Outcome: proofs.OutcomeAccepted} }
	denied := func(r ...string) *proofs.Decision { return &proofs.Decision{Outcome: proofs.OutcomeDenied, Reasons: r} }
	adminDigest := proofs.HashID([]byte(fmtAdminPolicy))
	decided := func(d *proofs.Decision, ids ...string) *proofs.Decision {
		d.PolicyDigest, d.PolicyIDs, d.CedarVersion = adminDigest, ids, proofs.CedarVersion
		return d
	}
	binding := func(agent string, k fmtKey, tier string, human, revoked bool, nonce string) json.RawMessage {
		return fmtEnvelope(t, proofs.PayloadTypeAgent, &proofs.KeyBinding{Agent: agent, PublicKey: k.der, Tier: tier, Human: human, Revoked: revoked, IssuedAt: payloadTime, Nonce: nonce}, registrar)
	}
	cfg := &proofs.LogConfig{
		Origin:        fmtOrigin,
		RegistrarKeys: []proofs.ConfigKey{{ID: registrar.id, PublicKey: registrar.der}},
		AdminKeys:     []proofs.ConfigKey{{ID: admin.id, PublicKey: admin.der}},
		Limits:        proofs.DefaultLimits(),
		Rules:         proofs.DefaultRuleLimits(),
	}
	// 0: the log's configuration; 1: the shipped default policy.
	add(&proofs.Leaf{Kind: proofs.KindLogConfig, Config: cfg}, 0)
	add(&proofs.Leaf{Kind: proofs.KindPolicy, Policy: &proofs.LogPolicy{Text: fmtDefaultPolicy}}, 0)
	// 2-4: key bindings; 5: a binding of planner's key to another agent.
	add(&proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: binding(fmtAlice, alice, proofs.TierExecute, true, false, "nonce-alice-1"), Decision: accepted()}, 0)
	add(&proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: binding(fmtPlanner, planner, proofs.TierExecute, false, false, "nonce-planner-1"), Decision: accepted()}, 0)
	add(&proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: binding(fmtWorker, worker, proofs.TierDraft, false, false, "nonce-worker-1"), Decision: accepted()}, 0)
	add(&proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: binding(fmtMallory, planner, proofs.TierExecute, false, false, "nonce-mallory-1"), Decision: denied(proofs.ReasonKeyInUse)}, 0)
	// 6: an admin replaces the policy.
	add(&proofs.Leaf{Kind: proofs.KindPolicy, Envelope: fmtEnvelope(t, proofs.PayloadTypePolicy, &proofs.PolicyUpdate{Text: fmtAdminPolicy, IssuedAt: payloadTime, Nonce: "nonce-policy-1"}, admin), Decision: accepted()}, 0)
	// 7: a root grant; 8: a child grant (approved by alice, hostile
	// purpose); 9: a denial for several reasons.
	root := &proofs.Delegation{
		ID: "d-root-1", Issuer: fmtAlice, Delegate: fmtPlanner, RootSubject: fmtAlice, Task: "/tickets",
		Scopes: []string{"tickets:read", "tickets:write"}, DataClasses: []string{"internal"}, Destinations: []string{"jira"},
		NotBefore: payloadTime, ExpiresAt: proofs.FormatTime(base.Add(4 * time.Hour)), Nonce: "nonce-root-1",
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	add(&proofs.Leaf{Kind: proofs.KindDelegation, Envelope: fmtEnvelope(t, proofs.PayloadTypeDelegation, root, alice), Decision: decided(accepted(), "allow-delegation")}, 1)
	child := &proofs.Delegation{
		ID: "d-child-2", Issuer: fmtPlanner, Delegate: fmtWorker, RootSubject: fmtAlice, Parent: "d-root-1", Task: "/tickets/triage",
		Scopes: []string{"tickets:read"}, NotBefore: payloadTime, ExpiresAt: proofs.FormatTime(base.Add(10 * time.Minute)), Nonce: "nonce-child-2",
		A2ATaskID: "a2a-task-7", MCPRequestID: "mcp-19", Purpose: fmtHostile,
	}
	add(&proofs.Leaf{Kind: proofs.KindDelegation, Envelope: fmtEnvelope(t, proofs.PayloadTypeDelegation, child, planner, alice), Decision: decided(accepted(), "allow-delegation")}, 2)
	bad := &proofs.Delegation{
		ID: "d-bad-3", Issuer: fmtWorker, Delegate: fmtPartner, RootSubject: fmtAlice, Parent: "d-child-2", Task: "/tickets/triage/export",
		Scopes: []string{"billing:admin", "tickets:read"}, NotBefore: payloadTime, ExpiresAt: proofs.FormatTime(base.Add(5 * time.Minute)), Nonce: "nonce-bad-3",
	}
	add(&proofs.Leaf{Kind: proofs.KindDelegation, Envelope: fmtEnvelope(t, proofs.PayloadTypeDelegation, bad, worker), Decision: decided(denied(proofs.ReasonCrossDomain, proofs.ReasonScopeWidened, proofs.ReasonTierEscalation), "same-trust-domain")}, 3)
	// 10: planner revokes the child (hostile reason); 11: worker may not
	// revoke the root; 12: an admin revokes the root.
	add(&proofs.Leaf{Kind: proofs.KindRevocation, Envelope: fmtEnvelope(t, proofs.PayloadTypeRevocation, &proofs.Revocation{Delegation: "d-child-2", Issuer: fmtPlanner, Reason: fmtHostile, IssuedAt: payloadTime, Nonce: "nonce-rev-1"}, planner), Decision: accepted()}, 0)
	add(&proofs.Leaf{Kind: proofs.KindRevocation, Envelope: fmtEnvelope(t, proofs.PayloadTypeRevocation, &proofs.Revocation{Delegation: "d-root-1", Issuer: fmtWorker, Reason: "not mine", IssuedAt: payloadTime, Nonce: "nonce-rev-2"}, worker), Decision: denied(proofs.ReasonRevokeNotAuthorized)}, 0)
	add(&proofs.Leaf{Kind: proofs.KindRevocation, Envelope: fmtEnvelope(t, proofs.PayloadTypeRevocation, &proofs.Revocation{Delegation: "d-root-1", Reason: "incident 42", IssuedAt: payloadTime, Nonce: "nonce-rev-3"}, admin), Decision: accepted()}, 0)
	// 13: worker's key revoked; 14: the configuration changes.
	add(&proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: binding(fmtWorker, worker, proofs.TierDraft, false, true, "nonce-worker-2"), Decision: accepted()}, 0)
	cfg2 := *cfg
	cfg2.AdminKeys = append(slices.Clone(cfg.AdminKeys), proofs.ConfigKey{ID: admin2.id, PublicKey: admin2.der})
	add(&proofs.Leaf{Kind: proofs.KindLogConfig, Config: &cfg2}, 0)
	return events
}

func fmtAlerts() []*Alert {
	at := time.Date(2026, 3, 1, 12, 1, 0, 987654321, time.UTC)
	return []*Alert{
		{Time: at, Origin: fmtOrigin, Reason: "fork_detected", Message: "two checkpoints of size 42 with different roots",
			Evidence: []byte(fmtOrigin + "\n42\nq6s=\n\n— log.example.org/warrant AAAA\n")},
		{Time: at.Add(time.Minute), Origin: fmtOrigin, Reason: "log_stalled", Message: fmtHostile},
		{Time: at.Add(2 * time.Minute), Origin: fmtOrigin, Reason: proofs.ReasonWitnessConflict,
			Message:  "witness witness.example/w1 holds a checkpoint of this log's origin that conflicts with the log's",
			Evidence: []byte(`{"name":"witness.example/w1","url":"http://127.0.0.1:1","cosigned_size":0,"last_error":"the witness holds size 9, beyond this log's 3","last_error_kind":"conflict","last_error_at":"2026-03-01T12:03:00.987654321Z"}`),
			Witness:  "witness.example/w1", WitnessURL: "http://127.0.0.1:1/a=b|c", WitnessErrorKind: "conflict", WitnessError: fmtHostile},
	}
}

// fmtAlertLevel is the severity an alert must have: critical but for a
// witness conflict (the server's report), high.
func fmtAlertLevel(a *Alert) (ocsf int64, cef string, syslogSev int, msgID string) {
	if a.Reason == proofs.ReasonWitnessConflict {
		return 4, "8", 4, "witness-conflict"
	}
	return 5, "10", 2, "alert"
}

// fmtFormats are the renderings under test, by golden file.
func fmtFormats() []struct {
	file string
	f    Format
} {
	return []struct {
		file string
		f    Format
	}{
		{"ocsf.jsonl", OCSF()},
		{"cef.txt", CEF()},
		{"syslog.txt", Syslog(fmtHostname)},
	}
}

// fmtRender renders every event and alert of the fixture.
func fmtRender(t *testing.T, f Format, events []*Event, alerts []*Alert) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range events {
		r, err := f.Event(e)
		if err != nil {
			t.Fatalf("event %d: %v", e.Index, err)
		}
		out = append(out, r)
	}
	for _, a := range alerts {
		r, err := f.Alert(a)
		if err != nil {
			t.Fatalf("alert %s: %v", a.Reason, err)
		}
		out = append(out, r)
	}
	for i, r := range out {
		if bytes.ContainsAny(r, "\r\n") || len(r) == 0 {
			t.Fatalf("record %d is empty or spans lines: %q", i, r)
		}
	}
	return out
}

func TestFormatGolden(t *testing.T) {
	events, alerts := fmtEvents(t), fmtAlerts()
	for _, tc := range fmtFormats() {
		t.Run(tc.file, func(t *testing.T) {
			got := append(bytes.Join(fmtRender(t, tc.f, events, alerts), []byte("\n")), '\n')
			again := append(bytes.Join(fmtRender(t, tc.f, events, alerts), []byte("\n")), '\n')
			if !bytes.Equal(got, again) {
				t.Fatal("rendering is not deterministic")
			}
			path := filepath.Join("testdata", "golden", tc.file)
			if *fmtUpdateGolden {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < max(len(gl), len(wl)); i++ {
					g, w := "", ""
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(run with -update after a deliberate change)", path, i+1, g, w)
					}
				}
			}
		})
	}
}

// fmtWantClass is the OCSF class and activity the issue maps each entry to,
// worked out from the leaf independently of the renderer.
func fmtWantClass(e *Event) (class, activity int) {
	l := e.Leaf
	denied := l.Decision != nil && l.Decision.Outcome == proofs.OutcomeDenied
	switch l.Kind {
	case proofs.KindDelegation:
		if denied {
			return 6003, 1
		}
		return 3005, 1
	case proofs.KindRevocation:
		if denied {
			return 6003, 4
		}
		return 3005, 2
	case proofs.KindKeyBinding:
		switch {
		case denied:
			return 3001, 99
		case l.KeyBinding.Revoked:
			return 3001, 5
		}
		return 3001, 1
	case proofs.KindPolicy:
		if l.PolicyUpdate == nil {
			return 6003, 1
		}
		return 6003, 3
	case proofs.KindLogConfig:
		if e.Index == 0 {
			return 6003, 1
		}
		return 6003, 3
	}
	return 0, 0
}

// fmtRequired lists, per class_uid, the attribute paths OCSF 1.3.0 marks
// required (beyond the base event's), plus the at-least-one constraints of
// the objects they hold (user: account/name/uid; actor: process/user/
// invoked_by/session/app_name/app_uid; network endpoint: ip/uid/name/
// hostname/svc_name/...). Each entry is a list of alternatives.
var fmtRequired = map[int][][]string{
	3005: {{"user"}, {"user.uid", "user.name", "user.account"}, {"privileges"}},
	6003: {{"actor"}, {"actor.user", "actor.app_name", "actor.app_uid", "actor.process", "actor.session"},
		{"api"}, {"api.operation"}, {"src_endpoint"}, {"src_endpoint.uid", "src_endpoint.ip", "src_endpoint.name", "src_endpoint.hostname", "src_endpoint.svc_name"}},
	3001: {{"user"}, {"user.uid", "user.name", "user.account"}},
	2004: {{"finding_info"}, {"finding_info.uid"}, {"finding_info.title"}},
}

// fmtBaseRequired are the base event's required attributes in OCSF 1.3.0,
// with those of metadata and metadata.product.
var fmtBaseRequired = []string{
	"activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id",
	"metadata", "metadata.version", "metadata.product", "metadata.product.name", "metadata.product.vendor_name",
}

// fmtPath looks up a dotted path in decoded JSON; a present value must be
// non-empty (no "", [], {} or null).
func fmtPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	switch c := cur.(type) {
	case nil:
		return nil, false
	case string:
		return c, c != ""
	case []any:
		return c, len(c) > 0
	case map[string]any:
		return c, len(c) > 0
	}
	return cur, true
}

func fmtNum(t *testing.T, m map[string]any, path string) int64 {
	t.Helper()
	v, ok := fmtPath(m, path)
	f, isNum := v.(float64)
	if !ok || !isNum || f != float64(int64(f)) {
		t.Fatalf("%s = %v, want an integer", path, v)
	}
	return int64(f)
}

func fmtStr(m map[string]any, path string) string {
	v, _ := fmtPath(m, path)
	s, _ := v.(string)
	return s
}

func TestOCSFRequiredAttributes(t *testing.T) {
	events, alerts := fmtEvents(t), fmtAlerts()
	records := fmtRender(t, OCSF(), events, alerts)
	for i, rec := range records {
		var m map[string]any
		if err := json.Unmarshal(rec, &m); err != nil {
			t.Fatalf("record %d is not JSON: %v", i, err)
		}
		for _, p := range fmtBaseRequired {
			if _, ok := fmtPath(m, p); !ok {
				t.Errorf("record %d lacks base attribute %s", i, p)
			}
		}
		class, activity := fmtNum(t, m, "class_uid"), fmtNum(t, m, "activity_id")
		if got := fmtNum(t, m, "type_uid"); got != class*100+activity {
			t.Errorf("record %d: type_uid %d, want %d", i, got, class*100+activity)
		}
		if got := fmtNum(t, m, "category_uid"); got != class/1000 {
			t.Errorf("record %d: category_uid %d for class %d", i, got, class)
		}
		if sev := fmtNum(t, m, "severity_id"); sev < 1 || sev > 5 {
			t.Errorf("record %d: severity_id %d", i, sev)
		}
		if fmtStr(m, "metadata.version") != OCSFVersion || fmtStr(m, "metadata.product.name") != Product || fmtStr(m, "metadata.product.vendor_name") != Vendor {
			t.Errorf("record %d: metadata %v", i, m["metadata"])
		}
		reqs, ok := fmtRequired[int(class)]
		if !ok {
			t.Fatalf("record %d: unexpected class %d", i, class)
		}
		for _, alts := range reqs {
			if !slices.ContainsFunc(alts, func(p string) bool { _, ok := fmtPath(m, p); return ok }) {
				t.Errorf("record %d (class %d) lacks required %s", i, class, strings.Join(alts, " or "))
			}
		}
		if i >= len(events) { // an alert
			a := alerts[i-len(events)]
			sev, _, _, _ := fmtAlertLevel(a)
			if class != 2004 || fmtNum(t, m, "severity_id") != sev {
				t.Errorf("alert record %d: class %d severity %v", i, class, m["severity_id"])
			}
			if a.Witness != "" && (fmtStr(m, "unmapped.witness") != a.Witness || fmtStr(m, "unmapped.reported_by") != "server" ||
				fmtStr(m, "unmapped.witness_error") != a.WitnessError || fmtStr(m, "finding_info.data_sources") == "" && m["finding_info"].(map[string]any)["data_sources"] == nil) {
				t.Errorf("witness alert record %d: %s", i, rec)
			}
			continue
		}
		e := events[i]
		if wc, wa := fmtWantClass(e); int64(wc) != class || int64(wa) != activity {
			t.Errorf("event %d (%s): class %d activity %d, want %d %d", i, e.Leaf.Kind, class, activity, wc, wa)
		}
		if got := fmtStr(m, "metadata.uid"); got != e.ID() {
			t.Errorf("event %d: metadata.uid %q, want %q", i, got, e.ID())
		}
		if got := fmtNum(t, m, "metadata.sequence"); got != int64(e.Index) {
			t.Errorf("event %d: metadata.sequence %d", i, got)
		}
		if got := fmtNum(t, m, "time"); got != e.Leaf.Time.UnixMilli() {
			t.Errorf("event %d: time %d, want %d", i, got, e.Leaf.Time.UnixMilli())
		}
		if got := fmtNum(t, m, "unmapped.checkpoint_size"); got != fmtCPSize {
			t.Errorf("event %d: checkpoint_size %d", i, got)
		}
		if fmtStr(m, "metadata.log_name") != fmtOrigin || fmtStr(m, "metadata.original_time") != e.Leaf.LogTime {
			t.Errorf("event %d: metadata %v", i, m["metadata"])
		}
		if d := e.Leaf.Decision; d != nil {
			if got := fmtStr(m, "unmapped.decision"); got != d.Outcome {
				t.Errorf("event %d: decision %q, want %q", i, got, d.Outcome)
			}
			var reasons []string
			if v, ok := fmtPath(m, "unmapped.reasons"); ok {
				for _, r := range v.([]any) {
					reasons = append(reasons, r.(string))
				}
			}
			if !slices.Equal(reasons, d.Reasons) {
				t.Errorf("event %d: reasons %v, want %v", i, reasons, d.Reasons)
			}
			wantStatus := int64(1)
			if d.Outcome == proofs.OutcomeDenied {
				wantStatus = 2
			}
			if got := fmtNum(t, m, "status_id"); got != wantStatus {
				t.Errorf("event %d: status_id %d, want %d", i, got, wantStatus)
			}
			if fmtStr(m, "unmapped.policy_digest") != d.PolicyDigest || fmtStr(m, "unmapped.cedar_version") != d.CedarVersion {
				t.Errorf("event %d: policy fields %v", i, m["unmapped"])
			}
		}
		if dl := e.Leaf.Delegation; dl != nil {
			if fmtStr(m, "actor.user.uid") != dl.Issuer || fmtStr(m, "unmapped.issuer") != dl.Issuer || fmtStr(m, "unmapped.delegate") != dl.Delegate {
				t.Errorf("event %d: identities %v %v", i, m["actor"], m["unmapped"])
			}
			if class == 3005 && fmtStr(m, "user.uid") != dl.Delegate {
				t.Errorf("event %d: user %v, want the delegate", i, m["user"])
			}
			if fmtStr(m, "unmapped.parent_id") != dl.Parent || fmtStr(m, "unmapped.delegation_id") != dl.ID || fmtStr(m, "unmapped.task") != dl.Task {
				t.Errorf("event %d: chain fields %v", i, m["unmapped"])
			}
			if got := fmtNum(t, m, "unmapped.chain_depth"); got != int64(e.Depth) {
				t.Errorf("event %d: chain_depth %d, want %d", i, got, e.Depth)
			}
			if fmtStr(m, "unmapped.purpose") != dl.Purpose {
				t.Errorf("event %d: purpose did not survive JSON", i)
			}
		}
		if kb := e.Leaf.KeyBinding; kb != nil && fmtStr(m, "user.uid") != kb.Agent {
			t.Errorf("event %d: user %v, want the bound agent", i, m["user"])
		}
	}
}

// fmtCEFSplitHeader splits a CEF record at its first seven unescaped pipes.
func fmtCEFSplitHeader(rec string) ([]string, bool) {
	var fields []string
	var cur strings.Builder
	for i := 0; i < len(rec); i++ {
		c := rec[i]
		switch {
		case len(fields) == 7:
			cur.WriteByte(c)
		case c == '\\' && i+1 < len(rec):
			i++
			cur.WriteByte(rec[i])
		case c == '|':
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(fields, cur.String()), len(fields) == 7
}

func fmtIsCEFKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// fmtCEFExtensions parses "k=v k=v": a key is the word before an
// unescaped '=', a value runs to the space before the next key, and values
// are unescaped (\\, \=, \n, \r).
func fmtCEFExtensions(t *testing.T, ext string) map[string]string {
	t.Helper()
	var eqs []int
	for i := 0; i < len(ext); i++ {
		switch ext[i] {
		case '\\':
			i++
		case '=':
			eqs = append(eqs, i)
		}
	}
	keyStart := func(eq int) int {
		j := eq
		for j > 0 && fmtIsCEFKeyChar(ext[j-1]) {
			j--
		}
		if j == eq || (j > 0 && ext[j-1] != ' ') {
			t.Fatalf("unescaped '=' at %d not after a key in %q", eq, ext)
		}
		return j
	}
	if len(eqs) > 0 && keyStart(eqs[0]) != 0 {
		t.Fatalf("text before the first key in %q", ext)
	}
	out := map[string]string{}
	for n, eq := range eqs {
		key := ext[keyStart(eq):eq]
		end := len(ext)
		if n+1 < len(eqs) {
			end = keyStart(eqs[n+1]) - 1 // the separating space
		}
		var val strings.Builder
		for i := eq + 1; i < end; i++ {
			if ext[i] != '\\' {
				val.WriteByte(ext[i])
				continue
			}
			i++
			if i >= end {
				t.Fatalf("dangling backslash in %q", ext)
			}
			switch ext[i] {
			case '\\', '=':
				val.WriteByte(ext[i])
			case 'n':
				val.WriteByte('\n')
			case 'r':
				val.WriteByte('\r')
			default:
				t.Fatalf("unknown CEF escape \\%c in %q", ext[i], ext)
			}
		}
		if _, dup := out[key]; dup {
			t.Fatalf("duplicate CEF key %s in %q", key, ext)
		}
		out[key] = val.String()
	}
	return out
}

func TestCEFHeaderAndEscaping(t *testing.T) {
	events, alerts := fmtEvents(t), fmtAlerts()
	records := fmtRender(t, CEF(), events, alerts)
	for i, r := range records {
		h, ok := fmtCEFSplitHeader(string(r))
		if !ok || h[0] != "CEF:0" || h[1] != Vendor || h[2] != Product || h[3] != ProductVersion || h[4] == "" || h[5] == "" {
			t.Fatalf("record %d header %q", i, h)
		}
		if sev, err := strconv.Atoi(h[6]); err != nil || sev < 0 || sev > 10 {
			t.Errorf("record %d severity %q", i, h[6])
		}
		ext := fmtCEFExtensions(t, h[7])
		for k := range ext {
			if strings.HasSuffix(k, "Label") && ext[strings.TrimSuffix(k, "Label")] == "" {
				t.Errorf("record %d: label %s without value", i, k)
			}
		}
		if i >= len(events) {
			a := alerts[i-len(events)]
			_, sev, _, _ := fmtAlertLevel(a)
			if h[6] != sev || ext["reason"] != a.Reason || ext["msg"] != alertMessage(a) || ext["flexString1"] != a.Witness || ext["request"] != a.WitnessURL {
				t.Errorf("alert record %d: %q %v", i, h[6], ext)
			}
			continue
		}
		e := events[i]
		if ext["externalId"] != e.ID() || ext["cn1"] != strconv.FormatUint(e.Index, 10) || ext["cn2"] != strconv.Itoa(fmtCPSize) || ext["cs5"] != fmtOrigin {
			t.Errorf("record %d: ids %v", i, ext)
		}
		if ext["rt"] != strconv.FormatInt(e.Leaf.Time.UnixMilli(), 10) {
			t.Errorf("record %d: rt %s", i, ext["rt"])
		}
		if d := e.Leaf.Decision; d != nil && (ext["act"] != d.Outcome || ext["reason"] != strings.Join(d.Reasons, ",")) {
			t.Errorf("record %d: act %q reason %q", i, ext["act"], ext["reason"])
		}
		if dl := e.Leaf.Delegation; dl != nil {
			if ext["suser"] != dl.Issuer || ext["duser"] != dl.Delegate || ext["cs1"] != dl.ID || ext["cs2"] != dl.Parent || ext["cs4"] != dl.Task || ext["cs6"] != dl.Purpose {
				t.Errorf("record %d: delegation fields %v", i, ext)
			}
			if ext["cn3"] != strconv.Itoa(e.Depth) {
				t.Errorf("record %d: cn3 %q, want %d", i, ext["cn3"], e.Depth)
			}
		}
		if rv := e.Leaf.Revocation; rv != nil && (ext["cs1"] != rv.Delegation || ext["cs6"] != rv.Reason) {
			t.Errorf("record %d: revocation fields %v", i, ext)
		}
	}
}

// TestCEFEscapingRoundTrips feeds hostile values through both escapers.
func TestCEFEscapingRoundTrips(t *testing.T) {
	for _, s := range []string{fmtHostile, `\`, `=`, `\=`, `a\nb`, "|||", "k=v x=y", "trailing\\", "=leading", " spaced "} {
		c := entryClass{sig: "sig|" + s, name: s, level: levelInfo}
		r := newCEFRecord(c)
		r.add("msg", s)
		r.add("cs6", s+" cs1=forged")
		h, ok := fmtCEFSplitHeader(string(r.bytes()))
		if !ok {
			t.Fatalf("%q: header split failed: %q", s, r.bytes())
		}
		flat := strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
		if h[4] != "sig|"+flat || h[5] != flat {
			t.Errorf("%q: header fields %q %q", s, h[4], h[5])
		}
		ext := fmtCEFExtensions(t, h[7])
		if ext["msg"] != s {
			t.Errorf("%q: msg round-trips as %q", s, ext["msg"])
		}
		if ext["cs6"] != s+" cs1=forged" || ext["cs1"] != "" {
			t.Errorf("%q: cs6 %q, forged cs1 %q", s, ext["cs6"], ext["cs1"])
		}
	}
}

// fmtSyslog is a parsed RFC 5424 record.
type fmtSyslog struct {
	pri                                       int
	timestamp, host, app, procID, msgID, sdID string
	params                                    map[string]string
	msg                                       string
}

var fmtSyslogHeader = regexp.MustCompile(`^<([0-9]{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[([^ =\]"]+)`)

// fmtParseSyslog parses a record with one SD element; values are unescaped
// in one pass (\\, \", \], and warrant's \n and \r).
func fmtParseSyslog(t *testing.T, rec string) fmtSyslog {
	t.Helper()
	m := fmtSyslogHeader.FindStringSubmatch(rec)
	if m == nil {
		t.Fatalf("bad syslog header: %q", rec)
	}
	s := fmtSyslog{timestamp: m[2], host: m[3], app: m[4], procID: m[5], msgID: m[6], sdID: m[7], params: map[string]string{}}
	s.pri, _ = strconv.Atoi(m[1])
	rest := rec[len(m[0]):]
	for {
		if strings.HasPrefix(rest, "] ") {
			s.msg = rest[2:]
			return s
		}
		if !strings.HasPrefix(rest, " ") {
			t.Fatalf("bad SD at %q", rest)
		}
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			t.Fatalf("bad SD-PARAM at %q", rest)
		}
		name := rest[1:eq]
		if name == "" || len(name) > 32 || strings.ContainsAny(name, " =]\"") {
			t.Fatalf("bad PARAM-NAME %q", name)
		}
		var val strings.Builder
		i := eq + 2
		for ; i < len(rest) && rest[i] != '"'; i++ {
			c := rest[i]
			if c == ']' {
				t.Fatalf("unescaped ] in a value: %q", rest)
			}
			if c == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case '\\', '"', ']':
					val.WriteByte(rest[i])
				case 'n':
					val.WriteByte('\n')
				case 'r':
					val.WriteByte('\r')
				default:
					t.Fatalf("unexpected escape \\%c", rest[i])
				}
				continue
			}
			val.WriteByte(c)
		}
		if i >= len(rest) {
			t.Fatalf("unterminated value in %q", rest)
		}
		if _, dup := s.params[name]; dup {
			t.Fatalf("duplicate param %s", name)
		}
		s.params[name] = val.String()
		rest = rest[i+1:]
	}
}

func TestSyslogHeaderAndEscaping(t *testing.T) {
	events, alerts := fmtEvents(t), fmtAlerts()
	records := fmtRender(t, Syslog(fmtHostname), events, alerts)
	for i, r := range records {
		s := fmtParseSyslog(t, string(r))
		if s.pri < 0 || s.pri > 191 || s.pri/8 != 10 {
			t.Errorf("record %d: PRI %d", i, s.pri)
		}
		if s.host != fmtHostname || s.app != "warrant" || s.procID != "-" || s.sdID != "warrant@32473" {
			t.Errorf("record %d: header %+v", i, s)
		}
		if len(s.msgID) > 32 || s.msgID == "" || s.msg == "" {
			t.Errorf("record %d: MSGID %q MSG %q", i, s.msgID, s.msg)
		}
		ts, err := time.Parse(time.RFC3339Nano, s.timestamp)
		if err != nil || !strings.HasSuffix(s.timestamp, "Z") || len(s.timestamp) != len("2006-01-02T15:04:05.000000Z") {
			t.Errorf("record %d: TIMESTAMP %q (%v)", i, s.timestamp, err)
		}
		if i >= len(events) {
			a := alerts[i-len(events)]
			_, _, sev, msgID := fmtAlertLevel(a)
			if s.pri != 10*8+sev || s.msgID != msgID || s.params["reason"] != a.Reason || !ts.Equal(a.Time.Truncate(time.Microsecond)) ||
				s.params["witness"] != a.Witness || s.params["witness_url"] != a.WitnessURL || s.params["detail"] != a.WitnessError {
				t.Errorf("alert record %d: %+v", i, s)
			}
			continue
		}
		e := events[i]
		if !ts.Equal(e.Leaf.Time.Truncate(time.Microsecond)) {
			t.Errorf("record %d: TIMESTAMP %s, want %s", i, ts, e.Leaf.Time)
		}
		p := s.params
		if p["origin"] != fmtOrigin || p["index"] != strconv.FormatUint(e.Index, 10) || p["id"] != e.ID() || p["kind"] != e.Leaf.Kind || p["checkpoint_size"] != strconv.Itoa(fmtCPSize) {
			t.Errorf("record %d: params %v", i, p)
		}
		if d := e.Leaf.Decision; d != nil && (p["decision"] != d.Outcome || p["reasons"] != strings.Join(d.Reasons, ",")) {
			t.Errorf("record %d: decision %q reasons %q", i, p["decision"], p["reasons"])
		}
		if dl := e.Leaf.Delegation; dl != nil && (p["detail"] != dl.Purpose || p["delegation"] != dl.ID || p["parent"] != dl.Parent || p["actor"] != dl.Issuer || p["subject"] != dl.Delegate) {
			t.Errorf("record %d: delegation params %v", i, p)
		}
		if rv := e.Leaf.Revocation; rv != nil && p["detail"] != rv.Reason {
			t.Errorf("record %d: revocation reason %q", i, p["detail"])
		}
	}
}

func TestSyslogHostnameAndNil(t *testing.T) {
	e := fmtEvents(t)[0]
	for host, want := range map[string]string{"": "-", "bad host\n]": "bad_host_]", strings.Repeat("h", 300): strings.Repeat("h", 255)} {
		r, err := Syslog(host).Event(e)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmtParseSyslog(t, string(r)); s.host != want {
			t.Errorf("Syslog(%q): HOSTNAME %q, want %q", host, s.host, want)
		}
	}
}

func TestFormatsRejectEventsWithoutLeaf(t *testing.T) {
	bogus := fmtEvents(t)[7]
	leaf := *bogus.Leaf
	leaf.Kind = "bogus"
	for _, tc := range fmtFormats() {
		for _, e := range []*Event{nil, {Origin: fmtOrigin}, {Origin: fmtOrigin, Leaf: &leaf}} {
			if r, err := tc.f.Event(e); err == nil {
				t.Errorf("%s rendered %+v as %s", tc.file, e, r)
			}
		}
	}
}

// TestFormatsAgreeOnClassification checks that the three renderings of
// each entry name the same signature and severity, so a SIEM rule written
// against one format means the same against another.
func TestFormatsAgreeOnClassification(t *testing.T) {
	events := fmtEvents(t)
	ocsf := fmtRender(t, OCSF(), events, nil)
	cef := fmtRender(t, CEF(), events, nil)
	sys := fmtRender(t, Syslog(""), events, nil)
	sevs := map[int64][2]string{1: {"1", "6"}, 3: {"5", "5"}, 4: {"8", "4"}, 5: {"10", "2"}}
	for i := range events {
		var m map[string]any
		if err := json.Unmarshal(ocsf[i], &m); err != nil {
			t.Fatal(err)
		}
		h, _ := fmtCEFSplitHeader(string(cef[i]))
		s := fmtParseSyslog(t, string(sys[i]))
		code := fmtStr(m, "metadata.event_code")
		if code != h[4] || code != s.msgID {
			t.Errorf("event %d: event_code %q, CEF signature %q, MSGID %q", i, code, h[4], s.msgID)
		}
		want := sevs[fmtNum(t, m, "severity_id")]
		if h[6] != want[0] || fmt.Sprint(s.pri%8) != want[1] {
			t.Errorf("event %d: severities OCSF %v CEF %s syslog %d", i, m["severity_id"], h[6], s.pri%8)
		}
	}
}

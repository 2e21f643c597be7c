package proofs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

const (
	issuerID   = "spiffe://example.org/agent/planner"
	delegateID = "spiffe://example.org/agent/worker"
	humanID    = "spiffe://example.org/human/alice"
)

// testDelegation returns a valid delegation using every field.
func testDelegation() *proofs.Delegation {
	return &proofs.Delegation{
		ID:           "d-0001",
		Issuer:       issuerID,
		Delegate:     delegateID,
		RootSubject:  humanID,
		Parent:       "d-0000",
		Task:         "/tickets/triage",
		Scopes:       []string{"tickets:write", "tickets:read", "tickets:read"},
		DataClasses:  []string{"pii"},
		Destinations: []string{"https://tickets.example.org", "crm"},
		NotBefore:    "2026-03-01T10:00:00Z",
		ExpiresAt:    "2026-03-01T11:00:00Z",
		Nonce:        "n0nce-0123456789",
		TraceID:      "4bf92f3577b34da6a3ce929d0e0e4736",
		A2ATaskID:    "task-42",
		MCPRequestID: "req-7",
		Purpose:      "triage <urgent> tickets & report",
	}
}

// canonicalDelegation is the canonical encoding of testDelegation, written
// out by hand: schema field order, sorted de-duplicated lists, HTML
// characters escaped as encoding/json does.
const canonicalDelegation = `{"id":"d-0001","issuer":"spiffe://example.org/agent/planner","delegate":"spiffe://example.org/agent/worker",` +
	`"root_subject":"spiffe://example.org/human/alice","parent":"d-0000","task":"/tickets/triage",` +
	`"scopes":["tickets:read","tickets:write"],"data_classes":["pii"],"destinations":["crm","https://tickets.example.org"],` +
	`"not_before":"2026-03-01T10:00:00Z","expires_at":"2026-03-01T11:00:00Z","nonce":"n0nce-0123456789",` +
	`"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","a2a_task_id":"task-42","mcp_request_id":"req-7",` +
	`"purpose":"triage \u003curgent\u003e tickets \u0026 report"}`

// minimalDelegation is a valid root grant with only the required fields.
const minimalDelegation = `{"id":"d1","issuer":"spiffe://example.org/human/alice","delegate":"spiffe://example.org/agent/a",` +
	`"root_subject":"spiffe://example.org/human/alice","task":"/","not_before":"2026-03-01T10:00:00Z",` +
	`"expires_at":"2026-03-01T10:00:01Z","nonce":"12345678"}`

func TestMarshalPayloadDelegation(t *testing.T) {
	d := testDelegation()
	b, err := proofs.MarshalPayload(d)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != canonicalDelegation {
		t.Fatalf("MarshalPayload =\n%s\nwant\n%s", b, canonicalDelegation)
	}
	got, err := proofs.ParseDelegation(b)
	if err != nil {
		t.Fatalf("ParseDelegation(MarshalPayload()): %v", err)
	}
	want := testDelegation()
	want.Scopes = []string{"tickets:read", "tickets:write"}
	want.Destinations = []string{"crm", "https://tickets.example.org"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got, want)
	}
	again, err := proofs.MarshalPayload(got)
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("MarshalPayload(ParseDelegation(b)) = %s, %v; want %s", again, err, b)
	}

	min, err := proofs.ParseDelegation([]byte(minimalDelegation))
	if err != nil {
		t.Fatalf("minimal delegation: %v", err)
	}
	if min.Parent != "" || min.Scopes != nil || min.Purpose != "" {
		t.Errorf("minimal delegation has optional fields set: %+v", min)
	}
	if b, _ := proofs.MarshalPayload(min); string(b) != minimalDelegation {
		t.Errorf("MarshalPayload(minimal) = %s", b)
	}
}

func TestMarshalPayloadNormalizesSets(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{}, nil}, // an empty list is omitted, not written as []
		{[]string{"a"}, []string{"a"}},
		{[]string{"b", "a"}, []string{"a", "b"}},
		{[]string{"a", "a", "a"}, []string{"a"}},
		{[]string{"c", "a", "b", "a", "c"}, []string{"a", "b", "c"}},
		{[]string{"b", "a/", "a-", "a"}, []string{"a", "a-", "a/", "b"}}, // byte order
		{[]string{"~", "z", "0"}, []string{"0", "z", "~"}},
	}
	for _, tt := range tests {
		d := testDelegation()
		d.Scopes = slices.Clone(tt.in)
		d.DataClasses = slices.Clone(tt.in)
		d.Destinations = slices.Clone(tt.in)
		b, err := proofs.MarshalPayload(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := proofs.ParseDelegation(b)
		if err != nil {
			t.Fatalf("%q: ParseDelegation(MarshalPayload()): %v\n%s", tt.in, err, b)
		}
		for _, l := range [][]string{got.Scopes, got.DataClasses, got.Destinations} {
			if !reflect.DeepEqual(l, tt.want) {
				t.Errorf("%q: got %q, want %q", tt.in, l, tt.want)
			}
		}
		if len(tt.want) == 0 && bytes.Contains(b, []byte("[]")) {
			t.Errorf("%q: empty list written out: %s", tt.in, b)
		}
	}
}

// TestMarshalPayloadProperty: for random lists (with duplicates, in random
// order), MarshalPayload yields a payload ParseDelegation accepts, whose
// lists are the sorted sets of the inputs.
func TestMarshalPayloadProperty(t *testing.T) {
	alphabet := []string{"a", "b", "c", "read", "write", "tickets:read", "x.y", "z/y", "~", "0"}
	f := func(picks [3][]uint8) bool {
		d := testDelegation()
		lists := make([][]string, 3)
		for i, p := range picks {
			for _, x := range p {
				lists[i] = append(lists[i], alphabet[int(x)%len(alphabet)])
			}
		}
		d.Scopes, d.DataClasses, d.Destinations = slices.Clone(lists[0]), slices.Clone(lists[1]), slices.Clone(lists[2])
		b, err := proofs.MarshalPayload(d)
		if err != nil {
			t.Logf("MarshalPayload: %v", err)
			return false
		}
		got, err := proofs.ParseDelegation(b)
		if err != nil {
			t.Logf("ParseDelegation(%s): %v", b, err)
			return false
		}
		for i, l := range [][]string{got.Scopes, got.DataClasses, got.Destinations} {
			want := slices.Compact(slices.Sorted(slices.Values(lists[i])))
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(l, want) {
				t.Logf("list %d: got %q, want %q", i, l, want)
				return false
			}
		}
		return true
	}
	cfg := &quick.Config{MaxCount: 300, Rand: rand.New(rand.NewSource(42))}
	if err := quick.Check(f, cfg); err != nil {
		t.Error(err)
	}
}

// TestParseDelegationUniqueEncoding: a delegation payload has exactly one
// accepted encoding. Every single-byte change of the canonical payload is
// either refused or is itself the canonical encoding of what it decodes to.
func TestParseDelegationUniqueEncoding(t *testing.T) {
	payload := []byte(canonicalDelegation)
	replacements := []byte{' ', '\n', '"', '\\', ',', ':', '{', '}', '[', ']', 'a', 'Z', '0', '9', '/', '.', 0, 0x80, 0xff}
	for i := range payload {
		for _, r := range replacements {
			if payload[i] == r {
				continue
			}
			mut := bytes.Clone(payload)
			mut[i] = r
			d, err := proofs.ParseDelegation(mut)
			if err != nil {
				if proofs.Reason(err) == "" {
					t.Fatalf("byte %d -> %q: error without reason: %v", i, r, err)
				}
				continue
			}
			again, err := proofs.MarshalPayload(d)
			if err != nil || !bytes.Equal(again, mut) {
				t.Errorf("byte %d -> %q: accepted non-canonical payload\n%s\nre-encodes as\n%s", i, r, mut, again)
			}
		}
	}
	// Whitespace inserted anywhere is refused, except a space inside a
	// free-form string value, where it changes the meaning and the result is
	// again canonical.
	accepted := 0
	for i := range len(payload) + 1 {
		for _, r := range []byte{' ', '\t', '\n', '\r'} {
			mut := slices.Insert(bytes.Clone(payload), i, r)
			d, err := proofs.ParseDelegation(mut)
			if err != nil {
				continue
			}
			accepted++
			if again, _ := proofs.MarshalPayload(d); r != ' ' || !bytes.Equal(again, mut) {
				t.Errorf("whitespace %q inserted at %d: accepted as\n%s", r, i, again)
			}
		}
	}
	if accepted == 0 {
		t.Error("no space inside a free-form string was accepted; test is broken")
	}
}

func TestParseDelegationNonCanonical(t *testing.T) {
	const (
		nonCanonical = proofs.ReasonPayloadNonCanonical
		malformed    = proofs.ReasonPayloadMalformed
	)
	replace := func(old, new string) string {
		if !strings.Contains(canonicalDelegation, old) {
			panic("test payload has no " + old)
		}
		return strings.Replace(canonicalDelegation, old, new, 1)
	}
	tests := []struct {
		name    string
		payload string
		reason  string
	}{
		{"space after colon", replace(`"id":`, `"id": `), nonCanonical},
		{"space after comma", replace(`,"issuer"`, `, "issuer"`), nonCanonical},
		{"leading newline", "\n" + canonicalDelegation, nonCanonical},
		{"trailing newline", canonicalDelegation + "\n", nonCanonical},
		{"indented", func() string {
			var b bytes.Buffer
			json.Indent(&b, []byte(canonicalDelegation), "", "  ")
			return b.String()
		}(), nonCanonical},
		{"reordered keys", replace(`{"id":"d-0001","issuer":"spiffe://example.org/agent/planner",`, `{"issuer":"spiffe://example.org/agent/planner","id":"d-0001",`), nonCanonical},
		{"case-folded Scopes", replace(`"scopes"`, `"Scopes"`), nonCanonical},
		{"case-folded ID", replace(`"id"`, `"ID"`), nonCanonical},
		{"duplicate key", replace(`"nonce":`, `"nonce":"other-nonce-1","nonce":`), nonCanonical},
		{"duplicate key, same value", replace(`"task":"/tickets/triage"`, `"task":"/tickets/triage","task":"/tickets/triage"`), nonCanonical},
		{"unknown field", replace(`"nonce":`, `"extra":1,"nonce":`), malformed},
		{"unknown field, empty", replace(`{"id"`, `{"":"","id"`), malformed},
		{"empty list []", replace(`"data_classes":["pii"]`, `"data_classes":[]`), nonCanonical},
		{"empty list [] added", replace(`"not_before"`, `"scopes":[],"not_before"`), nonCanonical},
		{"null list", replace(`"data_classes":["pii"]`, `"data_classes":null`), nonCanonical},
		{"empty optional string", replace(`"a2a_task_id":"task-42"`, `"a2a_task_id":""`), nonCanonical},
		{"null parent", replace(`"parent":"d-0000"`, `"parent":null`), nonCanonical},
		{"unescaped <", replace(`\u003curgent\u003e`, `<urgent>`), nonCanonical},
		{"escaped letter", replace(`"d-0001"`, `"\u0064-0001"`), nonCanonical},
		{"escaped slash", replace(`"/tickets/triage"`, `"\/tickets\/triage"`), nonCanonical},
		{"trailing data", canonicalDelegation + "{}", nonCanonical},
		{"invalid UTF-8 in string", replace(`report`, "report\xff"), nonCanonical},
		{"list with spaces", replace(`["pii"]`, `[ "pii" ]`), nonCanonical},
		{"not JSON", "delegation", malformed},
		{"empty", "", malformed},
		{"array", "[" + canonicalDelegation + "]", malformed},
		{"null", "null", nonCanonical},
		{"empty object", "{}", nonCanonical},
		{"wrong type", replace(`"scopes":["tickets:read","tickets:write"]`, `"scopes":"tickets:read"`), malformed},
		{"number for string", replace(`"nonce":"n0nce-0123456789"`, `"nonce":123456789`), malformed},
		{"truncated", canonicalDelegation[:len(canonicalDelegation)-1], malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := proofs.ParseDelegation([]byte(tt.payload))
			if err == nil {
				t.Fatalf("ParseDelegation(%s) = %+v, want error %q", tt.payload, d, tt.reason)
			}
			if got := proofs.Reason(err); got != tt.reason {
				t.Errorf("ParseDelegation(%s): reason %q (%v), want %q", tt.payload, got, err, tt.reason)
			}
		})
	}
}

// encodeRaw encodes d with encoding/json directly, bypassing
// MarshalPayload's normalisation: the result is canonical JSON of d as is.
func encodeRaw(t *testing.T, d *proofs.Delegation) []byte {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDelegationInvalid(t *testing.T) {
	items := func(n int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = fmt.Sprintf("item-%03d", i)
		}
		return l
	}
	tests := []struct {
		name   string
		edit   func(d *proofs.Delegation)
		reason string // "" means valid
	}{
		{"valid", func(d *proofs.Delegation) {}, ""},
		{"root grant", func(d *proofs.Delegation) { d.Parent = "" }, ""},

		// Lists.
		{"unsorted scopes", func(d *proofs.Delegation) { d.Scopes = []string{"b", "a"} }, proofs.ReasonPayloadNonCanonical},
		{"duplicate scopes", func(d *proofs.Delegation) { d.Scopes = []string{"a", "a"} }, proofs.ReasonPayloadNonCanonical},
		{"unsorted data classes", func(d *proofs.Delegation) { d.DataClasses = []string{"pii", "phi"} }, proofs.ReasonPayloadNonCanonical},
		{"unsorted destinations", func(d *proofs.Delegation) { d.Destinations = []string{"z", "y"} }, proofs.ReasonPayloadNonCanonical},
		{"64 scopes", func(d *proofs.Delegation) { d.Scopes = items(proofs.MaxListItems) }, ""},
		{"65 scopes", func(d *proofs.Delegation) { d.Scopes = items(proofs.MaxListItems + 1) }, proofs.ReasonListTooLong},
		{"65 data classes", func(d *proofs.Delegation) { d.DataClasses = items(proofs.MaxListItems + 1) }, proofs.ReasonListTooLong},
		{"65 destinations", func(d *proofs.Delegation) { d.Destinations = items(proofs.MaxListItems + 1) }, proofs.ReasonListTooLong},
		{"empty scope", func(d *proofs.Delegation) { d.Scopes = []string{""} }, proofs.ReasonPayloadMalformed},
		{"scope with space", func(d *proofs.Delegation) { d.Scopes = []string{"a b"} }, proofs.ReasonLabelMalformed},
		{"scope with tab", func(d *proofs.Delegation) { d.Scopes = []string{"a\tb"} }, proofs.ReasonLabelMalformed},
		{"scope with DEL", func(d *proofs.Delegation) { d.Scopes = []string{"a\x7f"} }, proofs.ReasonLabelMalformed},

		// One spelling per label: lower case, a-z 0-9 - _ . : / ~ (finding 9).
		{"label characters", func(d *proofs.Delegation) {
			d.Scopes, d.DataClasses, d.Destinations = []string{"a-b_c.d:e/f~0"}, []string{"restricted"}, []string{"https://tickets.example.org"}
		}, ""},
		{"scope action upper case", func(d *proofs.Delegation) { d.Scopes = []string{"tickets:ADMIN"} }, proofs.ReasonCaseNonCanonical},
		{"scope action title case", func(d *proofs.Delegation) { d.Scopes = []string{"tickets:Delete"} }, proofs.ReasonCaseNonCanonical},
		{"data class title case", func(d *proofs.Delegation) { d.DataClasses = []string{"Restricted"} }, proofs.ReasonCaseNonCanonical},
		{"destination upper case", func(d *proofs.Delegation) { d.Destinations = []string{"CRM"} }, proofs.ReasonCaseNonCanonical},
		{"task upper case", func(d *proofs.Delegation) { d.Task = "/Tickets/triage" }, proofs.ReasonCaseNonCanonical},
		{"scope non-ASCII", func(d *proofs.Delegation) { d.Scopes = []string{"tickets:adm\u0131n"} }, proofs.ReasonLabelMalformed},
		{"data class full-width", func(d *proofs.Delegation) { d.DataClasses = []string{"\uff52estricted"} }, proofs.ReasonLabelMalformed},
		{"data class with zero-width space", func(d *proofs.Delegation) { d.DataClasses = []string{"restricted\u200b"} }, proofs.ReasonLabelMalformed},
		{"destination with quote", func(d *proofs.Delegation) { d.Destinations = []string{"a\"b"} }, proofs.ReasonLabelMalformed},
		{"scope with star", func(d *proofs.Delegation) { d.Scopes = []string{"tickets:*"} }, proofs.ReasonLabelMalformed},

		// Delegation ids are not entry ids (finding 10).
		{"id in the sha256 namespace", func(d *proofs.Delegation) { d.ID = "sha256:" + strings.Repeat("ab", 32) }, proofs.ReasonIDReserved},
		{"id in the sha256 namespace, upper case", func(d *proofs.Delegation) { d.ID = "SHA256:ab" }, proofs.ReasonIDReserved},
		{"parent in the sha256 namespace", func(d *proofs.Delegation) { d.Parent = "sha256:ab" }, proofs.ReasonIDReserved},
		{"id with sha256 inside", func(d *proofs.Delegation) { d.ID = "dlg-sha256:ab" }, ""},
		{"scope of 256 bytes", func(d *proofs.Delegation) { d.Scopes = []string{strings.Repeat("s", 256)} }, ""},
		{"scope of 257 bytes", func(d *proofs.Delegation) { d.Scopes = []string{strings.Repeat("s", 257)} }, proofs.ReasonFieldTooLong},

		// Identities.
		{"issuer missing", func(d *proofs.Delegation) { d.Issuer = "" }, proofs.ReasonFieldMissing},
		{"delegate missing", func(d *proofs.Delegation) { d.Delegate = "" }, proofs.ReasonFieldMissing},
		{"root subject missing", func(d *proofs.Delegation) { d.RootSubject = "" }, proofs.ReasonFieldMissing},
		{"trust domain only", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org" }, ""},
		{"issuer not spiffe", func(d *proofs.Delegation) { d.Issuer = "https://example.org/agent/planner" }, proofs.ReasonIdentityMalformed},
		{"issuer without scheme", func(d *proofs.Delegation) { d.Issuer = "example.org/agent/planner" }, proofs.ReasonIdentityMalformed},
		{"upper-case scheme", func(d *proofs.Delegation) { d.Issuer = "SPIFFE://example.org/agent" }, proofs.ReasonIdentityMalformed},
		{"upper-case trust domain", func(d *proofs.Delegation) { d.Issuer = "spiffe://Example.org/agent" }, proofs.ReasonIdentityMalformed},
		{"trailing slash", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent/" }, proofs.ReasonIdentityMalformed},
		{"empty segment", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent//worker" }, proofs.ReasonIdentityMalformed},
		{"dot segment", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent/./worker" }, proofs.ReasonIdentityMalformed},
		{"dot-dot segment", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent/../worker" }, proofs.ReasonIdentityMalformed},
		{"port", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org:443/agent" }, proofs.ReasonIdentityMalformed},
		{"user info", func(d *proofs.Delegation) { d.Delegate = "spiffe://user@example.org/agent" }, proofs.ReasonIdentityMalformed},
		{"query", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent?x=1" }, proofs.ReasonIdentityMalformed},
		{"fragment", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent#x" }, proofs.ReasonIdentityMalformed},
		{"percent-encoded", func(d *proofs.Delegation) { d.Delegate = "spiffe://example.org/agent%2Fworker" }, proofs.ReasonIdentityMalformed},
		{"space", func(d *proofs.Delegation) { d.RootSubject = "spiffe://example.org/human/alice smith" }, proofs.ReasonIdentityMalformed},
		{"empty trust domain", func(d *proofs.Delegation) { d.RootSubject = "spiffe:///human/alice" }, proofs.ReasonIdentityMalformed},
		{"scheme only", func(d *proofs.Delegation) { d.RootSubject = "spiffe://" }, proofs.ReasonIdentityMalformed},
		{"identity too long", func(d *proofs.Delegation) { d.Issuer = "spiffe://example.org/" + strings.Repeat("a", 2048) }, proofs.ReasonFieldTooLong},

		// Ids and tokens.
		{"id missing", func(d *proofs.Delegation) { d.ID = "" }, proofs.ReasonFieldMissing},
		{"id with space", func(d *proofs.Delegation) { d.ID = "d 1" }, proofs.ReasonPayloadMalformed},
		{"id with slash", func(d *proofs.Delegation) { d.ID = "d/1" }, proofs.ReasonPayloadMalformed},
		{"id non-ASCII", func(d *proofs.Delegation) { d.ID = "dé" }, proofs.ReasonPayloadMalformed},
		{"id of 128 bytes", func(d *proofs.Delegation) { d.ID = strings.Repeat("i", 128) }, ""},
		{"id of 129 bytes", func(d *proofs.Delegation) { d.ID = strings.Repeat("i", 129) }, proofs.ReasonFieldTooLong},
		{"id with every token character", func(d *proofs.Delegation) { d.ID = "azAZ09-_.~:" }, ""},
		{"parent with space", func(d *proofs.Delegation) { d.Parent = "p 1" }, proofs.ReasonPayloadMalformed},
		{"parent too long", func(d *proofs.Delegation) { d.Parent = strings.Repeat("p", 129) }, proofs.ReasonFieldTooLong},
		{"nonce of 7 bytes", func(d *proofs.Delegation) { d.Nonce = "1234567" }, proofs.ReasonPayloadMalformed},
		{"nonce of 8 bytes", func(d *proofs.Delegation) { d.Nonce = "12345678" }, ""},
		{"nonce missing", func(d *proofs.Delegation) { d.Nonce = "" }, proofs.ReasonPayloadMalformed},
		{"nonce with space", func(d *proofs.Delegation) { d.Nonce = "1234 5678" }, proofs.ReasonPayloadMalformed},
		{"nonce too long", func(d *proofs.Delegation) { d.Nonce = strings.Repeat("n", 129) }, proofs.ReasonFieldTooLong},

		// Task paths.
		{"task missing", func(d *proofs.Delegation) { d.Task = "" }, proofs.ReasonFieldMissing},
		{"task without leading slash", func(d *proofs.Delegation) { d.Task = "tickets" }, proofs.ReasonPayloadMalformed},
		{"task with empty segment", func(d *proofs.Delegation) { d.Task = "/a//b" }, proofs.ReasonPayloadMalformed},
		{"task with dot-dot", func(d *proofs.Delegation) { d.Task = "/a/../b" }, proofs.ReasonPayloadMalformed},
		{"task with space", func(d *proofs.Delegation) { d.Task = "/a b" }, proofs.ReasonPayloadMalformed},
		{"task whole space", func(d *proofs.Delegation) { d.Task = "/" }, ""},

		// Times.
		{"fractional seconds", func(d *proofs.Delegation) { d.NotBefore = "2026-03-01T10:00:00.5Z" }, proofs.ReasonTimeMalformed},
		{"zero fractional seconds", func(d *proofs.Delegation) { d.NotBefore = "2026-03-01T10:00:00.000Z" }, proofs.ReasonTimeMalformed},
		{"offset +02:00", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T13:00:00+02:00" }, proofs.ReasonTimeMalformed},
		{"offset +00:00", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T11:00:00+00:00" }, proofs.ReasonTimeMalformed},
		{"lower-case z", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T11:00:00z" }, proofs.ReasonTimeMalformed},
		{"lower-case t", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01t11:00:00Z" }, proofs.ReasonTimeMalformed},
		{"space separator", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01 11:00:00Z" }, proofs.ReasonTimeMalformed},
		{"no zone", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T11:00:00" }, proofs.ReasonTimeMalformed},
		{"unpadded", func(d *proofs.Delegation) { d.ExpiresAt = "2026-3-1T11:00:00Z" }, proofs.ReasonTimeMalformed},
		{"no seconds", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T11:00Z" }, proofs.ReasonTimeMalformed},
		{"February 30", func(d *proofs.Delegation) { d.ExpiresAt = "2026-02-30T11:00:00Z" }, proofs.ReasonTimeMalformed},
		{"hour 24", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T24:00:00Z" }, proofs.ReasonTimeMalformed},
		{"leap second", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T23:59:60Z" }, proofs.ReasonTimeMalformed},
		{"unix time", func(d *proofs.Delegation) { d.ExpiresAt = "1772362800" }, proofs.ReasonTimeMalformed},
		{"not_before missing", func(d *proofs.Delegation) { d.NotBefore = "" }, proofs.ReasonTimeMalformed},
		{"expires_at missing", func(d *proofs.Delegation) { d.ExpiresAt = "" }, proofs.ReasonTimeMalformed},
		{"expires_at = not_before", func(d *proofs.Delegation) { d.ExpiresAt = d.NotBefore }, proofs.ReasonPayloadMalformed},
		{"expires_at before not_before", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T09:59:59Z" }, proofs.ReasonPayloadMalformed},
		{"expires_at one second after", func(d *proofs.Delegation) { d.ExpiresAt = "2026-03-01T10:00:01Z" }, ""},

		// Free-form fields.
		{"trace id of 256 bytes", func(d *proofs.Delegation) { d.TraceID = strings.Repeat("t", 256) }, ""},
		{"trace id of 257 bytes", func(d *proofs.Delegation) { d.TraceID = strings.Repeat("t", 257) }, proofs.ReasonFieldTooLong},
		{"a2a task id too long", func(d *proofs.Delegation) { d.A2ATaskID = strings.Repeat("t", 257) }, proofs.ReasonFieldTooLong},
		{"mcp request id too long", func(d *proofs.Delegation) { d.MCPRequestID = strings.Repeat("t", 257) }, proofs.ReasonFieldTooLong},
		{"purpose of 1024 bytes", func(d *proofs.Delegation) { d.Purpose = strings.Repeat("p", 1024) }, ""},
		{"purpose of 1025 bytes", func(d *proofs.Delegation) { d.Purpose = strings.Repeat("p", 1025) }, proofs.ReasonFieldTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDelegation()
			d.Scopes = []string{"tickets:read", "tickets:write"}
			d.Destinations = []string{"crm", "https://tickets.example.org"}
			tt.edit(d)
			payload := encodeRaw(t, d)
			got, err := proofs.ParseDelegation(payload)
			verr := d.Validate()
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("ParseDelegation(%s): %v", payload, err)
				}
				if verr != nil {
					t.Errorf("Validate: %v", verr)
				}
				if !reflect.DeepEqual(got, d) {
					t.Errorf("ParseDelegation = %+v, want %+v", got, d)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseDelegation(%s) accepted, want %q", payload, tt.reason)
			}
			if r := proofs.Reason(err); r != tt.reason {
				t.Errorf("ParseDelegation: reason %q (%v), want %q", r, err, tt.reason)
			}
			if r := proofs.Reason(verr); r != tt.reason {
				t.Errorf("Validate: reason %q (%v), want %q", r, verr, tt.reason)
			}
		})
	}
}

func TestValidateTaskPath(t *testing.T) {
	valid := []string{"/", "/a", "/tickets/triage", "/a-b_c.d~e/0/z", "/...", "/.a/a.", strings.Repeat("/a", 128)}
	for _, p := range valid {
		if err := proofs.ValidateTaskPath(p); err != nil {
			t.Errorf("ValidateTaskPath(%q): %v", p, err)
		}
	}
	invalid := []struct {
		path, reason string
	}{
		{"", proofs.ReasonFieldMissing},
		{"tickets", proofs.ReasonPayloadMalformed},
		{"tickets/triage", proofs.ReasonPayloadMalformed},
		{"//", proofs.ReasonPayloadMalformed},
		{"/a//b", proofs.ReasonPayloadMalformed},
		{"/a/", proofs.ReasonPayloadMalformed},
		{"/a/../b", proofs.ReasonPayloadMalformed},
		{"/a/./b", proofs.ReasonPayloadMalformed},
		{"/.", proofs.ReasonPayloadMalformed},
		{"/..", proofs.ReasonPayloadMalformed},
		{"/a b", proofs.ReasonPayloadMalformed},
		{"/a:b", proofs.ReasonPayloadMalformed},
		{"/a\\b", proofs.ReasonPayloadMalformed},
		{"/a%2Fb", proofs.ReasonPayloadMalformed},
		{"/Tickets", proofs.ReasonCaseNonCanonical},
		{"/tickets/Triage", proofs.ReasonCaseNonCanonical},
		{"/é", proofs.ReasonPayloadMalformed},
		{"/a\x00", proofs.ReasonPayloadMalformed},
		{"/a?b", proofs.ReasonPayloadMalformed},
		{"/*", proofs.ReasonPayloadMalformed},
		{"/" + strings.Repeat("a", 256), proofs.ReasonFieldTooLong},
	}
	for _, tt := range invalid {
		err := proofs.ValidateTaskPath(tt.path)
		if err == nil {
			t.Errorf("ValidateTaskPath(%q) accepted", tt.path)
			continue
		}
		if r := proofs.Reason(err); r != tt.reason {
			t.Errorf("ValidateTaskPath(%q): reason %q, want %q", tt.path, r, tt.reason)
		}
	}
}

func TestParseTime(t *testing.T) {
	got, err := proofs.ParseTime("t", "2026-03-01T10:00:00Z")
	if want := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("ParseTime = %v, %v; want %v", got, err, want)
	}
	for _, s := range []string{"2026-03-01T10:00:00.1Z", "2026-03-01T10:00:00+02:00", "2026-03-01T10:00:00-00:00", "0000-00-00T00:00:00Z", " 2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z "} {
		_, err := proofs.ParseTime("t", s)
		wantReason(t, err, proofs.ReasonTimeMalformed)
	}
	// FormatTime is UTC and truncates to whole seconds, and ParseTime
	// accepts what it writes.
	rng := rand.New(rand.NewSource(3))
	zone := time.FixedZone("X", 2*3600+30*60)
	for range 200 {
		tm := time.Unix(rng.Int63n(1<<33), rng.Int63n(1e9)).In(zone)
		s := proofs.FormatTime(tm)
		back, err := proofs.ParseTime("t", s)
		if err != nil {
			t.Fatalf("ParseTime(FormatTime(%v) = %q): %v", tm, s, err)
		}
		if want := tm.Truncate(time.Second); !back.Equal(want) || back.Location() != time.UTC {
			t.Fatalf("ParseTime(FormatTime(%v)) = %v, want %v UTC", tm, back, want)
		}
	}
}

func TestKeyBindingRoundTrip(t *testing.T) {
	for _, s := range []*testSigner{newEd25519Signer(t), newP256Signer(t)} {
		for _, human := range []bool{false, true} {
			kb := &proofs.KeyBinding{Agent: delegateID, PublicKey: s.der, Tier: proofs.TierExecute, Human: human, IssuedAt: "2026-03-01T10:00:00Z", Nonce: "binding-nonce-1"}
			b, err := proofs.MarshalPayload(kb)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"agent":"` + delegateID + `","public_key":"` + b64(s.der) + `","tier":"execute",`
			if human {
				want += `"human":true,`
			}
			want += `"issued_at":"2026-03-01T10:00:00Z","nonce":"binding-nonce-1"}`
			if string(b) != want {
				t.Errorf("MarshalPayload(key binding) =\n%s\nwant\n%s", b, want)
			}
			got, err := proofs.ParseKeyBinding(b)
			if err != nil {
				t.Fatalf("ParseKeyBinding: %v", err)
			}
			if !reflect.DeepEqual(got, kb) {
				t.Errorf("round trip: got %+v, want %+v", got, kb)
			}
		}
	}
}

func TestParseKeyBindingInvalid(t *testing.T) {
	ed := newEd25519Signer(t)
	p384Key, err := ecdsa.GenerateKey(elliptic.P384(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := x509.MarshalPKIXPublicKey(&p384Key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	base := func() *proofs.KeyBinding {
		return &proofs.KeyBinding{Agent: delegateID, PublicKey: ed.der, Tier: proofs.TierDraft, IssuedAt: "2026-03-01T10:00:00Z", Nonce: "binding-nonce-1"}
	}
	raw := func(kb *proofs.KeyBinding) string {
		b, err := json.Marshal(kb)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	valid := raw(base())
	tests := []struct {
		name    string
		payload string
		reason  string
	}{
		{"tier empty", raw(&proofs.KeyBinding{Agent: delegateID, PublicKey: ed.der, IssuedAt: "2026-03-01T10:00:00Z", Nonce: "binding-nonce-1"}), proofs.ReasonPayloadMalformed},
		{"tier unknown", strings.Replace(valid, `"draft"`, `"admin"`, 1), proofs.ReasonPayloadMalformed},
		{"tier upper case", strings.Replace(valid, `"draft"`, `"Draft"`, 1), proofs.ReasonPayloadMalformed},
		{"agent not SPIFFE", strings.Replace(valid, delegateID, "agent-1", 1), proofs.ReasonIdentityMalformed},
		{"agent missing", strings.Replace(valid, delegateID, "", 1), proofs.ReasonFieldMissing},
		{"public key garbage", strings.Replace(valid, b64(ed.der), "AAAA", 1), proofs.ReasonKeyInvalid},
		{"public key P-384", strings.Replace(valid, b64(ed.der), b64(p384), 1), proofs.ReasonKeyInvalid},
		{"public key missing", strings.Replace(valid, `"public_key":"`+b64(ed.der)+`",`, "", 1), proofs.ReasonPayloadNonCanonical},
		{"public key non-canonical base64", strings.Replace(valid, b64(ed.der), strings.TrimRight(b64(ed.der), "="), 1), proofs.ReasonPayloadMalformed},
		{"issued_at with offset", strings.Replace(valid, "2026-03-01T10:00:00Z", "2026-03-01T12:00:00+02:00", 1), proofs.ReasonTimeMalformed},
		{"nonce short", strings.Replace(valid, "binding-nonce-1", "short", 1), proofs.ReasonPayloadMalformed},
		{"explicit human false", strings.Replace(valid, `"tier":"draft",`, `"tier":"draft","human":false,`, 1), proofs.ReasonPayloadNonCanonical},
		{"reordered", `{"public_key":"` + b64(ed.der) + `","agent":"` + delegateID + `","tier":"draft","issued_at":"2026-03-01T10:00:00Z","nonce":"binding-nonce-1"}`, proofs.ReasonPayloadNonCanonical},
		{"unknown field", strings.Replace(valid, `"tier"`, `"role":"x","tier"`, 1), proofs.ReasonPayloadMalformed},
		{"whitespace", strings.Replace(valid, `":"`, `": "`, 1), proofs.ReasonPayloadNonCanonical},
		{"delegation payload", canonicalDelegation, proofs.ReasonPayloadMalformed},
	}
	if _, err := proofs.ParseKeyBinding([]byte(valid)); err != nil {
		t.Fatalf("valid binding refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := proofs.ParseKeyBinding([]byte(tt.payload))
			if err == nil {
				t.Fatalf("ParseKeyBinding(%s) accepted", tt.payload)
			}
			if r := proofs.Reason(err); r != tt.reason {
				t.Errorf("ParseKeyBinding(%s): reason %q (%v), want %q", tt.payload, r, err, tt.reason)
			}
		})
	}
	// A key binding is not a delegation either.
	b, _ := proofs.MarshalPayload(base())
	_, err = proofs.ParseDelegation(b)
	wantReason(t, err, proofs.ReasonPayloadMalformed)
}

func ExampleMarshalPayload() {
	d := &proofs.Delegation{
		ID:          "d-1",
		Issuer:      "spiffe://example.org/human/alice",
		Delegate:    "spiffe://example.org/agent/planner",
		RootSubject: "spiffe://example.org/human/alice",
		Task:        "/tickets",
		Scopes:      []string{"write", "read", "write"},
		NotBefore:   "2026-03-01T10:00:00Z",
		ExpiresAt:   "2026-03-01T11:00:00Z",
		Nonce:       "nonce-0001",
	}
	payload, _ := proofs.MarshalPayload(d)
	fmt.Printf("%s\n", payload)
	_, err := proofs.ParseDelegation(payload)
	fmt.Println(err)
	// Output:
	// {"id":"d-1","issuer":"spiffe://example.org/human/alice","delegate":"spiffe://example.org/agent/planner","root_subject":"spiffe://example.org/human/alice","task":"/tickets","scopes":["read","write"],"not_before":"2026-03-01T10:00:00Z","expires_at":"2026-03-01T11:00:00Z","nonce":"nonce-0001"}
	// <nil>
}

// TestMarshalPayloadDelegationValue: MarshalPayload promises the canonical
// encoding of any payload value, a Delegation passed by value included.
func TestMarshalPayloadDelegationValue(t *testing.T) {
	d := testDelegation() // unsorted scopes with a duplicate
	b, err := proofs.MarshalPayload(*d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proofs.ParseDelegation(b); err != nil {
		t.Errorf("ParseDelegation(MarshalPayload(Delegation value)): %v\n%s", err, b)
	}
}

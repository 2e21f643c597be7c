package ocsfschema

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// The vendored official OCSF 1.3.0 files (see their README).
var schemaDir = filepath.Join("..", "..", "siem", "testdata", "ocsf-1.3.0")

func load(t *testing.T) *Schema {
	t.Helper()
	s, err := Load(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Valid records of each class, written from the schema by hand: the
// starting points the adversarial cases mutate.
const (
	validUserAccess = `{"activity_id":1,"activity_name":"Assign Privileges","category_uid":3,"category_name":"Identity & Access Management",
"class_uid":3005,"class_name":"User Access Management","type_uid":300501,"type_name":"User Access Management: Assign Privileges",
"time":1772366407123,"severity_id":1,"severity":"Informational","status_id":1,"status":"Success",
"metadata":{"version":"1.3.0","product":{"name":"p","vendor_name":"v"},"profiles":["host"],"sequence":7},
"actor":{"user":{"uid":"spiffe://example.org/human/alice"}},
"user":{"uid":"spiffe://example.org/agent/planner","type_id":99,"type":"Agent"},"privileges":["task:/tickets"],
"unmapped":{"anything":{"goes":[1,"x"]}}}`
	validAccountChange = `{"activity_id":99,"activity_name":"Key Binding Denied","category_uid":3,"class_uid":3001,
"type_uid":300199,"type_name":"Account Change: Other","time":1,"severity_id":3,"status_id":2,"status":"Failure",
"metadata":{"version":"1.3.0","product":{"name":"p","vendor_name":"v"}},"actor":{"user":{"uid":"k","type_id":2,"type":"Admin"}},"user":{"uid":"a"}}`
	validAPIActivity = `{"activity_id":4,"category_uid":6,"class_uid":6003,"type_uid":600304,"time":1,"severity_id":3,
"metadata":{"version":"1.3.0","product":{"name":"p","vendor_name":"v"}},"actor":{"app_name":"warrant"},"api":{"operation":"revoke"},
"src_endpoint":{"uid":"x"},"resources":[{"uid":"d","type":"delegation"}]}`
	validDetectionFinding = `{"activity_id":1,"category_uid":2,"class_uid":2004,"type_uid":200401,"type_name":"Detection Finding: Create",
"time":1,"severity_id":5,"severity":"Critical","status_id":1,"status":"New",
"metadata":{"version":"1.3.0","product":{"name":"p","vendor_name":"v"}},"finding_info":{"uid":"u","title":"t","types":["fork_detected"]}}`
)

func TestValidRecords(t *testing.T) {
	s := load(t)
	if s.Version != "1.3.0" {
		t.Fatalf("version %q", s.Version)
	}
	for _, rec := range []string{validUserAccess, validAccountChange, validAPIActivity, validDetectionFinding} {
		if err := s.Validate([]byte(rec)); err != nil {
			t.Errorf("%v\n%s", err, rec)
		}
	}
}

func TestResolution(t *testing.T) {
	s := load(t)
	for uid, want := range map[int][2]string{3005: {"User Access Management", "Identity & Access Management"}, 3001: {"Account Change", "Identity & Access Management"}, 6003: {"API Activity", "Application Activity"}, 2004: {"Detection Finding", "Findings"}} {
		c, ok := s.Class(uid)
		if !ok || c.Caption != want[0] || c.CategoryCaption != want[1] || c.CategoryUID != uid/1000 {
			t.Fatalf("class %d: %+v", uid, c)
		}
	}
	ua, _ := s.Class(3005)
	// actor comes to 3005 only from the host profile (included by iam).
	if a := ua.Attributes["actor"]; a == nil || a.Profile != "host" || a.Type != "actor" {
		t.Fatalf("3005 actor: %+v", a)
	}
	// account_change resets it to unconditional; api_activity does the
	// same for api, which base_event has from the cloud profile.
	ac, _ := s.Class(3001)
	api, _ := s.Class(6003)
	if ac.Attributes["actor"].Profile != "" || api.Attributes["api"].Profile != "" || api.Attributes["cloud"].Profile != "cloud" {
		t.Fatalf("profile resets: %+v %+v %+v", ac.Attributes["actor"], api.Attributes["api"], api.Attributes["cloud"])
	}
	// Enums merge along the chain: classification's 0 and 99, the class's own.
	if e := ac.Attributes["activity_id"].Enum; e["0"] != "Unknown" || e["99"] != "Other" || e["5"] != "Disable" || e["12"] != "" {
		t.Fatalf("3001 activity_id enum: %v", e)
	}
	if e := ac.Attributes["type_uid"].Enum; e["300199"] != "Account Change: Other" {
		t.Fatalf("3001 type_uid enum: %v", e)
	}
	user, _ := s.Object("user")
	if e := user.Attributes["type_id"].Enum; e["4"] != "" || e["2"] != "Admin" || e["99"] != "Other" {
		t.Fatalf("user.type_id enum in 1.3.0: %v", e)
	}
	// _entity's name and uid are inherited.
	if user.Attributes["uid"] == nil || user.Attributes["name"] == nil {
		t.Fatal("user lacks _entity attributes")
	}
}

// mutate parses rec, applies f and re-encodes it.
func mutate(t *testing.T, rec string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(rec), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }

func TestInvalidRecords(t *testing.T) {
	s := load(t)
	cases := []struct {
		name string
		rec  []byte
		want string // a substring of the error
	}{
		{"unknown attribute", mutate(t, validUserAccess, func(m map[string]any) { m["decision"] = "accepted" }), "decision: unknown attribute (class user_access)"},
		{"unknown attribute in an object", mutate(t, validUserAccess, func(m map[string]any) { obj(m, "user")["spiffe_id"] = "x" }), "user.spiffe_id: unknown attribute (object user)"},
		{"unknown attribute deep", mutate(t, validUserAccess, func(m map[string]any) { obj(obj(m, "metadata"), "product")["vendor"] = "x" }), "metadata.product.vendor: unknown attribute"},
		{"unknown attribute in an array element", mutate(t, validAPIActivity, func(m map[string]any) { m["resources"].([]any)[0].(map[string]any)["kind"] = "x" }), "resources[0].kind: unknown attribute"},
		{"actor without the host profile", mutate(t, validUserAccess, func(m map[string]any) { delete(obj(m, "metadata"), "profiles") }), `actor: attribute of profile "host"`},
		{"unknown profile", mutate(t, validUserAccess, func(m map[string]any) { obj(m, "metadata")["profiles"] = []any{"host", "warrant"} }), `unknown profile "warrant"`},
		{"profile the class does not apply", mutate(t, validUserAccess, func(m map[string]any) { obj(m, "metadata")["profiles"] = []any{"host", "security_control"} }), `does not apply profile "security_control"`},
		{"cloud attribute without the cloud profile", mutate(t, validAPIActivity, func(m map[string]any) { m["cloud"] = map[string]any{"provider": "x"} }), `cloud: attribute of profile "cloud"`},
		{"profile attribute of an object", mutate(t, validAPIActivity, func(m map[string]any) { m["resources"].([]any)[0].(map[string]any)["region"] = "eu" }), `resources[0].region: attribute of profile "cloud"`},
		{"bad enum", mutate(t, validUserAccess, func(m map[string]any) { m["severity_id"] = 7 }), "severity_id: 7 is not a value of the enum"},
		{"user type 4 (only from 1.6.0)", mutate(t, validUserAccess, func(m map[string]any) { obj(m, "user")["type_id"] = 4; obj(m, "user")["type"] = "Service" }), "user.type_id: 4 is not a value of the enum"},
		{"activity not of the class", mutate(t, validUserAccess, func(m map[string]any) {
			m["activity_id"] = 3
			m["type_uid"] = 300503
			delete(m, "activity_name")
			delete(m, "type_name")
		}), "activity_id: 3 is not a value of the enum"},
		{"wrong type_uid", mutate(t, validUserAccess, func(m map[string]any) { m["type_uid"] = 300502 }), "type_uid: 300502, want 300501"},
		{"type_uid of another class", mutate(t, validAPIActivity, func(m map[string]any) { m["type_uid"] = 300504 }), "type_uid: 300504 is not a value of the enum"},
		{"type_name not the caption", mutate(t, validUserAccess, func(m map[string]any) { m["type_name"] = "User Access Management: Grant" }), `want "User Access Management: Assign Privileges"`},
		{"type_name of activity 99 not the caption", mutate(t, validAccountChange, func(m map[string]any) { m["type_name"] = "Account Change: Key Binding Denied" }), `want "Account Change: Other"`},
		{"activity_name of 99 is Other", mutate(t, validAccountChange, func(m map[string]any) { m["activity_name"] = "Other" }), `activity_name: "Other" for activity_id 99 (Other)`},
		{"sibling not the caption", mutate(t, validUserAccess, func(m map[string]any) { m["severity"] = "Info" }), `severity: Info, want "Informational"`},
		{"user type sibling", mutate(t, validAccountChange, func(m map[string]any) { obj(obj(m, "actor"), "user")["type"] = "Administrator" }), `actor.user.type: Administrator, want "Admin"`},
		{"finding status caption", mutate(t, validDetectionFinding, func(m map[string]any) { m["status"] = "Success" }), `status: Success, want "New"`},
		{"category_uid inconsistent", mutate(t, validUserAccess, func(m map[string]any) { m["category_uid"] = 6 }), "category_uid: 6, want 3"},
		{"category_name", mutate(t, validUserAccess, func(m map[string]any) { m["category_name"] = "IAM" }), `category_name: IAM, want "Identity & Access Management"`},
		{"class_name", mutate(t, validUserAccess, func(m map[string]any) { m["class_name"] = "User Access" }), `class_name: User Access, want "User Access Management"`},
		{"unknown class", mutate(t, validUserAccess, func(m map[string]any) { m["class_uid"] = 3099 }), "no class 3099"},
		{"class_uid missing", mutate(t, validUserAccess, func(m map[string]any) { delete(m, "class_uid") }), "class_uid: missing"},
		{"required attribute missing", mutate(t, validUserAccess, func(m map[string]any) { delete(m, "privileges") }), "privileges: required attribute missing"},
		{"required base attribute missing", mutate(t, validUserAccess, func(m map[string]any) { delete(m, "time") }), "time: required attribute missing"},
		{"required object attribute missing", mutate(t, validDetectionFinding, func(m map[string]any) { delete(obj(m, "finding_info"), "uid") }), "finding_info.uid: required attribute missing"},
		{"api.operation missing", mutate(t, validAPIActivity, func(m map[string]any) { m["api"] = map[string]any{} }), "api.operation: required attribute missing"},
		{"metadata.product.vendor_name missing", mutate(t, validAPIActivity, func(m map[string]any) { delete(obj(obj(m, "metadata"), "product"), "vendor_name") }), "metadata.product.vendor_name: required attribute missing"},
		{"metadata.product missing", mutate(t, validAPIActivity, func(m map[string]any) { delete(obj(m, "metadata"), "product") }), "metadata.product: required attribute missing"},
		{"at_least_one", mutate(t, validAPIActivity, func(m map[string]any) { m["actor"] = map[string]any{} }), "actor: object actor needs at least one of"},
		{"time as a string", mutate(t, validUserAccess, func(m map[string]any) { m["time"] = "2026-03-01T12:00:00Z" }), "time: want timestamp_t"},
		{"integer_t beyond 32 bits", mutate(t, validUserAccess, func(m map[string]any) { obj(m, "metadata")["sequence"] = 1 << 31 }), "metadata.sequence: want integer_t"},
		{"fraction for an integer", mutate(t, validUserAccess, func(m map[string]any) { m["severity_id"] = 1.5 }), "severity_id: want integer_t"},
		{"enum id as a string", mutate(t, validUserAccess, func(m map[string]any) { obj(m, "user")["type_id"] = "99" }), "user.type_id: want integer_t"},
		{"array expected", mutate(t, validUserAccess, func(m map[string]any) { m["privileges"] = "task:/tickets" }), "privileges: want an array of string_t"},
		{"array element type", mutate(t, validUserAccess, func(m map[string]any) { m["privileges"] = []any{"a", 1} }), "privileges[1]: want string_t"},
		{"array not expected", mutate(t, validUserAccess, func(m map[string]any) { m["user"] = []any{obj(m, "user")} }), "user: want a user object, got array"},
		{"object expected", mutate(t, validUserAccess, func(m map[string]any) { m["metadata"] = "1.3.0" }), "metadata: want a metadata object, got string"},
		{"unmapped must be an object", mutate(t, validUserAccess, func(m map[string]any) { m["unmapped"] = []any{} }), "unmapped: want an object"},
		{"null", mutate(t, validUserAccess, func(m map[string]any) { m["message"] = nil }), "message: want string_t, got null"},
		{"boolean", mutate(t, validDetectionFinding, func(m map[string]any) { m["is_alert"] = true }), "is_alert: unknown attribute"},
		{"object type not vendored", mutate(t, validUserAccess, func(m map[string]any) { m["http_request"] = map[string]any{} }), `http_request: object type "http_request" is not in the schema files`},
		{"not JSON", []byte(`{"class_uid":3005`), "not JSON"},
		{"trailing data", []byte(validAPIActivity + ` {}`), "trailing data"},
		{"not an object", []byte(`[1]`), "not a JSON object"},
	}
	for _, c := range cases {
		err := s.Validate(c.rec)
		if err == nil {
			t.Errorf("%s: accepted\n%s", c.name, c.rec)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q lacks %q", c.name, err, c.want)
		}
	}
}

func TestLoadFailsOnMissingFiles(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil {
		t.Fatal("empty directory loaded")
	}
}

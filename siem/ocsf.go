package siem

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"unicode/utf8"
)

// OCSFVersion is the OCSF schema version the records declare in
// metadata.version. Classes and required attributes are those of 1.3.0:
// 3005 User Access Management requires user and privileges, 6003 API
// Activity requires actor, api (with api.operation) and src_endpoint,
// 3001 Account Change requires user, 2004 Detection Finding requires
// finding_info (uid, title); every class requires activity_id,
// category_uid, class_uid, type_uid, time, severity_id and metadata
// (product, version). The schema's own files are vendored in
// testdata/ocsf-1.3.0, and tests validate every record kind against them.
const OCSFVersion = "1.3.0"

// OCSF returns the OCSF rendering: one compact JSON object per event, of
// class 3005, 6003 or 3001 as siem/MAPPING.md maps them, and alerts
// as 2004 Detection Findings (see MAPPING.md). Standard attributes carry
// what OCSF has a place for; everything warrant-specific (decision, reason
// codes, policy digest, chain depth, ...) is in the unmapped object, under
// stable snake_case names.
func OCSF() Format { return ocsfFormat{} }

type ocsfFormat struct{}

// ocsfRecord is every attribute any record uses, in a fixed order so that
// the encoding is deterministic; omitempty leaves out what a class does not
// use. The required attributes never use omitempty.
type ocsfRecord struct {
	ActivityID     int              `json:"activity_id"`
	ActivityName   string           `json:"activity_name"`
	CategoryUID    int              `json:"category_uid"`
	CategoryName   string           `json:"category_name"`
	ClassUID       int              `json:"class_uid"`
	ClassName      string           `json:"class_name"`
	TypeUID        int              `json:"type_uid"`
	TypeName       string           `json:"type_name"`
	Time           int64            `json:"time"`
	TimezoneOffset int              `json:"timezone_offset"`
	SeverityID     int              `json:"severity_id"`
	Severity       string           `json:"severity"`
	StatusID       int              `json:"status_id"`
	Status         string           `json:"status"`
	StatusDetail   string           `json:"status_detail,omitempty"`
	Message        string           `json:"message"`
	Metadata       ocsfMetadata     `json:"metadata"`
	Actor          *ocsfActor       `json:"actor,omitempty"`
	User           *ocsfUser        `json:"user,omitempty"`
	Privileges     []string         `json:"privileges,omitempty"`
	API            *ocsfAPI         `json:"api,omitempty"`
	SrcEndpoint    *ocsfEndpoint    `json:"src_endpoint,omitempty"`
	Resources      []ocsfResource   `json:"resources,omitempty"`
	FindingInfo    *ocsfFindingInfo `json:"finding_info,omitempty"`
	Unmapped       *ocsfUnmapped    `json:"unmapped,omitempty"`
}

type ocsfMetadata struct {
	Version     string      `json:"version"`
	Product     ocsfProduct `json:"product"`
	UID         string      `json:"uid"`
	EventCode   string      `json:"event_code"`
	LogName     string      `json:"log_name,omitempty"`
	LogProvider string      `json:"log_provider"`
	// Profiles are the OCSF profiles the record applies.
	Profiles []string `json:"profiles,omitempty"`
	// Sequence is the entry's index: events of one log are totally ordered.
	Sequence *uint64 `json:"sequence,omitempty"`
	// OriginalTime is the leaf's log time exactly as recorded (nanoseconds;
	// time is milliseconds).
	OriginalTime   string `json:"original_time,omitempty"`
	CorrelationUID string `json:"correlation_uid,omitempty"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version"`
}

type ocsfActor struct {
	User    *ocsfUser `json:"user,omitempty"`
	AppName string    `json:"app_name,omitempty"`
}

// ocsfUser is an agent or human by SPIFFE ID (domain: its trust domain), or
// a trust-anchor key by key id.
type ocsfUser struct {
	UID           string `json:"uid"`
	Name          string `json:"name,omitempty"`
	Domain        string `json:"domain,omitempty"`
	Type          string `json:"type,omitempty"`
	TypeID        int    `json:"type_id,omitempty"`
	CredentialUID string `json:"credential_uid,omitempty"`
}

type ocsfAPI struct {
	Operation string `json:"operation"`
}

type ocsfEndpoint struct {
	UID     string `json:"uid,omitempty"`
	SvcName string `json:"svc_name,omitempty"`
}

type ocsfResource struct {
	UID  string `json:"uid"`
	Name string `json:"name,omitempty"`
	Type string `json:"type"`
}

type ocsfFindingInfo struct {
	UID   string   `json:"uid"`
	Title string   `json:"title"`
	Desc  string   `json:"desc,omitempty"`
	Types []string `json:"types,omitempty"`
	// DataSources says where a finding comes from when it is not the
	// follower's own verification: "GET /witnesses", the server's report.
	DataSources []string `json:"data_sources,omitempty"`
}

// ocsfUnmapped carries warrant's own fields. Names are stable: SIEM
// searches and detections key on them.
type ocsfUnmapped struct {
	Kind             string   `json:"kind,omitempty"`
	EntryID          string   `json:"entry_id,omitempty"`
	Decision         string   `json:"decision,omitempty"`
	Reasons          []string `json:"reasons,omitempty"`
	PolicyDigest     string   `json:"policy_digest,omitempty"`
	PolicyIDs        []string `json:"policy_ids,omitempty"`
	CedarVersion     string   `json:"cedar_version,omitempty"`
	DelegationID     string   `json:"delegation_id,omitempty"`
	ParentID         string   `json:"parent_id,omitempty"`
	ChainDepth       int      `json:"chain_depth,omitempty"`
	Issuer           string   `json:"issuer,omitempty"`
	Delegate         string   `json:"delegate,omitempty"`
	RootSubject      string   `json:"root_subject,omitempty"`
	Task             string   `json:"task,omitempty"`
	Scopes           []string `json:"scopes,omitempty"`
	DataClasses      []string `json:"data_classes,omitempty"`
	Destinations     []string `json:"destinations,omitempty"`
	NotBefore        string   `json:"not_before,omitempty"`
	ExpiresAt        string   `json:"expires_at,omitempty"`
	Purpose          string   `json:"purpose,omitempty"`
	TraceID          string   `json:"trace_id,omitempty"`
	A2ATaskID        string   `json:"a2a_task_id,omitempty"`
	MCPRequestID     string   `json:"mcp_request_id,omitempty"`
	RevocationReason string   `json:"revocation_reason,omitempty"`
	Agent            string   `json:"agent,omitempty"`
	KeyID            string   `json:"key_id,omitempty"`
	TokenID          string   `json:"token_id,omitempty"`
	Tier             string   `json:"tier,omitempty"`
	Human            bool     `json:"human,omitempty"`
	KeyRevoked       bool     `json:"key_revoked,omitempty"`
	NewPolicyDigest  string   `json:"recorded_policy_digest,omitempty"`
	RegistrarKeyIDs  []string `json:"registrar_key_ids,omitempty"`
	AdminKeyIDs      []string `json:"admin_key_ids,omitempty"`
	Signers          []string `json:"signers,omitempty"`
	CheckpointSize   uint64   `json:"checkpoint_size,omitempty"`
	AlertReason      string   `json:"alert_reason,omitempty"`
	// Evidence is the alert's evidence when it is text (a checkpoint note),
	// EvidenceBase64 when it is not.
	Evidence       string `json:"evidence,omitempty"`
	EvidenceBase64 []byte `json:"evidence_base64,omitempty"`
	// A witness conflict: the witness, its URL and last error as the
	// server reported them, and reported_by "server" (not verified).
	Witness          string `json:"witness,omitempty"`
	WitnessURL       string `json:"witness_url,omitempty"`
	WitnessErrorKind string `json:"witness_error_kind,omitempty"`
	WitnessError     string `json:"witness_error,omitempty"`
	ReportedBy       string `json:"reported_by,omitempty"`
}

// ocsfClassInfo names a class and its category.
var ocsfClassInfo = map[int]struct {
	category     int
	categoryName string
	className    string
}{
	ocsfAccountChange:    {3, "Identity & Access Management", "Account Change"},
	ocsfUserAccess:       {3, "Identity & Access Management", "User Access Management"},
	ocsfAPIActivity:      {6, "Application Activity", "API Activity"},
	ocsfDetectionFinding: {2, "Findings", "Detection Finding"},
}

// ocsfSeverity maps a level onto OCSF severity_id and its caption.
func ocsfSeverity(l severityLevel) (int, string) {
	switch l {
	case levelInfo:
		return 1, "Informational"
	case levelMedium:
		return 3, "Medium"
	case levelHigh:
		return 4, "High"
	default:
		return 5, "Critical"
	}
}

// newOCSFRecord fills the classification attributes every class shares.
func newOCSFRecord(c entryClass) *ocsfRecord {
	info := ocsfClassInfo[c.ocsfClass]
	r := &ocsfRecord{
		ActivityID:   c.ocsfActivity,
		ActivityName: c.ocsfActivityName,
		CategoryUID:  info.category,
		CategoryName: info.categoryName,
		ClassUID:     c.ocsfClass,
		ClassName:    info.className,
		TypeUID:      c.ocsfClass*100 + c.ocsfActivity,
		TypeName:     info.className + ": " + ocsfActivityCaption(c),
	}
	r.SeverityID, r.Severity = ocsfSeverity(c.level)
	r.Metadata = ocsfMetadata{
		Version:     OCSFVersion,
		Product:     ocsfProduct{Name: Product, VendorName: Vendor, Version: ProductVersion},
		EventCode:   c.sig,
		LogProvider: Product,
	}
	return r
}

// ocsfActivityCaption is the schema's caption of the activity: type_name
// is the caption of type_uid, "<class>: <activity caption>", even when
// activity_name carries warrant's own term for activity 99 Other.
func ocsfActivityCaption(c entryClass) string {
	if c.ocsfActivity == ocsfOther {
		return "Other"
	}
	return c.ocsfActivityName
}

// ocsfPrincipal renders a principal as an OCSF user. Trust-anchor keys are
// Admin accounts; key bindings tell humans (User) from agents. OCSF 1.3.0
// has no user type for a non-human principal (Service came in 1.6.0), so
// an agent is type_id 99 Other with type "Agent", as the schema says for
// a source's own term.
func ocsfPrincipal(p party) *ocsfUser {
	if p.id == "" {
		return nil
	}
	u := &ocsfUser{UID: p.id, Domain: p.domain()}
	switch {
	case p.role != "":
		u.Name, u.Type, u.TypeID = p.role, "Admin", 2
	case p.human:
		u.Type, u.TypeID = "User", 1
	case p.agent:
		u.Type, u.TypeID = "Agent", ocsfOther
	}
	return u
}

// ocsfPrivileges lists what a delegation hands over, one self-describing
// string per item: the task path, then scopes, data classes and
// destinations. A 3005 record requires privileges; the task is always there.
func ocsfPrivileges(v *eventView) []string {
	p := []string{"task:" + v.task}
	for _, s := range v.scopes {
		p = append(p, "scope:"+s)
	}
	for _, s := range v.dataClasses {
		p = append(p, "data_class:"+s)
	}
	for _, s := range v.destinations {
		p = append(p, "destination:"+s)
	}
	return p
}

// ocsfAPIOperations names the request behind a 6003 record, by signature id.
var ocsfAPIOperations = map[string]string{
	classDelegationDenied.sig: "delegate",
	classRevocationDenied.sig: "revoke",
	classPolicyUpdated.sig:    "set_policy",
	classPolicyDenied.sig:     "set_policy",
	classPolicyRecorded.sig:   "record_default_policy",
	classConfigCreated.sig:    "record_config",
	classConfigUpdated.sig:    "record_config",
	classTokenIssued.sig:      "token_exchange",
	classTokenDenied.sig:      "token_exchange",
}

func (ocsfFormat) Event(e *Event) ([]byte, error) {
	v, err := describeEvent(e)
	if err != nil {
		return nil, err
	}
	r := newOCSFRecord(v.c)
	r.Time = unixMillis(e.Leaf.Time)
	r.StatusID, r.Status = 1, "Success"
	if len(v.reasons) > 0 {
		r.StatusID, r.Status = 2, "Failure"
		r.StatusDetail = strings.Join(v.reasons, ",")
	}
	r.Message = v.message
	r.Metadata.UID = e.ID()
	r.Metadata.LogName = e.Origin
	// metadata.sequence is an OCSF integer_t (32 bits): an index beyond it
	// is left out (metadata.uid still names the entry).
	if e.Index <= math.MaxInt32 {
		idx := e.Index
		r.Metadata.Sequence = &idx
	}
	r.Metadata.OriginalTime = e.Leaf.LogTime
	r.Metadata.CorrelationUID = v.traceID

	actor := ocsfPrincipal(v.actor)
	switch v.c.ocsfClass {
	case ocsfUserAccess:
		// In 1.3.0, 3005 has actor only through the host profile (IAM
		// classes include it); declaring it is how the issuer or revoker
		// gets its standard place.
		r.Metadata.Profiles = []string{ocsfProfileHost}
		r.Actor = &ocsfActor{User: actor}
		if v.c == classRevocationAccepted {
			// A revocation names the delegation, not its delegate (who
			// loses the privileges, with everyone under it): the user is
			// the revoked delegation, joined to its grant by delegation_id.
			r.User = &ocsfUser{UID: v.delegation, Type: "Delegation", TypeID: ocsfOther}
			r.Privileges = []string{"delegation:" + v.delegation}
		} else {
			r.User = ocsfPrincipal(v.subject)
			r.Privileges = ocsfPrivileges(v)
		}
	case ocsfAccountChange:
		r.Actor = &ocsfActor{User: actor}
		if r.User = ocsfPrincipal(v.subject); r.User != nil {
			r.User.CredentialUID = v.keyID
		}
	case ocsfAPIActivity:
		r.API = &ocsfAPI{Operation: ocsfAPIOperations[v.c.sig]}
		// The log sees no network source it could vouch for: the source of
		// a signed request is its signer's identity; of an entry the log
		// writes itself, the log.
		if actor != nil {
			r.Actor = &ocsfActor{User: actor}
			r.SrcEndpoint = &ocsfEndpoint{UID: actor.UID}
		} else {
			r.Actor = &ocsfActor{AppName: Product}
			r.SrcEndpoint = &ocsfEndpoint{SvcName: Product}
		}
		r.Resources = ocsfResources(v)
	}

	r.Unmapped = &ocsfUnmapped{
		Kind:             v.kind,
		EntryID:          v.entryID,
		Decision:         v.outcome,
		Reasons:          v.reasons,
		PolicyDigest:     v.policyDigest,
		PolicyIDs:        v.policyIDs,
		CedarVersion:     v.cedarVersion,
		DelegationID:     v.delegation,
		ParentID:         v.parent,
		ChainDepth:       v.depth,
		RootSubject:      v.rootSubject,
		Task:             v.task,
		Scopes:           v.scopes,
		DataClasses:      v.dataClasses,
		Destinations:     v.destinations,
		NotBefore:        v.notBefore,
		ExpiresAt:        v.expiresAt,
		Purpose:          v.purpose,
		TraceID:          v.traceID,
		A2ATaskID:        v.a2aTaskID,
		MCPRequestID:     v.mcpRequestID,
		RevocationReason: v.revocationReason,
		KeyID:            v.keyID,
		TokenID:          v.tokenID,
		Tier:             v.tier,
		Human:            v.subject.human,
		KeyRevoked:       v.keyRevoked,
		NewPolicyDigest:  v.newPolicyDigest,
		RegistrarKeyIDs:  v.registrarKeys,
		AdminKeyIDs:      v.adminKeys,
		Signers:          v.signers,
		CheckpointSize:   e.CheckpointSize,
	}
	r.Unmapped.Issuer, r.Unmapped.Delegate, r.Unmapped.Agent = v.issuer, v.delegate, v.agent
	return marshalOCSF(r)
}

// ocsfResources names what a 6003 request was about.
func ocsfResources(v *eventView) []ocsfResource {
	var out []ocsfResource
	for _, res := range v.resources {
		out = append(out, ocsfResource{UID: res.uid, Name: res.name, Type: res.typ})
	}
	return out
}

// Alert renders a follower alert as a 2004 Detection Finding: it is a
// detection by a monitoring component (the follower), not an API call, and
// OCSF's findings category is where SIEMs look for alerts. severity_id is
// 5 (Critical), 4 (High) for a witness conflict; status_id 1 is the
// finding status New. A witness conflict names the witness as the
// affected resource and the server's report as its data source.
func (ocsfFormat) Alert(a *Alert) ([]byte, error) {
	c := alertClass(a)
	r := newOCSFRecord(c)
	r.Time = unixMillis(a.Time)
	r.StatusID, r.Status = 1, "New"
	r.Message = alertMessage(a)
	r.Metadata.UID = alertID(a)
	r.Metadata.LogName = a.Origin
	r.FindingInfo = &ocsfFindingInfo{
		UID:   alertID(a),
		Title: c.name + ": " + a.Reason,
		Desc:  a.Message,
		Types: []string{a.Reason},
	}
	r.Unmapped = &ocsfUnmapped{AlertReason: a.Reason}
	if c == classWitnessConflict {
		r.FindingInfo.DataSources = []string{"GET /witnesses"}
		if a.Witness != "" {
			r.Resources = []ocsfResource{{UID: a.Witness, Name: a.WitnessURL, Type: "witness"}}
		}
		r.Unmapped.Witness, r.Unmapped.WitnessURL = a.Witness, a.WitnessURL
		r.Unmapped.WitnessErrorKind, r.Unmapped.WitnessError = a.WitnessErrorKind, a.WitnessError
		r.Unmapped.ReportedBy = "server"
	}
	if len(a.Evidence) > 0 {
		if utf8.Valid(a.Evidence) {
			r.Unmapped.Evidence = string(a.Evidence)
		} else {
			r.Unmapped.EvidenceBase64 = a.Evidence
		}
	}
	return marshalOCSF(r)
}

// marshalOCSF encodes a record on one line. HTML escaping is off (SPIFFE
// IDs and reasons stay readable); encoding/json still escapes every
// control character and U+2028/U+2029, so a record never spans lines.
func marshalOCSF(r *ocsfRecord) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

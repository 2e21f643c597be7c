package siem

import (
	"strconv"
	"strings"
)

// CEF returns the ArcSight Common Event Format rendering:
//
//	CEF:0|warrantlog|warrant|<version>|<signature id>|<name>|<severity>|<extensions>
//
// Signature ids, names and severities are those of MAPPING.md. Extensions
// use standard keys where CEF has one (rt, externalId, suser, duser, act,
// outcome, reason, cat, msg) and labelled custom fields for the rest:
//
//	cs1 delegationId   cs2 parentId   cs3 policyDigest
//	cs4 task           cs5 logOrigin  cs6 detail (purpose or revocation reason)
//	cn1 logIndex       cn2 checkpointSize  cn3 chainDepth
//	flexString1 keyId (key bindings; witness for witness alerts)
//	flexString2 tier (key bindings; evidenceDigest for alerts)
//
// An empty field is left out together with its label.
func CEF() Format { return cefFormat{} }

type cefFormat struct{}

// cefSeverity maps a level onto CEF's 0-10 scale (0-3 low, 4-6 medium,
// 7-8 high, 9-10 very high).
func cefSeverity(l severityLevel) int {
	switch l {
	case levelInfo:
		return 1
	case levelMedium:
		return 5
	case levelHigh:
		return 8
	default:
		return 10
	}
}

// cefHeaderEscaper escapes header fields: backslash and pipe. Line breaks
// are not valid in a header at all; they become spaces so that the record
// stays on one line (header fields are warrant's own constants anyway).
var cefHeaderEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r", " ", "\n", " ")

// cefValueEscaper escapes extension values: backslash, equals sign and line
// breaks (as \n and \r). Pipes need no escape in extensions.
var cefValueEscaper = strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r", `\r`, "\n", `\n`)

// cefRecord builds a CEF line.
type cefRecord struct {
	b strings.Builder
	// ext is set once the first extension is written.
	ext bool
}

func newCEFRecord(c entryClass) *cefRecord {
	r := &cefRecord{}
	r.b.WriteString("CEF:0")
	for _, f := range []string{Vendor, Product, ProductVersion, c.sig, c.name, strconv.Itoa(cefSeverity(c.level))} {
		r.b.WriteByte('|')
		r.b.WriteString(cefHeaderEscaper.Replace(f))
	}
	r.b.WriteByte('|')
	return r
}

// add appends key=value, escaped, unless value is empty.
func (r *cefRecord) add(key, value string) {
	if value == "" {
		return
	}
	if r.ext {
		r.b.WriteByte(' ')
	}
	r.ext = true
	r.b.WriteString(key)
	r.b.WriteByte('=')
	r.b.WriteString(cefValueEscaper.Replace(value))
}

// labeled appends a custom field and its label (key+"Label"), unless value
// is empty.
func (r *cefRecord) labeled(key, label, value string) {
	if value == "" {
		return
	}
	r.add(key+"Label", label)
	r.add(key, value)
}

func (r *cefRecord) bytes() []byte { return []byte(r.b.String()) }

func (cefFormat) Event(e *Event) ([]byte, error) {
	v, err := describeEvent(e)
	if err != nil {
		return nil, err
	}
	r := newCEFRecord(v.c)
	r.add("rt", strconv.FormatInt(unixMillis(e.Leaf.Time), 10))
	r.add("externalId", e.ID())
	r.add("cat", v.kind)
	r.add("act", v.outcome)
	outcome := "success"
	if len(v.reasons) > 0 {
		outcome = "failure"
	}
	r.add("outcome", outcome)
	r.add("reason", strings.Join(v.reasons, ","))
	r.add("suser", v.actor.id)
	r.add("duser", v.subject.id)
	r.add("msg", v.message)
	r.labeled("cs1", "delegationId", v.delegation)
	r.labeled("cs2", "parentId", v.parent)
	// A policy entry is about the policy it records; any other decision
	// names the policy in force.
	policy := v.newPolicyDigest
	if policy == "" {
		policy = v.policyDigest
	}
	r.labeled("cs3", "policyDigest", policy)
	r.labeled("cs4", "task", v.task)
	r.labeled("cs5", "logOrigin", e.Origin)
	detail := v.purpose
	if detail == "" {
		detail = v.revocationReason
	}
	r.labeled("cs6", "detail", detail)
	r.labeled("cn1", "logIndex", strconv.FormatUint(e.Index, 10))
	r.labeled("cn2", "checkpointSize", strconv.FormatUint(e.CheckpointSize, 10))
	if v.depth > 0 {
		r.labeled("cn3", "chainDepth", strconv.Itoa(v.depth))
	}
	r.labeled("flexString1", "keyId", v.keyID)
	r.labeled("flexString2", "tier", v.tier)
	return r.bytes(), nil
}

// Alert renders an alert; a witness conflict names the witness in
// flexString1 (label witness), its URL in request, and its last error in
// cs6 detail.
func (cefFormat) Alert(a *Alert) ([]byte, error) {
	r := newCEFRecord(alertClass(a))
	r.add("rt", strconv.FormatInt(unixMillis(a.Time), 10))
	r.add("externalId", alertID(a))
	r.add("cat", "alert")
	r.add("act", "alert")
	r.add("reason", a.Reason)
	r.add("request", a.WitnessURL)
	r.add("msg", alertMessage(a))
	r.labeled("cs5", "logOrigin", a.Origin)
	if a.WitnessErrorKind != "" {
		r.labeled("cs6", "detail", a.WitnessErrorKind+": "+a.WitnessError)
	}
	r.labeled("flexString1", "witness", a.Witness)
	r.labeled("flexString2", "evidenceDigest", evidenceDigest(a))
	return r.bytes(), nil
}

package proofs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Payload types. A signature vouches for a payload only under the type it was
// made for: DSSE signs the type together with the payload, and every check
// here names the type it expects.
const (
	PayloadTypeDelegation = "application/vnd.warrant.delegation.v1+json"
	PayloadTypeRevocation = "application/vnd.warrant.revocation.v1+json"
	PayloadTypeAgent      = "application/vnd.warrant.agent.v1+json"
	PayloadTypePolicy     = "application/vnd.warrant.policy.v1+json"
)

// Payload bounds.
const (
	// MaxListItems bounds every list in a payload (scopes, data classes,
	// destinations).
	MaxListItems = 64
	// maxFieldLen bounds every free-form string field.
	maxFieldLen = 256
	// maxPurposeLen bounds the purpose text.
	maxPurposeLen = 1024
)

// Trust tiers of registered agents.
const (
	TierDraft   = "draft"
	TierExecute = "execute"
)

// TimeLayout is the layout of times in payloads: RFC 3339, UTC, whole seconds.
const TimeLayout = "2006-01-02T15:04:05Z"

// KeyBinding binds an agent's SPIFFE ID to a public key and a trust tier. It
// is the payload of PayloadTypeAgent envelopes, signed by a registrar key that
// the log's configuration names.
type KeyBinding struct {
	// Agent is the SPIFFE ID being registered.
	Agent string `json:"agent"`
	// PublicKey is the agent's PKIX DER public key.
	PublicKey []byte `json:"public_key"`
	// Tier is TierDraft or TierExecute.
	Tier string `json:"tier"`
	// Human marks a human principal, who may issue root grants and approve
	// high-impact delegations.
	Human bool `json:"human,omitempty"`
	// Revoked withdraws the agent's key: after this entry the agent has no
	// binding in force until a new one is registered. A new binding with
	// another key rotates it.
	Revoked bool `json:"revoked,omitempty"`
	// RevokeIssued, only with Revoked, also revokes every delegation the
	// agent issued that was accepted before this entry, and by cascade
	// everything under them: the withdrawn key's outstanding grants stop
	// spawning children. Delegations of a later binding are not affected.
	RevokeIssued bool `json:"revoke_issued,omitempty"`
	// IssuedAt is when the registrar signed the binding.
	IssuedAt string `json:"issued_at"`
	// Nonce makes every binding envelope unique.
	Nonce string `json:"nonce"`
}

// Delegation is the payload of PayloadTypeDelegation envelopes: Issuer hands
// Delegate a task under Parent, within the listed bounds and times.
type Delegation struct {
	// ID is the delegation's opaque unique id.
	ID string `json:"id"`
	// Issuer is the SPIFFE ID of the signing agent.
	Issuer string `json:"issuer"`
	// Delegate is the SPIFFE ID of the agent receiving the task.
	Delegate string `json:"delegate"`
	// RootSubject is the human principal at the root of the chain.
	RootSubject string `json:"root_subject"`
	// Parent is the id of the delegation that gave Issuer its authority;
	// empty only for a root grant.
	Parent string `json:"parent,omitempty"`
	// Task is a "/"-separated task type path, such as "/tickets/triage".
	Task string `json:"task"`
	// Scopes, DataClasses and Destinations are sorted sets of strings.
	Scopes       []string `json:"scopes,omitempty"`
	DataClasses  []string `json:"data_classes,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
	// NotBefore and ExpiresAt bound the delegation in time (TimeLayout).
	NotBefore string `json:"not_before"`
	ExpiresAt string `json:"expires_at"`
	// Nonce is unique per issuer.
	Nonce string `json:"nonce"`
	// Correlation ids and purpose, for tracing across systems.
	TraceID      string `json:"trace_id,omitempty"`
	A2ATaskID    string `json:"a2a_task_id,omitempty"`
	MCPRequestID string `json:"mcp_request_id,omitempty"`
	Purpose      string `json:"purpose,omitempty"`
}

// decodeCanonical decodes a payload that must be the canonical encoding of
// v: encoding/json's output for the decoded value, byte for byte. This
// rules out duplicate keys, case-folded keys, unknown fields, whitespace,
// unsorted or empty optional fields and alternative escapes, so that a
// signature covers exactly one meaning.
//
// The common case, a canonical payload, is decoded with json.Unmarshal,
// which reads the bytes in place (a json.Decoder copies them into buffers
// it grows as it reads). Unmarshal is laxer (unknown fields, case-folded
// keys), but nothing it accepts beyond the Decoder re-encodes to the same
// bytes, so the comparison refuses it; a payload that fails either way is
// decoded again with the strict Decoder, for the precise error.
func decodeCanonical(payload []byte, v any) error {
	if json.Unmarshal(payload, v) == nil {
		if out, err := json.Marshal(v); err == nil && bytes.Equal(out, payload) {
			return nil
		}
	}
	reflect.ValueOf(v).Elem().SetZero()
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(ReasonPayloadMalformed, "decoding payload: %v", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return Errorf(ReasonPayloadMalformed, "re-encoding payload: %v", err)
	}
	if !bytes.Equal(out, payload) {
		return Errorf(ReasonPayloadNonCanonical, "payload is not in canonical form (compact JSON, schema field order, sorted lists, empty optional fields omitted)")
	}
	return nil
}

// ParseKeyBinding decodes and validates a key-binding payload.
func ParseKeyBinding(payload []byte) (*KeyBinding, error) {
	var kb KeyBinding
	if err := decodeCanonical(payload, &kb); err != nil {
		return nil, err
	}
	if err := kb.Validate(); err != nil {
		return nil, err
	}
	return &kb, nil
}

// Validate checks the binding's fields. It is what ParseKeyBinding applies.
func (kb *KeyBinding) Validate() error {
	if err := validateSPIFFE("agent", kb.Agent); err != nil {
		return err
	}
	if _, err := ParsePublicKeyDER(kb.PublicKey); err != nil {
		return err
	}
	if kb.Tier != TierDraft && kb.Tier != TierExecute {
		return Errorf(ReasonPayloadMalformed, "tier must be %q or %q", TierDraft, TierExecute)
	}
	if kb.RevokeIssued && !kb.Revoked {
		return Errorf(ReasonPayloadMalformed, "revoke_issued is only for a binding that withdraws the key (revoked)")
	}
	if _, err := ParseTime("issued_at", kb.IssuedAt); err != nil {
		return err
	}
	return validateNonce(kb.Nonce)
}

// MarshalPayload returns the canonical encoding of a payload value.
func MarshalPayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case *Delegation:
		c := *p
		c.normalize()
		v = &c
	case Delegation:
		p.normalize()
		v = &p
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding payload: %w", err)
	}
	return b, nil
}

// normalize sorts and de-duplicates the set fields, so that the SDK always
// produces the canonical form.
func (d *Delegation) normalize() {
	for _, s := range []*[]string{&d.Scopes, &d.DataClasses, &d.Destinations} {
		*s = slices.Clone(*s) // never reorder the caller's slices
		slices.Sort(*s)
		*s = slices.Compact(*s)
		if len(*s) == 0 {
			*s = nil
		}
	}
}

// ParseDelegation decodes and validates a delegation payload.
func ParseDelegation(payload []byte) (*Delegation, error) {
	var d Delegation
	if err := decodeCanonical(payload, &d); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Validate checks everything about a delegation that needs no log state.
func (d *Delegation) Validate() error {
	if err := validateDelegationID("id", d.ID); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"issuer", d.Issuer}, {"delegate", d.Delegate}, {"root_subject", d.RootSubject}} {
		if err := validateSPIFFE(f.name, f.v); err != nil {
			return err
		}
	}
	if d.Parent != "" {
		if err := validateDelegationID("parent", d.Parent); err != nil {
			return err
		}
	}
	if err := ValidateTaskPath(d.Task); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		v    []string
	}{{"scopes", d.Scopes}, {"data_classes", d.DataClasses}, {"destinations", d.Destinations}} {
		if err := validateSet(l.name, l.v); err != nil {
			return err
		}
	}
	nb, err := ParseTime("not_before", d.NotBefore)
	if err != nil {
		return err
	}
	exp, err := ParseTime("expires_at", d.ExpiresAt)
	if err != nil {
		return err
	}
	if !exp.After(nb) {
		return Errorf(ReasonPayloadMalformed, "expires_at must be after not_before")
	}
	if err := validateNonce(d.Nonce); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"trace_id", d.TraceID}, {"a2a_task_id", d.A2ATaskID}, {"mcp_request_id", d.MCPRequestID}} {
		if len(f.v) > maxFieldLen {
			return Errorf(ReasonFieldTooLong, "%s longer than %d bytes", f.name, maxFieldLen)
		}
	}
	if len(d.Purpose) > maxPurposeLen {
		return Errorf(ReasonFieldTooLong, "purpose longer than %d bytes", maxPurposeLen)
	}
	return nil
}

// ParseTime parses a payload time (TimeLayout).
func ParseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Format(TimeLayout) != s {
		return time.Time{}, Errorf(ReasonTimeMalformed, "%s must be RFC 3339 UTC with whole seconds, like 2026-01-02T15:04:05Z", field)
	}
	return t, nil
}

// FormatTime formats t for a payload (TimeLayout, UTC, truncated to seconds).
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(TimeLayout) }

func validateSPIFFE(field, s string) error {
	if s == "" {
		return Errorf(ReasonFieldMissing, "%s is missing", field)
	}
	if len(s) > 2048 {
		return Errorf(ReasonFieldTooLong, "%s longer than 2048 bytes", field)
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Errorf(ReasonIdentityMalformed, "%s %q is not a SPIFFE ID: %v", field, s, err)
	}
	if id.String() != s {
		return Errorf(ReasonIdentityMalformed, "%s %q is not in canonical SPIFFE ID form", field, s)
	}
	return nil
}

// ValidateTaskPath checks a task type: "/"-separated, non-empty segments of
// lower-case letters, digits and "-_.~", no "." or ".." segments, at most
// 256 bytes. Like labels, a task has one spelling, so a policy matching a
// task or its segments cannot be dodged by case (ReasonCaseNonCanonical).
func ValidateTaskPath(p string) error {
	if p == "" {
		return Errorf(ReasonFieldMissing, "task is missing")
	}
	if len(p) > maxFieldLen {
		return Errorf(ReasonFieldTooLong, "task longer than %d bytes", maxFieldLen)
	}
	if p == "/" {
		return nil // the whole task space: only meaningful for root grants
	}
	if !strings.HasPrefix(p, "/") {
		return Errorf(ReasonPayloadMalformed, "task %q must start with /", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return Errorf(ReasonPayloadMalformed, "task %q has an empty, . or .. segment", p)
		}
		for _, r := range seg {
			if r >= 'A' && r <= 'Z' {
				return Errorf(ReasonCaseNonCanonical, "task %q is not lower case (write %q)", p, strings.ToLower(p))
			}
			if !isTokenRune(r) || r == ':' {
				return Errorf(ReasonPayloadMalformed, "task %q has character %q", p, r)
			}
		}
	}
	return nil
}

func isTokenRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '-' || r == '_' || r == '.' || r == '~' || r == ':'
}

// validateToken checks ids: 1..128 bytes of letters, digits and "-_.~:".
func validateToken(field, s string) error {
	if s == "" {
		return Errorf(ReasonFieldMissing, "%s is missing", field)
	}
	if len(s) > 128 {
		return Errorf(ReasonFieldTooLong, "%s longer than 128 bytes", field)
	}
	for _, r := range s {
		if !isTokenRune(r) {
			return Errorf(ReasonPayloadMalformed, "%s has character %q", field, r)
		}
	}
	return nil
}

// reservedIDPrefix is the namespace of the ids the log derives for entries
// other than delegations (ParsedLeaf.ID: "sha256:<hex>" of the envelope or
// leaf). A delegation id never lies in it, so an id names one entry.
const reservedIDPrefix = "sha256:"

// validateDelegationID checks a delegation id: a token outside the
// reserved namespace (in any case, so no spelling of it is an id either).
func validateDelegationID(field, s string) error {
	if err := validateToken(field, s); err != nil {
		return err
	}
	if len(s) >= len(reservedIDPrefix) && strings.EqualFold(s[:len(reservedIDPrefix)], reservedIDPrefix) {
		return Errorf(ReasonIDReserved, "%s %q: ids beginning %q name log entries by hash, not delegations", field, s, reservedIDPrefix)
	}
	return nil
}

func validateNonce(s string) error {
	if len(s) < 8 {
		return Errorf(ReasonPayloadMalformed, "nonce must be at least 8 bytes")
	}
	return validateToken("nonce", s)
}

// validateSet checks a sorted, duplicate-free list of labels (scopes, data
// classes, destinations). A label has one spelling, so that a policy
// matching "restricted" or an action "admin" cannot be dodged by writing
// "Restricted" or "tickets:ADMIN": 1 to 256 bytes of lower-case ASCII
// letters, digits and "-_.:/~". An upper-case letter is refused with
// ReasonCaseNonCanonical, any other character with ReasonLabelMalformed.
func validateSet(field string, v []string) error {
	if len(v) > MaxListItems {
		return Errorf(ReasonListTooLong, "%s has %d items, limit %d", field, len(v), MaxListItems)
	}
	for i, s := range v {
		if s == "" {
			return Errorf(ReasonPayloadMalformed, "%s items must not be empty", field)
		}
		if len(s) > maxFieldLen {
			return Errorf(ReasonFieldTooLong, "%s items must be at most %d bytes", field, maxFieldLen)
		}
		if err := validateLabel(field, s); err != nil {
			return err
		}
		if i > 0 && v[i-1] >= s {
			return Errorf(ReasonPayloadNonCanonical, "%s must be sorted and without duplicates", field)
		}
	}
	return nil
}

// isLabelByte reports whether c may appear in a label.
func isLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '~'
}

func validateLabel(field, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLabelByte(c) {
			continue
		}
		if c >= 'A' && c <= 'Z' {
			return Errorf(ReasonCaseNonCanonical, "%s item %q is not lower case (write %q)", field, s, strings.ToLower(s))
		}
		return Errorf(ReasonLabelMalformed, "%s item %q has character %q (allowed: a-z 0-9 - _ . : / ~)", field, s, rune(c))
	}
	return nil
}

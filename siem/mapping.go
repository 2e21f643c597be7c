package siem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warrantlog/warrant/proofs"
)

// This file holds what the three renderings share: one classification of
// every entry kind and outcome (the entryClass table), and one flattened
// view of an event (describeEvent). OCSF, CEF and syslog render the same
// view, so they cannot disagree about what an entry was, how severe it is
// or which fields it carries. MAPPING.md documents the table below.

// severityLevel is warrant's own four-step severity scale. Each format maps
// it onto its own range (OCSF severity_id, CEF 0-10, syslog severity), so
// that a change of policy is made once, here.
type severityLevel int

const (
	// levelInfo: the log accepted or recorded something; normal operation.
	levelInfo severityLevel = iota
	// levelMedium: an authentic request was denied. SIEMs must see these
	// (siem/MAPPING.md): repeated denials are how probing shows up.
	levelMedium
	// levelHigh: authority was withdrawn (a delegation or an agent's key
	// revoked): often the trace of an incident response.
	levelHigh
	// levelCritical: the follower found the log misbehaving (fork,
	// rollback, bad signature): nothing the log says can be trusted.
	levelCritical
)

// OCSF class and category ids (OCSF 1.3.0).
const (
	ocsfAccountChange    = 3001 // Identity & Access Management: Account Change
	ocsfUserAccess       = 3005 // Identity & Access Management: User Access Management
	ocsfAPIActivity      = 6003 // Application Activity: API Activity
	ocsfDetectionFinding = 2004 // Findings: Detection Finding
)

// ocsfOther is the enum value 99 Other of every OCSF enum: its sibling
// (activity_name, type) carries the source's own term, never "Other".
const ocsfOther = 99

// ocsfProfileHost is the OCSF profile that gives 1.3.0 IAM classes actor.
const ocsfProfileHost = "host"

// entryClass says how one entry kind and outcome is reported in every format.
type entryClass struct {
	// sig names the event type: CEF Signature ID, syslog MSGID and OCSF
	// metadata.event_code. At most 32 printable ASCII characters (MSGID).
	sig string
	// name is the CEF Name: a short human-readable event type.
	name string
	// ocsfClass, ocsfActivity and ocsfActivityName are the OCSF class_uid,
	// activity_id and activity_name.
	ocsfClass        int
	ocsfActivity     int
	ocsfActivityName string
	level            severityLevel
}

// The classification table. Denied delegations and revocations leave 3005
// (which reports privileges actually assigned or revoked) for 6003 API
// Activity with status Failure: the request was made, nothing changed.
// Key bindings stay in 3001 whatever the outcome, as the identity
// lifecycle of the agent, with activity Other for a denial.
var (
	classDelegationAccepted = entryClass{"delegation-accepted", "Delegation granted", ocsfUserAccess, 1, "Assign Privileges", levelInfo}
	classDelegationDenied   = entryClass{"delegation-denied", "Delegation denied", ocsfAPIActivity, 1, "Create", levelMedium}
	classRevocationAccepted = entryClass{"revocation-accepted", "Delegation revoked", ocsfUserAccess, 2, "Revoke Privileges", levelHigh}
	classRevocationDenied   = entryClass{"revocation-denied", "Revocation denied", ocsfAPIActivity, 4, "Delete", levelMedium}
	classKeyBound           = entryClass{"key-binding-created", "Agent key bound", ocsfAccountChange, 1, "Create", levelInfo}
	classKeyRevoked         = entryClass{"key-binding-revoked", "Agent key revoked", ocsfAccountChange, 5, "Disable", levelHigh}
	classKeyDenied          = entryClass{"key-binding-denied", "Key binding denied", ocsfAccountChange, ocsfOther, "Key Binding Denied", levelMedium}
	classPolicyUpdated      = entryClass{"policy-updated", "Policy updated", ocsfAPIActivity, 3, "Update", levelInfo}
	classPolicyDenied       = entryClass{"policy-denied", "Policy update denied", ocsfAPIActivity, 3, "Update", levelMedium}
	classPolicyRecorded     = entryClass{"policy-recorded", "Default policy recorded", ocsfAPIActivity, 1, "Create", levelInfo}
	classConfigCreated      = entryClass{"log-config-created", "Log configuration recorded", ocsfAPIActivity, 1, "Create", levelInfo}
	classConfigUpdated      = entryClass{"log-config-updated", "Log configuration changed", ocsfAPIActivity, 3, "Update", levelInfo}
	// A token exchange is a request to the log's token endpoint: 6003,
	// Create (an access token), Failure when denied.
	classTokenIssued = entryClass{"token-issued", "Access token issued", ocsfAPIActivity, 1, "Create", levelInfo}
	classTokenDenied = entryClass{"token-denied", "Token exchange denied", ocsfAPIActivity, 1, "Create", levelMedium}
	classAlert       = entryClass{"alert", "Log integrity alert", ocsfDetectionFinding, 1, "Create", levelCritical}
	// A witness conflict is high, not critical: it is the server's report,
	// which the follower cannot check, and the follower's own checks hold.
	classWitnessConflict = entryClass{"witness-conflict", "Witness reports another history", ocsfDetectionFinding, 1, "Create", levelHigh}
)

// alertClass classifies an alert.
func alertClass(a *Alert) entryClass {
	if a.Reason == proofs.ReasonWitnessConflict {
		return classWitnessConflict
	}
	return classAlert
}

// Outcomes as rendered: the leaf's decision, or outcomeRecorded for the
// entries the log writes itself (configuration, default policy), which
// carry no decision.
const outcomeRecorded = "recorded"

// party is who acted or was acted upon: an agent or human by SPIFFE
// ID, or a trust-anchor key (admin, registrar) by key id.
type party struct {
	// id is the SPIFFE ID, or the key id of a trust-anchor key.
	id string
	// role is "admin" or "registrar" for keys, empty for SPIFFE IDs.
	role string
	// human is known only for key bindings (the binding says so).
	human, agent bool
}

// domain returns the SPIFFE trust domain of a principal, or "".
func (p party) domain() string {
	if p.role != "" {
		return ""
	}
	id, err := spiffeid.FromString(p.id)
	if err != nil {
		return ""
	}
	return id.TrustDomain().Name()
}

// eventView is an event flattened into the fields the formats render. Empty
// fields are left out of every rendering.
type eventView struct {
	c       entryClass
	kind    string
	outcome string // proofs.OutcomeAccepted, proofs.OutcomeDenied or outcomeRecorded
	reasons []string
	// entryID is the entry's id (proofs.ParsedLeaf.ID).
	entryID string
	// actor made the request (issuer, revoker, registrar, admin); empty for
	// entries the log writes itself. subject is who it concerns (delegate,
	// registered agent).
	actor, subject party
	// signers are the key ids of every envelope signature (the issuer's and
	// any human approver's), sorted.
	signers []string
	// issuer, delegate and agent are the parties as the payload names them
	// (a delegation's issuer and delegate, a revocation's revoker, a key
	// binding's agent), for formats that keep them apart from actor and
	// subject.
	issuer, delegate, agent string
	// resources are what the request is about (a delegation, an agent, a
	// policy, the configuration), for formats that list them.
	resources []resource

	// Delegations; delegation is also the revoked delegation of a revocation.
	delegation, parent, rootSubject, task string
	scopes, dataClasses, destinations     []string
	notBefore, expiresAt                  string
	depth                                 int
	purpose                               string
	traceID, a2aTaskID, mcpRequestID      string

	// Revocations.
	revocationReason string

	// Decisions.
	policyDigest string
	policyIDs    []string
	cedarVersion string

	// Policy entries: the digest of the policy text this entry records.
	newPolicyDigest string

	// Key bindings.
	keyID, tier string
	keyRevoked  bool

	// Token exchanges: the token's jti.
	tokenID string

	// Log configuration: the trust-anchor key ids it names.
	registrarKeys, adminKeys []string

	message string
}

// resource is one thing a request is about.
type resource struct {
	uid, name, typ string
}

// describe classifies an event and flattens it. It fails only on events
// that no verified log entry can produce (no leaf, unknown kind, a payload
// missing for its kind).
func describeEvent(e *Event) (*eventView, error) {
	if e == nil || e.Leaf == nil {
		return nil, errors.New("siem: event without a leaf")
	}
	l := e.Leaf
	v := &eventView{kind: l.Kind, entryID: l.ID(), outcome: outcomeRecorded, depth: e.Depth}
	if l.Decision != nil {
		v.outcome = l.Decision.Outcome
		v.reasons = l.Decision.Reasons
		v.policyDigest = l.Decision.PolicyDigest
		v.policyIDs = l.Decision.PolicyIDs
		v.cedarVersion = l.Decision.CedarVersion
	}
	denied := v.outcome == proofs.OutcomeDenied
	if l.Env != nil {
		for _, s := range l.Env.Signatures {
			v.signers = append(v.signers, s.KeyID)
		}
	}
	// firstKey names a trust-anchor signer: the log accepts admin- and
	// registrar-signed envelopes with one signature.
	firstKey := func(role string) party {
		if len(v.signers) == 0 {
			return party{}
		}
		return party{id: v.signers[0], role: role}
	}
	switch l.Kind {
	case proofs.KindDelegation:
		d := l.Delegation
		if d == nil {
			return nil, errors.New("siem: delegation leaf without its payload")
		}
		v.c = classDelegationAccepted
		if denied {
			v.c = classDelegationDenied
		}
		v.actor, v.subject = party{id: d.Issuer}, party{id: d.Delegate}
		v.issuer, v.delegate = d.Issuer, d.Delegate
		v.resources = []resource{{uid: d.ID, name: d.Task, typ: "delegation"}, {uid: d.Delegate, typ: "agent"}}
		v.delegation, v.parent, v.rootSubject, v.task = d.ID, d.Parent, d.RootSubject, d.Task
		v.scopes, v.dataClasses, v.destinations = d.Scopes, d.DataClasses, d.Destinations
		v.notBefore, v.expiresAt, v.purpose = d.NotBefore, d.ExpiresAt, d.Purpose
		v.traceID, v.a2aTaskID, v.mcpRequestID = d.TraceID, d.A2ATaskID, d.MCPRequestID
		kindWord := "grant"
		if d.Parent == "" {
			kindWord = "root grant"
		}
		if denied {
			v.message = fmt.Sprintf("%s %s from %s to %s for %s denied: %s", kindWord, d.ID, d.Issuer, d.Delegate, d.Task, strings.Join(v.reasons, ", "))
		} else {
			v.message = fmt.Sprintf("%s delegated %s to %s (%s %s%s)", d.Issuer, d.Task, d.Delegate, kindWord, d.ID, depthSuffix(e.Depth))
		}
	case proofs.KindRevocation:
		r := l.Revocation
		if r == nil {
			return nil, errors.New("siem: revocation leaf without its payload")
		}
		v.c = classRevocationAccepted
		if denied {
			v.c = classRevocationDenied
		}
		v.actor = party{id: r.Issuer}
		by := r.Issuer
		if r.Issuer == "" { // an administrative revocation
			v.actor = firstKey("admin")
			by = "admin key " + v.actor.id
		}
		v.delegation, v.revocationReason = r.Delegation, r.Reason
		v.issuer = v.actor.id
		v.resources = []resource{{uid: r.Delegation, typ: "delegation"}}
		if denied {
			v.message = fmt.Sprintf("revocation of delegation %s by %s denied: %s", r.Delegation, by, strings.Join(v.reasons, ", "))
		} else {
			v.message = fmt.Sprintf("delegation %s and every delegation under it revoked by %s", r.Delegation, by)
		}
	case proofs.KindKeyBinding:
		kb := l.KeyBinding
		if kb == nil {
			return nil, errors.New("siem: key_binding leaf without its payload")
		}
		v.actor = firstKey("registrar")
		v.subject = party{id: kb.Agent, human: kb.Human, agent: !kb.Human}
		v.keyID, v.tier, v.keyRevoked = proofs.KeyID(kb.PublicKey), kb.Tier, kb.Revoked
		v.agent = kb.Agent
		who := "agent"
		if kb.Human {
			who = "human"
		}
		switch {
		case denied:
			v.c = classKeyDenied
			v.message = fmt.Sprintf("key binding of %s %s to key %s denied: %s", who, kb.Agent, v.keyID, strings.Join(v.reasons, ", "))
		case kb.Revoked:
			v.c = classKeyRevoked
			v.message = fmt.Sprintf("key of %s %s revoked: it has no key binding in force", who, kb.Agent)
		default:
			v.c = classKeyBound
			v.message = fmt.Sprintf("%s %s bound to key %s (tier %s)", who, kb.Agent, v.keyID, kb.Tier)
		}
	case proofs.KindPolicy:
		if l.Policy == nil {
			return nil, errors.New("siem: policy leaf without its policy")
		}
		v.newPolicyDigest = l.Policy.Digest
		v.resources = []resource{{uid: v.newPolicyDigest, typ: "policy"}}
		switch {
		case l.PolicyUpdate == nil: // the shipped default, written by the log
			v.c = classPolicyRecorded
			v.message = fmt.Sprintf("default policy %s recorded by the log", v.newPolicyDigest)
		case denied:
			v.c = classPolicyDenied
			v.actor = firstKey("admin")
			v.message = fmt.Sprintf("policy %s by admin key %s denied: %s", v.newPolicyDigest, v.actor.id, strings.Join(v.reasons, ", "))
		default:
			v.c = classPolicyUpdated
			v.actor = firstKey("admin")
			v.message = fmt.Sprintf("policy %s set by admin key %s", v.newPolicyDigest, v.actor.id)
		}
	case proofs.KindToken:
		tok := l.Token
		if tok == nil {
			return nil, errors.New("siem: token leaf without its record")
		}
		v.c = classTokenIssued
		if denied {
			v.c = classTokenDenied
		}
		v.actor = party{id: tok.Requester}
		v.delegation, v.scopes, v.destinations = tok.Delegation, tok.Scopes, []string{tok.Audience}
		v.notBefore, v.expiresAt, v.tokenID = tok.IssuedAt, tok.ExpiresAt, tok.JTI
		v.resources = []resource{{uid: tok.JTI, name: tok.Audience, typ: "access_token"}, {uid: tok.Delegation, typ: "delegation"}}
		if denied {
			v.message = fmt.Sprintf("token exchange of delegation %s by %s for %s denied: %s", tok.Delegation, tok.Requester, tok.Audience, strings.Join(v.reasons, ", "))
		} else {
			v.message = fmt.Sprintf("access token %s issued to %s for %s under delegation %s, expires %s", tok.JTI, tok.Requester, tok.Audience, tok.Delegation, tok.ExpiresAt)
		}
	case proofs.KindLogConfig:
		cfg := l.Config
		if cfg == nil {
			return nil, errors.New("siem: log_config leaf without its configuration")
		}
		// The configuration is recorded at index 0 and again only when it
		// changes, so any later one is an update.
		v.c = classConfigCreated
		verb := "recorded"
		if e.Index > 0 {
			v.c = classConfigUpdated
			verb = "changed"
		}
		v.resources = []resource{{uid: v.entryID, name: e.Origin, typ: "log_config"}}
		for _, k := range cfg.RegistrarKeys {
			v.registrarKeys = append(v.registrarKeys, k.ID)
		}
		for _, k := range cfg.AdminKeys {
			v.adminKeys = append(v.adminKeys, k.ID)
		}
		v.message = fmt.Sprintf("log configuration %s: registrar keys %d, admin keys %d, max depth %d",
			verb, len(cfg.RegistrarKeys), len(cfg.AdminKeys), cfg.Rules.MaxDepth)
	default:
		return nil, fmt.Errorf("siem: unknown entry kind %q", l.Kind)
	}
	return v, nil
}

func depthSuffix(depth int) string {
	if depth <= 0 {
		return ""
	}
	return ", depth " + strconv.Itoa(depth)
}

// alertID is an alert's stable id: the same finding about the same log at
// the same time always has the same id, so duplicates can be dropped as
// for events.
// A witness alert's id names the witness too: two witnesses may conflict
// at the same time.
func alertID(a *Alert) string {
	id := a.Origin + "/alert/" + a.Reason + "/"
	if a.Witness != "" {
		id += a.Witness + "/"
	}
	return id + a.Time.UTC().Format(time.RFC3339Nano)
}

// alertMessage is the human sentence of an alert.
func alertMessage(a *Alert) string {
	what := "log integrity alert"
	if alertClass(a) == classWitnessConflict {
		what = "witness alert (reported by the server, not verified)"
	}
	if a.Message == "" {
		return what + ": " + a.Reason
	}
	return what + " " + a.Reason + ": " + a.Message
}

// evidenceDigest summarises alert evidence for the one-line formats, which
// should not carry a whole checkpoint: "sha256:<hex>", or "" for none.
func evidenceDigest(a *Alert) string {
	if len(a.Evidence) == 0 {
		return ""
	}
	return proofs.HashID(a.Evidence)
}

// millis is a time in milliseconds since the Unix epoch (OCSF time, CEF rt).
func unixMillis(t time.Time) int64 { return t.UnixMilli() }

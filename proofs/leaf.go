package proofs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxLeafBytes bounds a leaf: the C2SP tlog-tiles entry-bundle limit.
const MaxLeafBytes = 65535

// LeafVersion is the version of the leaf format this package writes.
const LeafVersion = 1

// Leaf kinds.
const (
	KindLogConfig  = "log_config"
	KindKeyBinding = "key_binding"
	KindDelegation = "delegation"
	KindRevocation = "revocation"
	KindPolicy     = "policy"
	// KindToken records a token exchange (TokenIssuance), written by the
	// log itself with its decision.
	KindToken = "token"
)

// Decision outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeDenied   = "denied"
)

// LogTimeLayout is the layout of a leaf's log time: RFC 3339, UTC, fixed
// nanosecond width, so that a time has exactly one encoding.
const LogTimeLayout = "2006-01-02T15:04:05.000000000Z"

// Leaf is one log entry: the exact bytes the log hashed are its canonical
// JSON encoding (Marshal), which is stored as-is and never re-serialised.
// A leaf wraps a canonical envelope (or, for entries the log writes itself,
// its configuration) plus what the log adds: kind, log time and decision.
type Leaf struct {
	// Version is LeafVersion.
	Version int `json:"v"`
	// Kind names what the leaf holds; it must agree with the envelope's
	// payload type.
	Kind string `json:"kind"`
	// LogTime is assigned by the sequencer and never decreases with the
	// index (LogTimeLayout).
	LogTime string `json:"log_time"`
	// Envelope is the canonical DSSE envelope, for signed events.
	Envelope json.RawMessage `json:"envelope,omitempty"`
	// Config is the log's configuration, for KindLogConfig.
	Config *LogConfig `json:"config,omitempty"`
	// Policy is a policy the log records itself (the shipped default), for
	// KindPolicy without an envelope.
	Policy *LogPolicy `json:"policy,omitempty"`
	// Token is the record of a token exchange, for KindToken.
	Token *TokenIssuance `json:"token,omitempty"`
	// Decision is the log's decision on a signed event or a token
	// exchange.
	Decision *Decision `json:"decision,omitempty"`
}

// Decision records what the log decided about an event and why, so that an
// auditor can replay it.
type Decision struct {
	// Outcome is OutcomeAccepted or OutcomeDenied.
	Outcome string `json:"outcome"`
	// Reasons are the reason codes of a denial.
	Reasons []string `json:"reasons,omitempty"`
	// PolicyDigest is "sha256:<hex>" of the policy text in force.
	PolicyDigest string `json:"policy_digest,omitempty"`
	// PolicyIDs are the ids of the policies that determined the outcome.
	PolicyIDs []string `json:"policy_ids,omitempty"`
	// CedarVersion is the cedar-go version that evaluated the policy.
	CedarVersion string `json:"cedar_version,omitempty"`
}

// LogConfig is the log's self-description: the trust anchors and limits it
// was started with. It is recorded at index 0 and again whenever it changes,
// so an auditor needs nothing but the log's verifier key.
type LogConfig struct {
	// Origin is the checkpoint origin line.
	Origin string `json:"origin"`
	// RegistrarKeys may sign key bindings.
	RegistrarKeys []ConfigKey `json:"registrar_keys,omitempty"`
	// AdminKeys may sign policies and administrative revocations.
	AdminKeys []ConfigKey `json:"admin_keys,omitempty"`
	// TokenKeys sign the access tokens the log issues (KindToken): the
	// current key and those before it, so that any token the log issued
	// can be checked against the log. Empty when the log issues none.
	TokenKeys []ConfigKey `json:"token_keys,omitempty"`
	// Limits are the bounds the log enforces.
	Limits Limits `json:"limits"`
	// Rules are the chain rules' configurable bounds.
	Rules RuleLimits `json:"rules"`
}

// LogPolicy is a policy text recorded by the log itself.
type LogPolicy struct {
	Text string `json:"text"`
}

// ConfigKey is a trust-anchor public key.
type ConfigKey struct {
	// ID is KeyID(PublicKey).
	ID string `json:"id"`
	// PublicKey is the PKIX DER public key.
	PublicKey []byte `json:"public_key"`
}

// Limits are the size and list bounds in force.
type Limits struct {
	MaxEnvelopeBytes int `json:"max_envelope_bytes"`
	MaxLeafBytes     int `json:"max_leaf_bytes"`
	MaxSignatures    int `json:"max_signatures"`
	MaxListItems     int `json:"max_list_items"`
}

// DefaultLimits are the limits this version enforces.
func DefaultLimits() Limits {
	return Limits{
		MaxEnvelopeBytes: MaxEnvelopeBytes,
		MaxLeafBytes:     MaxLeafBytes,
		MaxSignatures:    MaxSignatures,
		MaxListItems:     MaxListItems,
	}
}

// Marshal returns the leaf's canonical encoding: encoding/json's, with
// the envelope copied into it rather than re-encoded.
//
// encoding/json compacts and validates every RawMessage it writes, which
// for a leaf means scanning the whole envelope again, byte by byte, although
// the caller has just produced or checked its canonical form. A canonical
// envelope is compact JSON written only with letters, digits, the
// punctuation of JSON and "+/=-_.~:" (base64 and the token characters of
// payload types and key ids), so compacting it changes nothing. Marshal
// therefore copies an envelope written only with those characters as it is
// and leaves anything else to encoding/json: the bytes are those of
// json.Marshal for any envelope that is valid JSON. The copy does not check
// that the envelope is valid JSON: Envelope must be a canonical envelope
// (Envelope.Canonical, ParseEnvelopeCanonical), as ParseLeaf requires.
func (l *Leaf) Marshal() ([]byte, error) {
	b, err := l.marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding leaf: %w", err)
	}
	if len(b) > MaxLeafBytes {
		return nil, Errorf(ReasonLeafTooLarge, "leaf is %d bytes, limit %d", len(b), MaxLeafBytes)
	}
	return b, nil
}

// marshal is json.Marshal(l), with the envelope spliced in after the
// fields that precede it (v, kind, log_time) when nothing in those needs
// escaping (see Marshal).
func (l *Leaf) marshal() ([]byte, error) {
	if len(l.Envelope) == 0 || !plainJSON(l.Envelope) || !plainString(l.Kind) || !plainString(l.LogTime) {
		return json.Marshal(l)
	}
	rest := *l
	rest.Envelope = nil
	b, err := json.Marshal(&rest)
	if err != nil {
		return nil, err
	}
	// {"v":1,"kind":"delegation","log_time":"..."  then "}" or ",..."
	var num [20]byte
	head := len(`{"v":`) + len(strconv.AppendInt(num[:0], int64(l.Version), 10)) +
		len(`,"kind":""`) + len(l.Kind) + len(`,"log_time":""`) + len(l.LogTime)
	if head >= len(b) || (b[head] != ',' && b[head] != '}') {
		return nil, fmt.Errorf("leaf encoding has an unexpected field order: %.40q", b)
	}
	const field = `,"envelope":`
	out := make([]byte, 0, len(b)+len(field)+len(l.Envelope))
	out = append(out, b[:head]...)
	out = append(out, field...)
	out = append(out, l.Envelope...)
	return append(out, b[head:]...), nil
}

// plainJSON reports whether b is written only with characters that a
// canonical envelope uses (see Marshal): if b is valid JSON, it is compact
// and encoding/json writes it unchanged.
func plainJSON(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte(`{}[]":,+/=-_.~`, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// plainString reports whether encoding/json writes s as itself in quotes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// FormatLogTime formats a log time.
func FormatLogTime(t time.Time) string { return t.UTC().Format(LogTimeLayout) }

// ParsedLeaf is a leaf with its envelope and payload decoded.
type ParsedLeaf struct {
	Leaf
	// Raw is the exact leaf bytes.
	Raw []byte
	// Time is LogTime parsed.
	Time time.Time
	// Env is the parsed envelope (nil for KindLogConfig).
	Env *Envelope
	// Exactly one of the following is set, by Kind (Policy for KindPolicy,
	// with PolicyUpdate too when an admin signed it).
	KeyBinding   *KeyBinding
	Delegation   *Delegation
	Revocation   *Revocation
	PolicyUpdate *PolicyUpdate
	Policy       *Policy
}

// ParseLeaf parses a leaf and requires it to be byte-for-byte its own
// canonical encoding, with a canonical envelope whose payload type matches
// its kind and whose payload is canonical and valid. It does not check
// signatures: that needs the key bindings in force (see the ledger and the
// chain verifiers).
func ParseLeaf(raw []byte) (*ParsedLeaf, error) {
	if len(raw) > MaxLeafBytes {
		return nil, Errorf(ReasonLeafTooLarge, "leaf is %d bytes, limit %d", len(raw), MaxLeafBytes)
	}
	if !utf8.Valid(raw) {
		return nil, Errorf(ReasonLeafMalformed, "leaf is not valid UTF-8")
	}
	p := &ParsedLeaf{Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.Leaf); err != nil {
		return nil, Errorf(ReasonLeafMalformed, "decoding leaf: %v", err)
	}
	// p.Envelope was decoded, so it is valid JSON: marshal writes exactly
	// what json.Marshal would, without scanning the envelope again.
	canon, err := p.Leaf.marshal()
	if err != nil || !bytes.Equal(canon, raw) {
		return nil, Errorf(ReasonLeafNonCanonical, "leaf is not in canonical form")
	}
	if p.Version != LeafVersion {
		return nil, Errorf(ReasonLeafMalformed, "leaf version %d, want %d", p.Version, LeafVersion)
	}
	t, err := time.Parse(LogTimeLayout, p.LogTime)
	if err != nil || FormatLogTime(t) != p.LogTime {
		return nil, Errorf(ReasonLeafMalformed, "log_time %q is not in layout %s", p.LogTime, LogTimeLayout)
	}
	p.Time = t
	if p.Kind == KindLogConfig {
		if p.Config == nil || p.Envelope != nil || p.Decision != nil || p.Leaf.Policy != nil || p.Token != nil {
			return nil, Errorf(ReasonLeafMalformed, "a log_config leaf holds a config and nothing else")
		}
		return p, nil
	}
	if p.Kind == KindPolicy && p.Leaf.Policy != nil {
		if p.Config != nil || p.Envelope != nil || p.Decision != nil || p.Token != nil {
			return nil, Errorf(ReasonLeafMalformed, "a log-written policy leaf holds a policy and nothing else")
		}
		if p.Policy, err = ParsePolicy([]byte(p.Leaf.Policy.Text)); err != nil {
			return nil, err
		}
		return p, nil
	}
	if p.Kind == KindToken {
		if p.Token == nil || p.Decision == nil || p.Config != nil || p.Envelope != nil || p.Leaf.Policy != nil {
			return nil, Errorf(ReasonLeafMalformed, "a token leaf holds a token record and a decision")
		}
		if err := p.Token.Validate(); err != nil {
			return nil, err
		}
		if err := checkOutcome(p.Decision); err != nil {
			return nil, err
		}
		return p, nil
	}
	if p.Config != nil || p.Leaf.Policy != nil || p.Token != nil || p.Envelope == nil || p.Decision == nil {
		return nil, Errorf(ReasonLeafMalformed, "a %s leaf holds an envelope and a decision", p.Kind)
	}
	if err := checkOutcome(p.Decision); err != nil {
		return nil, err
	}
	env, canon, err := ParseEnvelopeCanonical(p.Envelope)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, p.Envelope) {
		return nil, Errorf(ReasonLeafNonCanonical, "leaf envelope is not canonical")
	}
	p.Env = env
	if err := p.parsePayload(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkOutcome checks a recorded decision's form: reasons exactly when
// denied.
func checkOutcome(d *Decision) error {
	switch d.Outcome {
	case OutcomeAccepted:
		if len(d.Reasons) != 0 {
			return Errorf(ReasonLeafMalformed, "an accepted decision has no reasons")
		}
	case OutcomeDenied:
		if len(d.Reasons) == 0 {
			return Errorf(ReasonLeafMalformed, "a denial names its reasons")
		}
	default:
		return Errorf(ReasonLeafMalformed, "unknown decision outcome %q", d.Outcome)
	}
	return nil
}

// parsePayload decodes a signed leaf's payload by its kind.
func (p *ParsedLeaf) parsePayload() error {
	env := p.Env
	var err error
	switch p.Kind {
	case KindKeyBinding:
		if env.PayloadType != PayloadTypeAgent {
			return Errorf(ReasonPayloadTypeMismatch, "key_binding leaf with payload type %q", env.PayloadType)
		}
		p.KeyBinding, err = ParseKeyBinding(env.Payload)
	case KindDelegation:
		if env.PayloadType != PayloadTypeDelegation {
			return Errorf(ReasonPayloadTypeMismatch, "delegation leaf with payload type %q", env.PayloadType)
		}
		p.Delegation, err = ParseDelegation(env.Payload)
	case KindRevocation:
		if env.PayloadType != PayloadTypeRevocation {
			return Errorf(ReasonPayloadTypeMismatch, "revocation leaf with payload type %q", env.PayloadType)
		}
		p.Revocation, err = ParseRevocation(env.Payload)
	case KindPolicy:
		if env.PayloadType != PayloadTypePolicy {
			return Errorf(ReasonPayloadTypeMismatch, "policy leaf with payload type %q", env.PayloadType)
		}
		p.PolicyUpdate, p.Policy, err = ParsePolicyUpdate(env.Payload)
	default:
		return Errorf(ReasonLeafMalformed, "unknown leaf kind %q", p.Kind)
	}
	return err
}

// ID is the entry's id: the delegation id for delegations, otherwise
// "sha256:<hex>" of the canonical envelope, or of the leaf for entries the
// log writes itself.
func (p *ParsedLeaf) ID() string {
	if p.Delegation != nil {
		return p.Delegation.ID
	}
	if p.Envelope != nil {
		return HashID(p.Envelope)
	}
	return HashID(p.Raw)
}

// Actor names who made the entry: the issuer of a delegation or of an
// issuer-signed revocation, "admin <key id>" for a policy or an
// admin-signed revocation, "registrar <key id>" for a key binding, and
// "log" for entries the log writes itself, but the requester for a token
// exchange (the log writes it on the requester's DPoP proof). It reads the payload and the
// signature's key id; whether the key is an admin's is for the log's
// configuration (replay, bundles) to establish.
func (p *ParsedLeaf) Actor() string {
	switch {
	case p.Token != nil:
		return p.Token.Requester
	case p.Env == nil:
		return "log"
	case p.Delegation != nil:
		return p.Delegation.Issuer
	case p.Revocation != nil && p.Revocation.Issuer != "":
		return p.Revocation.Issuer
	case len(p.Env.Signatures) == 0:
		return ""
	case p.KeyBinding != nil:
		return "registrar " + p.Env.Signatures[0].KeyID
	}
	return "admin " + p.Env.Signatures[0].KeyID
}

// Under is the delegation id an entry hangs under in a chain: a
// delegation's parent ("" for a root grant), a revocation's target, the
// delegation a token exchange was under; "" for the other kinds. The log lists an entry among the children of that
// delegation.
func (p *ParsedLeaf) Under() string {
	switch {
	case p.Delegation != nil:
		return p.Delegation.Parent
	case p.Revocation != nil:
		return p.Revocation.Delegation
	case p.Token != nil:
		return p.Token.Delegation
	}
	return ""
}

// Kinds lists every leaf kind, in the order reports print them.
func Kinds() []string {
	return []string{KindLogConfig, KindPolicy, KindKeyBinding, KindDelegation, KindRevocation, KindToken}
}

// Payload returns what the entry holds, decoded, for printing: the signed
// payload of a signed entry (a policy update's, not the parsed policy), a
// log configuration, or the text of a policy the log wrote itself.
func (p *ParsedLeaf) Payload() any {
	switch {
	case p.Delegation != nil:
		return p.Delegation
	case p.KeyBinding != nil:
		return p.KeyBinding
	case p.Config != nil:
		return p.Config
	case p.Revocation != nil:
		return p.Revocation
	case p.PolicyUpdate != nil:
		return p.PolicyUpdate
	case p.Leaf.Policy != nil:
		return p.Leaf.Policy
	case p.Token != nil:
		return p.Token
	}
	return nil
}

// Keys returns the public keys the entry names for others to sign with: a
// key binding's key, a configuration's registrar and admin keys. Keys that
// do not parse are left out. Whether a key may sign an entry is the state
// machine's question (State.Authenticate); an auditor uses Keys to check
// signatures ahead of it (Auditor.AddBatch).
func (p *ParsedLeaf) Keys() []*PublicKey {
	var out []*PublicKey
	add := func(der []byte) {
		if k, err := ParsePublicKeyDER(der); err == nil {
			out = append(out, k)
		}
	}
	switch {
	case p.KeyBinding != nil:
		add(p.KeyBinding.PublicKey)
	case p.Config != nil:
		for _, ck := range p.Config.RegistrarKeys {
			add(ck.PublicKey)
		}
		for _, ck := range p.Config.AdminKeys {
			add(ck.PublicKey)
		}
	}
	return out
}

// HashID returns "sha256:<hex>" of b.
func HashID(b []byte) string { return SumID(sha256.Sum256(b)) }

// SumID is HashID for an already computed SHA-256.
func SumID(sum [32]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }

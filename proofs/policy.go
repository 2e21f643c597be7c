package proofs

import (
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// CedarVersion is the cedar-go module version that evaluates policies; every
// decision records it. A test checks it against go.mod.
const CedarVersion = "v1.9.1"

// MaxPolicyBytes bounds a policy text (it must fit an envelope).
const MaxPolicyBytes = 16 << 10

var reasonCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Policy is a parsed Cedar policy set in warrant's conventions: every policy
// carries a unique @id("...") annotation (its id in decisions), and a forbid
// policy may carry @reason("snake_case_code"), the reason code recorded when
// it denies. A forbid without @reason denies with ReasonPolicyForbid.
//
// A delegation is evaluated as the Cedar request
//
//	principal: Agent::"<issuer SPIFFE ID>"
//	action:    Action::"delegate"
//	resource:  Agent::"<delegate SPIFFE ID>"
//
// where each Agent entity has the attributes trust_domain (String), tier
// ("draft", "execute" or "unknown" when not registered), human and
// registered (Bool), and the context is built by PolicyContext. A policy
// that fails to evaluate denies with ReasonPolicyError (Cedar would skip
// it; warrant fails closed).
type Policy struct {
	// Text is the policy source exactly as recorded in the log.
	Text []byte
	// Digest is "sha256:<hex>" of Text.
	Digest string

	set     *cedar.PolicySet
	reasons map[cedar.PolicyID]string
}

// ParsePolicy parses and checks a policy text.
func ParsePolicy(text []byte) (*Policy, error) {
	if len(text) > MaxPolicyBytes {
		return nil, Errorf(ReasonPolicyInvalid, "policy is %d bytes, limit %d", len(text), MaxPolicyBytes)
	}
	if !utf8.Valid(text) {
		return nil, Errorf(ReasonPolicyInvalid, "policy is not valid UTF-8")
	}
	list, err := cedar.NewPolicyListFromBytes("policy.cedar", text)
	if err != nil {
		return nil, Errorf(ReasonPolicyInvalid, "%v", err)
	}
	if len(list) == 0 {
		return nil, Errorf(ReasonPolicyInvalid, "the policy has no permit or forbid statements")
	}
	p := &Policy{Text: slices.Clone(text), Digest: HashID(text), set: cedar.NewPolicySet(), reasons: map[cedar.PolicyID]string{}}
	for _, pol := range list {
		ann := pol.Annotations()
		id := string(ann["id"])
		if id == "" {
			return nil, Errorf(ReasonPolicyInvalid, "policy at %v has no @id annotation", pol.Position())
		}
		if !p.set.Add(cedar.PolicyID(id), pol) {
			return nil, Errorf(ReasonPolicyInvalid, "two policies have @id(%q)", id)
		}
		if r, ok := ann["reason"]; ok {
			if !reasonCode.MatchString(string(r)) {
				return nil, Errorf(ReasonPolicyInvalid, "policy %q: @reason(%q) is not a snake_case reason code", id, r)
			}
			if pol.Effect() != cedar.Forbid {
				return nil, Errorf(ReasonPolicyInvalid, "policy %q: only forbid policies carry a @reason", id)
			}
			p.reasons[cedar.PolicyID(id)] = string(r)
		}
	}
	return p, nil
}

// PolicyInput is what a policy decision sees of a delegation.
type PolicyInput struct {
	D *Delegation
	// Issuer and Delegate are the bindings in force (Delegate may be nil:
	// not registered).
	Issuer, Delegate *Binding
	// Depth is the delegation's position in its chain (a root grant is 1).
	Depth int
	// HumanApproved is true when the issuer is itself human, or a
	// registered human of the issuer's SPIFFE trust domain, other than the
	// issuer and the delegate, co-signed. Humans of other domains do not
	// count here (see Approvers).
	HumanApproved bool
	// Approvers are the SPIFFE IDs of registered humans, other than the
	// issuer and the delegate, who co-signed, of any trust domain.
	Approvers []string
}

// PolicyDecision is the outcome of evaluating a policy.
type PolicyDecision struct {
	Allowed bool
	// Reasons are the reason codes of the forbidding policies, sorted.
	Reasons []string
	// PolicyIDs are the ids of the determining policies, sorted.
	PolicyIDs []string
}

// Evaluate decides a delegation under the policy.
func (p *Policy) Evaluate(in PolicyInput) PolicyDecision {
	req := cedar.Request{
		Principal: cedar.NewEntityUID("Agent", cedar.String(in.D.Issuer)),
		Action:    cedar.NewEntityUID("Action", "delegate"),
		Resource:  cedar.NewEntityUID("Agent", cedar.String(in.D.Delegate)),
		Context:   PolicyContext(in),
	}
	return p.authorize(requestEntities{agentEntity(in.D.Issuer, in.Issuer), agentEntity(in.D.Delegate, in.Delegate)}, req)
}

// requestEntities are the entities of one request (at most two agents),
// found by a scan rather than a map built per evaluation. As in a map
// filled in order, the last entity with a UID wins (an issuer delegating
// to itself is one agent, with one binding).
type requestEntities [2]cedar.Entity

func (es requestEntities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].UID == uid && es[i].UID.Type != "" {
			return es[i], true
		}
	}
	return cedar.Entity{}, false
}

// authorize evaluates req, failing closed on a policy that errors.
func (p *Policy) authorize(entities cedar.EntityGetter, req cedar.Request) PolicyDecision {
	decision, diag := cedar.Authorize(p.set, entities, req)
	out := PolicyDecision{Allowed: decision == cedar.Allow}
	if len(diag.Errors) > 0 {
		// Cedar skips a policy that errors; warrant fails closed instead.
		out.Allowed = false
		out.Reasons = append(out.Reasons, ReasonPolicyError)
		for _, e := range diag.Errors {
			out.PolicyIDs = append(out.PolicyIDs, string(e.PolicyID))
		}
	}
	for _, r := range diag.Reasons {
		out.PolicyIDs = append(out.PolicyIDs, string(r.PolicyID))
		if decision != cedar.Allow {
			if code, ok := p.reasons[r.PolicyID]; ok {
				out.Reasons = append(out.Reasons, code)
			} else {
				out.Reasons = append(out.Reasons, ReasonPolicyForbid)
			}
		}
	}
	if !out.Allowed && len(out.Reasons) == 0 {
		out.Reasons = []string{ReasonPolicyForbid} // no permit matched
	}
	slices.Sort(out.PolicyIDs)
	out.PolicyIDs = slices.Compact(out.PolicyIDs)
	slices.Sort(out.Reasons)
	out.Reasons = slices.Compact(out.Reasons)
	return out
}

// agentEntity is the Cedar entity of agent id, whose binding in force is b
// (nil: none). Entities are read-only to cedar-go, so one built when the
// binding was made serves every evaluation.
func agentEntity(id string, b *Binding) cedar.Entity {
	if b != nil && b.entity != nil && b.Agent == id {
		return *b.entity
	}
	tier, human, registered := "unknown", false, false
	if b != nil {
		tier, human, registered = b.Tier, b.Human, true
	}
	return cedar.Entity{
		UID: cedar.NewEntityUID("Agent", cedar.String(id)),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"trust_domain": cedar.String(trustDomain(id)),
			"tier":         cedar.String(tier),
			"human":        cedar.Boolean(human),
			"registered":   cedar.Boolean(registered),
		}),
	}
}

// trustDomain returns the SPIFFE trust domain of id, or "" if id is not a
// SPIFFE ID (payload validation rules that out before policy runs).
func trustDomain(id string) string {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return ""
	}
	return sid.TrustDomain().Name()
}

// PolicyContext builds the Cedar context of a delegation request:
//
//	task            String  the task path
//	task_segments   Set     its "/"-separated segments
//	scopes          Set     scopes granted
//	scope_actions   Set     the part of each scope after its last ":" ("admin" for "tickets:admin")
//	data_classes    Set     data classes
//	destinations    Set     destination systems
//	issuer_domain   String  SPIFFE trust domain of the issuer
//	delegate_domain String  SPIFFE trust domain of the delegate
//	root_grant      Bool    no parent
//	depth           Long    position in the chain (root grant: 1)
//	lifetime_seconds Long   expires_at - not_before
//	human_approved  Bool    the issuer is human, or a human of the issuer's trust domain co-signed (PolicyInput.HumanApproved)
//	approvers       Set     SPIFFE IDs of human co-signers, of any trust domain
//	approver_domains Set    their trust domains (for a policy that names other domains' approvers)
//	purpose         String  free text
//
// Scopes, data classes, destinations and tasks are lower case (the payload
// refuses any other spelling), so a policy compares them as written.
func PolicyContext(in PolicyInput) cedar.Record {
	d := in.D
	var segments []string
	if d.Task != "/" {
		segments = strings.Split(strings.TrimPrefix(d.Task, "/"), "/")
	}
	var actions []string
	for _, s := range d.Scopes {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			actions = append(actions, s[i+1:])
		} else {
			actions = append(actions, s)
		}
	}
	var approverDomains []string
	for _, a := range in.Approvers {
		approverDomains = append(approverDomains, trustDomain(a))
	}
	var lifetime int64
	if nb, err := ParseTime("not_before", d.NotBefore); err == nil {
		if exp, err := ParseTime("expires_at", d.ExpiresAt); err == nil {
			lifetime = int64(exp.Sub(nb).Seconds())
		}
	}
	return cedar.NewRecord(cedar.RecordMap{
		"task":             cedar.String(d.Task),
		"task_segments":    stringSet(segments),
		"scopes":           stringSet(d.Scopes),
		"scope_actions":    stringSet(actions),
		"data_classes":     stringSet(d.DataClasses),
		"destinations":     stringSet(d.Destinations),
		"issuer_domain":    cedar.String(trustDomain(d.Issuer)),
		"delegate_domain":  cedar.String(trustDomain(d.Delegate)),
		"root_grant":       cedar.Boolean(d.Parent == ""),
		"depth":            cedar.Long(in.Depth),
		"lifetime_seconds": cedar.Long(lifetime),
		"human_approved":   cedar.Boolean(in.HumanApproved),
		"approvers":        stringSet(in.Approvers),
		"approver_domains": stringSet(approverDomains),
		"purpose":          cedar.String(d.Purpose),
	})
}

func stringSet(v []string) cedar.Set {
	vals := make([]cedar.Value, len(v))
	for i, s := range v {
		vals[i] = cedar.String(s)
	}
	return cedar.NewSet(vals...)
}

// PolicyUpdate is the payload of PayloadTypePolicy envelopes, signed by an
// admin key the log's configuration names: the new policy in force from
// its entry on.
type PolicyUpdate struct {
	// Text is the Cedar policy source.
	Text string `json:"text"`
	// IssuedAt is when the admin signed it.
	IssuedAt string `json:"issued_at"`
	// Nonce makes every policy envelope unique.
	Nonce string `json:"nonce"`
}

// ParsePolicyUpdate decodes a policy payload and parses its policy.
func ParsePolicyUpdate(payload []byte) (*PolicyUpdate, *Policy, error) {
	var u PolicyUpdate
	if err := decodeCanonical(payload, &u); err != nil {
		return nil, nil, err
	}
	if _, err := ParseTime("issued_at", u.IssuedAt); err != nil {
		return nil, nil, err
	}
	if err := validateNonce(u.Nonce); err != nil {
		return nil, nil, err
	}
	p, err := ParsePolicy([]byte(u.Text))
	if err != nil {
		return nil, nil, err
	}
	return &u, p, nil
}

// TokenPolicyInput is what a token exchange is evaluated on.
type TokenPolicyInput struct {
	// T is the issuance record, D the delegation exchanged.
	T *TokenIssuance
	D *Delegation
	// Delegate is the delegate's binding in force (nil if none).
	Delegate *Binding
	// Depth is the delegation's position in its chain (a root grant is 1).
	Depth int
}

// EvaluateToken decides a token exchange under the policy, as the Cedar
// request
//
//	principal: Agent::"<delegate SPIFFE ID>"   (the requester)
//	action:    Action::"issue_token"
//	resource:  Resource::"<audience URI>"
//
// with the context
//
//	delegation       String  the delegation id
//	task             String  its task path
//	scopes           Set     the scopes requested
//	scope_actions    Set     the part of each after its last ":"
//	data_classes     Set     the delegation's data classes
//	root_subject     String  the human at the chain's root
//	delegate_domain  String  SPIFFE trust domain of the delegate
//	depth            Long    the delegation's position in its chain
//	lifetime_seconds Long    expires_at − issued_at of the token
//
// so that a policy can, for example, forbid tokens longer than a minute
// for restricted data: a server then issues a shorter one
// (FitTokenLifetime) rather than none. A policy without a permit for the action denies
// every exchange (ReasonPolicyForbid).
func (p *Policy) EvaluateToken(in TokenPolicyInput) PolicyDecision {
	req := cedar.Request{
		Principal: cedar.NewEntityUID("Agent", cedar.String(in.T.Requester)),
		Action:    cedar.NewEntityUID("Action", "issue_token"),
		Resource:  cedar.NewEntityUID("Resource", cedar.String(in.T.Audience)),
	}
	var actions []string
	for _, s := range in.T.Scopes {
		actions = append(actions, s[strings.LastIndexByte(s, ':')+1:])
	}
	var lifetime int64
	if iat, err := ParseTime("issued_at", in.T.IssuedAt); err == nil {
		if exp, err := ParseTime("expires_at", in.T.ExpiresAt); err == nil {
			lifetime = int64(exp.Sub(iat).Seconds())
		}
	}
	req.Context = cedar.NewRecord(cedar.RecordMap{
		"delegation":       cedar.String(in.D.ID),
		"task":             cedar.String(in.D.Task),
		"scopes":           stringSet(in.T.Scopes),
		"scope_actions":    stringSet(actions),
		"data_classes":     stringSet(in.D.DataClasses),
		"root_subject":     cedar.String(in.D.RootSubject),
		"delegate_domain":  cedar.String(trustDomain(in.D.Delegate)),
		"depth":            cedar.Long(in.Depth),
		"lifetime_seconds": cedar.Long(lifetime),
	})
	return p.authorize(requestEntities{agentEntity(in.T.Requester, in.Delegate)}, req)
}

package proofs

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
)

// MaxClockSkew is how far in the future a not_before may lie at log time.
const MaxClockSkew = 5 * time.Minute

// MaxChainDepth is the largest depth limit a log may be configured with
// (RuleLimits.MaxDepth, serve --max-depth). The rules walk a chain up to
// this many links whatever the limit in force, which may have been higher
// when the chain was built: every chain any allowed limit lets be built is
// walked to its root, so a revocation cascades through every ancestor. A
// longer chain cannot be in a log whose configurations were all valid; the
// walk fails closed on one (ReasonChainTooLong).
const MaxChainDepth = 256

// Binding is an agent's key binding in force.
type Binding struct {
	Agent string
	Key   *PublicKey
	Tier  string
	Human bool
	// Index is the binding's entry.
	Index uint64

	// entity is the agent's Cedar entity, built once by Bindings.With
	// (bindings are immutable): every policy evaluation names two agents,
	// and building an entity costs a SPIFFE ID parse and a Cedar record
	// (which cedar-go copies and hashes).
	entity *cedar.Entity
}

// DelegationRecord is an accepted delegation as the rules see it.
type DelegationRecord struct {
	Index uint64
	D     *Delegation
}

// ChainState answers the rules' questions about the log before the entry
// being decided, including the entries before it in the same batch. State
// implements it for the server, replay and bundles alike (bindings from
// memory, the rest from its Store); the ledger's store view implements it
// too, for reads of a delegation's status. Errors are failures of the
// state's storage, not rule failures.
type ChainState interface {
	// Binding returns the binding in force for agent, or nil.
	Binding(agent string) *Binding
	// Delegation returns the accepted delegation with id, or nil.
	Delegation(id string) (*DelegationRecord, error)
	// Revoked reports whether the delegation id itself was revoked (by a
	// revocation entry; see also IssuedRevoked).
	Revoked(id string) (bool, error)
	// IssuedRevoked reports the index of agent's latest key withdrawal
	// with revoke_issued (Bindings.IssuedRevoked).
	IssuedRevoked(agent string) (uint64, bool)
	// IDUsed reports whether an accepted delegation has id.
	IDUsed(id string) (bool, error)
	// NonceUsed reports whether an accepted delegation by issuer has nonce.
	NonceUsed(issuer, nonce string) (bool, error)
}

// RuleLimits are the configurable bounds of the chain rules; they are
// recorded in the log-config entry.
type RuleLimits struct {
	// Maximum lifetime (expires_at - not_before, inclusive) when the delegate
	// is execute-tier, draft-tier, and for root grants.
	LifetimeExecuteSeconds int64 `json:"lifetime_execute_seconds"`
	LifetimeDraftSeconds   int64 `json:"lifetime_draft_seconds"`
	LifetimeRootSeconds    int64 `json:"lifetime_root_seconds"`
	// MaxDepth bounds the length of a chain (a root grant has depth 1),
	// 1 to MaxChainDepth.
	MaxDepth int `json:"max_depth"`
}

// Validate checks that the limits are ones a log may run with: lifetimes
// positive, MaxDepth between 1 and MaxChainDepth.
func (lim RuleLimits) Validate() error {
	if lim.LifetimeExecuteSeconds < 1 || lim.LifetimeDraftSeconds < 1 || lim.LifetimeRootSeconds < 1 {
		return Errorf(ReasonRuleLimitsInvalid, "lifetimes must be at least 1 second")
	}
	if lim.MaxDepth < 1 || lim.MaxDepth > MaxChainDepth {
		return Errorf(ReasonRuleLimitsInvalid, "max depth %d is outside 1..%d", lim.MaxDepth, MaxChainDepth)
	}
	return nil
}

// DefaultRuleLimits: 15 min for execute-tier delegates, 60 min for
// draft-tier, 8 h for root grants, depth 5.
func DefaultRuleLimits() RuleLimits {
	return RuleLimits{
		LifetimeExecuteSeconds: 15 * 60,
		LifetimeDraftSeconds:   60 * 60,
		LifetimeRootSeconds:    8 * 60 * 60,
		MaxDepth:               5,
	}
}

// SignatureCheck is the result of checking the co-signatures of an
// authentic delegation (the issuer's signature already verified).
type SignatureCheck struct {
	// Approvers are registered humans, other than the issuer, whose
	// signatures verified.
	Approvers []string
	// Invalid is set when some co-signature is not a valid signature of a
	// registered agent. A log refuses such a request as not authentic
	// before it gets here (Envelope.MatchKeys), so no new entry has it; it
	// remains so that logs written before replay to their recorded
	// approval_invalid denials.
	Invalid bool
}

// CheckSignatures verifies an envelope's signatures under the bindings in
// force: the issuer's must be present and valid (an error otherwise: the
// request is not authentic and is not logged); every other one is judged
// as an approval. byKeyID returns the binding in force whose key has the id.
func CheckSignatures(env *Envelope, issuer *Binding, byKeyID func(string) *Binding) (SignatureCheck, error) {
	var sc SignatureCheck
	if issuer == nil {
		return sc, Errorf(ReasonIssuerNotRegistered, "the issuer has no key binding in force")
	}
	s := env.Signature(issuer.Key.ID)
	if s == nil {
		return sc, Errorf(ReasonSignatureMissing, "no signature by the issuer's registered key %s", issuer.Key.ID)
	}
	if err := env.Verify(issuer.Key); err != nil {
		return sc, err
	}
	for _, s := range env.Signatures {
		if s.KeyID == issuer.Key.ID {
			continue
		}
		b := byKeyID(s.KeyID)
		if b == nil || env.Verify(b.Key) != nil {
			sc.Invalid = true
			continue
		}
		if b.Human && b.Agent != issuer.Agent {
			sc.Approvers = append(sc.Approvers, b.Agent)
		}
	}
	slices.Sort(sc.Approvers)
	sc.Approvers = slices.Compact(sc.Approvers)
	return sc, nil
}

// DecideDelegation applies the chain rules (docs/rules.md) and the
// policy in force to an authentic delegation at log time t. The ledger
// calls it in the sequencer; auditors call it on replay; both get the same
// decision from the same state.
func DecideDelegation(st ChainState, d *Delegation, sigs SignatureCheck, t time.Time, lim RuleLimits, pol *Policy) (*Decision, error) {
	var reasons []string
	deny := func(r string) { reasons = append(reasons, r) }
	issuer := st.Binding(d.Issuer)
	delegate := st.Binding(d.Delegate)

	// Rule 2: chain continuity (root grants: only humans, for themselves).
	var chain []*DelegationRecord // parent first, then its ancestors
	if d.Parent == "" {
		if issuer == nil || !issuer.Human {
			deny(ReasonRootGrantNotHuman)
		}
		if d.RootSubject != d.Issuer {
			deny(ReasonRootSubjectMismatch)
		}
	} else {
		var err error
		if chain, err = ancestors(st, d.Parent); err != nil {
			return nil, err
		}
		if len(chain) == 0 {
			deny(ReasonParentNotFound)
		} else {
			parent := chain[0].D
			if parent.Delegate != d.Issuer {
				deny(ReasonNotParentDelegate)
			}
			if parent.RootSubject != d.RootSubject {
				deny(ReasonRootSubjectMismatch)
			}
		}
	}

	// Rule 3: nothing in the chain revoked or expired.
	for _, a := range chain {
		revoked, err := isRevoked(st, a)
		if err != nil {
			return nil, err
		}
		if revoked {
			deny(ReasonParentRevoked)
			break
		}
	}
	for _, a := range chain {
		if exp, _ := ParseTime("expires_at", a.D.ExpiresAt); !t.Before(exp) {
			deny(ReasonParentExpired)
			break
		}
	}
	if len(chain) > 0 {
		if nb, _ := ParseTime("not_before", chain[0].D.NotBefore); t.Before(nb) {
			deny(ReasonParentNotYetValid)
		}
	}

	// Rule 4: attenuation.
	nb, _ := ParseTime("not_before", d.NotBefore)
	exp, _ := ParseTime("expires_at", d.ExpiresAt)
	if len(chain) > 0 {
		parent := chain[0].D
		if !TaskWithin(d.Task, parent.Task) {
			deny(ReasonTaskNotWithinParent)
		}
		if !subset(d.Scopes, parent.Scopes) {
			deny(ReasonScopeWidened)
		}
		if !subset(d.DataClasses, parent.DataClasses) {
			deny(ReasonDataClassWidened)
		}
		if !subset(d.Destinations, parent.Destinations) {
			deny(ReasonDestinationWidened)
		}
		// Rule 5: time within the parent's.
		if pexp, _ := ParseTime("expires_at", parent.ExpiresAt); exp.After(pexp) {
			deny(ReasonOutlivesParent)
		}
	}
	// Rule 5: lifetime within the tier's maximum; valid at log time.
	maxLife := lim.LifetimeDraftSeconds
	switch {
	case d.Parent == "":
		maxLife = lim.LifetimeRootSeconds
	case delegate != nil && (delegate.Tier == TierExecute || delegate.Human):
		maxLife = lim.LifetimeExecuteSeconds
	}
	if exp.Sub(nb) > time.Duration(maxLife)*time.Second {
		deny(ReasonLifetimeExceedsTier)
	}
	if !t.Before(exp) {
		deny(ReasonAlreadyExpired)
	}
	if nb.After(t.Add(MaxClockSkew)) {
		deny(ReasonNotYetValid)
	}

	// Rule 6: depth, cycles, self-delegation.
	depth := 1
	if d.Parent != "" {
		depth = len(chain) + 1
		if len(chain) == 0 {
			depth = 0 // unknown: the parent is missing
		}
	}
	if depth > lim.MaxDepth {
		deny(ReasonDepthExceeded)
	}
	if d.Issuer == d.Delegate {
		deny(ReasonSelfDelegation)
	} else {
		for _, a := range chain {
			if a.D.Issuer == d.Delegate {
				deny(ReasonCycle)
				break
			}
		}
	}

	// Every delegate must be registered.
	if delegate == nil {
		deny(ReasonDelegateUnknown)
	}
	// Rule 9 (signatures): every co-signature must be a registered agent's.
	if sigs.Invalid {
		deny(ReasonApprovalInvalid)
	}
	// Uniqueness: consumed only by accepted entries.
	used, err := st.IDUsed(d.ID)
	if err != nil {
		return nil, err
	}
	if used {
		deny(ReasonIDReused)
	}
	if used, err = st.NonceUsed(d.Issuer, d.Nonce); err != nil {
		return nil, err
	}
	if used {
		deny(ReasonNonceReused)
	}

	// Rules 7-10: the policy in force (tiers, trust domains, approvals).
	dec := &Decision{Outcome: OutcomeAccepted, CedarVersion: CedarVersion}
	if pol != nil {
		// Separation of duty: the delegate cannot approve its own grant.
		approvers := slices.DeleteFunc(slices.Clone(sigs.Approvers), func(a string) bool { return a == d.Delegate })
		// An approval counts by default only from the issuer's own trust
		// domain: a human anyone registered elsewhere does not vouch for
		// this domain's high-impact work (a policy may name other domains
		// through approver_domains).
		domain := trustDomain(d.Issuer)
		sameDomain := slices.ContainsFunc(approvers, func(a string) bool { return trustDomain(a) == domain })
		pd := pol.Evaluate(PolicyInput{
			D: d, Issuer: issuer, Delegate: delegate, Depth: depth,
			HumanApproved: (issuer != nil && issuer.Human) || sameDomain,
			Approvers:     approvers,
		})
		dec.PolicyDigest = pol.Digest
		dec.PolicyIDs = pd.PolicyIDs
		if !pd.Allowed {
			reasons = append(reasons, pd.Reasons...)
		}
	} else {
		dec.CedarVersion = ""
	}
	if len(reasons) > 0 {
		dec.Outcome = OutcomeDenied
		dec.Reasons = compactReasons(reasons)
	}
	return dec, nil
}

// isRevoked reports whether an accepted delegation was revoked itself: by
// a revocation entry, or by a withdrawal of its issuer's key, after it,
// that revoked what the key issued.
func isRevoked(st ChainState, r *DelegationRecord) (bool, error) {
	if idx, ok := st.IssuedRevoked(r.D.Issuer); ok && idx > r.Index {
		return true, nil
	}
	return st.Revoked(r.D.ID)
}

// compactReasons removes repeated codes, keeping first occurrences in order.
func compactReasons(r []string) []string {
	var out []string
	for _, x := range r {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// ancestors returns the accepted delegation id and all its ancestors,
// nearest first (nil if id is not an accepted delegation). A chain longer
// than MaxChainDepth is an error rather than a truncated walk: a walk that
// stopped short would miss a revoked ancestor.
func ancestors(st ChainState, id string) ([]*DelegationRecord, error) {
	var out []*DelegationRecord
	for id != "" {
		r, err := st.Delegation(id)
		if err != nil {
			return nil, err
		}
		if r == nil {
			break
		}
		if len(out) == MaxChainDepth {
			return nil, Errorf(ReasonChainTooLong, "delegation %s has more than %d ancestors", out[0].D.ID, MaxChainDepth)
		}
		out = append(out, r)
		id = r.D.Parent
	}
	return out, nil
}

// TaskWithin reports whether task equals parent or lies under it
// ("/tickets/triage" is within "/tickets"; "/" contains every task).
func TaskWithin(task, parent string) bool {
	return task == parent || parent == "/" || strings.HasPrefix(task, parent+"/")
}

// subset reports whether every element of a (sorted) is in b (sorted).
func subset(a, b []string) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			return false
		}
	}
	return true
}

// Revocation is the payload of PayloadTypeRevocation envelopes: it revokes
// an accepted delegation and, by cascade, every delegation under it.
type Revocation struct {
	// Delegation is the id of the revoked delegation.
	Delegation string `json:"delegation"`
	// Issuer is the SPIFFE ID of the revoker: the delegation's issuer or the
	// issuer of one of its ancestors. Empty when an admin key signs.
	Issuer string `json:"issuer,omitempty"`
	// Reason is free text for the record.
	Reason string `json:"reason"`
	// IssuedAt is when the revoker signed it.
	IssuedAt string `json:"issued_at"`
	// Nonce makes every revocation envelope unique.
	Nonce string `json:"nonce"`
}

// ParseRevocation decodes and validates a revocation payload.
func ParseRevocation(payload []byte) (*Revocation, error) {
	var r Revocation
	if err := decodeCanonical(payload, &r); err != nil {
		return nil, err
	}
	if err := validateDelegationID("delegation", r.Delegation); err != nil {
		return nil, err
	}
	if r.Issuer != "" {
		if err := validateSPIFFE("issuer", r.Issuer); err != nil {
			return nil, err
		}
	}
	if len(r.Reason) > maxPurposeLen {
		return nil, Errorf(ReasonFieldTooLong, "reason longer than %d bytes", maxPurposeLen)
	}
	if _, err := ParseTime("issued_at", r.IssuedAt); err != nil {
		return nil, err
	}
	if err := validateNonce(r.Nonce); err != nil {
		return nil, err
	}
	return &r, nil
}

// CheckSigner checks that the revocation names its signer: an issuer-signed
// revocation names the issuer, an admin-signed one (byAdmin) names none, so
// that an admin's act is never recorded or shown as an agent's.
func (r *Revocation) CheckSigner(byAdmin bool) error {
	if byAdmin && r.Issuer != "" {
		return Errorf(ReasonRevokerMismatch, "a revocation signed by an admin key names no issuer (the admin, not %s, revokes)", r.Issuer)
	}
	return nil
}

// DecideRevocation decides an authentic revocation: by an admin key
// (byAdmin), or by the issuer of the delegation or of one of its ancestors.
func DecideRevocation(st ChainState, r *Revocation, byAdmin bool, lim RuleLimits) (*Decision, error) {
	chain, err := ancestors(st, r.Delegation)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return &Decision{Outcome: OutcomeDenied, Reasons: []string{ReasonDelegationNotFound}}, nil
	}
	if !byAdmin {
		ok := false
		for _, a := range chain {
			ok = ok || a.D.Issuer == r.Issuer
		}
		if !ok {
			return &Decision{Outcome: OutcomeDenied, Reasons: []string{ReasonRevokeNotAuthorized}}, nil
		}
	}
	return &Decision{Outcome: OutcomeAccepted}, nil
}

// Status is a delegation's effective status at a point of the log.
type Status struct {
	// State is "active", "revoked", "expired" or "not_yet_valid".
	State string `json:"state"`
	// RevokedVia is the id of the revoked delegation (this one, or an
	// ancestor by cascade), when State is "revoked".
	RevokedVia string `json:"revoked_via,omitempty"`
}

// EffectiveStatus computes a delegation's status at time t from st.
func EffectiveStatus(st ChainState, id string, t time.Time, lim RuleLimits) (Status, error) {
	chain, err := ancestors(st, id)
	if err != nil {
		return Status{}, err
	}
	if len(chain) == 0 {
		return Status{}, fmt.Errorf("no accepted delegation %q", id)
	}
	for _, a := range chain {
		revoked, err := isRevoked(st, a)
		if err != nil {
			return Status{}, err
		}
		if revoked {
			return Status{State: "revoked", RevokedVia: a.D.ID}, nil
		}
	}
	if exp, _ := ParseTime("expires_at", chain[0].D.ExpiresAt); !t.Before(exp) {
		return Status{State: "expired"}, nil
	}
	if nb, _ := ParseTime("not_before", chain[0].D.NotBefore); t.Before(nb) {
		return Status{State: "not_yet_valid"}, nil
	}
	return Status{State: "active"}, nil
}

package proofs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Reason codes of replay discrepancies.
const (
	ReasonReplayOrder         = "replay_out_of_order"
	ReasonReplayConfig        = "replay_config_missing"
	ReasonReplayLogTime       = "replay_log_time_decreased"
	ReasonReplayUnauthentic   = "replay_unauthentic_entry"
	ReasonReplayDecision      = "replay_decision_mismatch"
	ReasonReplayPolicyMissing = "replay_policy_missing"
)

// Replay re-derives a log's decisions from its leaves alone, in index
// order: the auditor's copy of the sequencer's stateful stage, running the
// very same rules (CheckSignatures, DecideDelegation, DecideRevocation,
// Bindings). It implements ChainState over what it has replayed.
type Replay struct {
	next       uint64
	lastTime   time.Time
	config     *LogConfig
	registrars map[string]*PublicKey
	admins     map[string]*PublicKey
	bindings   *Bindings
	policy     *Policy
	dels       map[string]*DelegationRecord
	revoked    map[string]bool
	nonces     map[string]bool
}

// NewReplay returns a replay positioned before entry 0.
func NewReplay() *Replay {
	return &Replay{
		bindings: NewBindings(),
		dels:     map[string]*DelegationRecord{},
		revoked:  map[string]bool{},
		nonces:   map[string]bool{},
	}
}

// Next is the index of the next entry Apply expects.
func (r *Replay) Next() uint64 { return r.next }

// Binding implements ChainState.
func (r *Replay) Binding(agent string) *Binding { return r.bindings.Agent(agent) }

// Delegation implements ChainState.
func (r *Replay) Delegation(id string) (*DelegationRecord, error) { return r.dels[id], nil }

// Revoked implements ChainState.
func (r *Replay) Revoked(id string) (bool, error) { return r.revoked[id], nil }

// IDUsed implements ChainState.
func (r *Replay) IDUsed(id string) (bool, error) { return r.dels[id] != nil, nil }

// IssuedRevoked implements ChainState.
func (r *Replay) IssuedRevoked(agent string) (uint64, bool) { return r.bindings.IssuedRevoked(agent) }

// NonceUsed implements ChainState.
func (r *Replay) NonceUsed(issuer, nonce string) (bool, error) {
	return r.nonces[issuer+"\x00"+nonce], nil
}

// Policy is the policy in force after the entries applied so far.
func (r *Replay) Policy() *Policy { return r.policy }

// Config is the last log configuration applied.
func (r *Replay) Config() *LogConfig { return r.config }

// Apply replays the entry at index: it checks that the log should have
// accepted it into the log at all (authentic, in order, log time not
// decreasing) and that its recorded decision is the one the rules and the
// recorded policy give, then applies it to the state. The error names the
// first discrepancy; the state then still advances past the entry (as the
// log did), so a replay can report every discrepancy of a log.
func (r *Replay) Apply(index uint64, l *ParsedLeaf) error {
	if index != r.next {
		return Errorf(ReasonReplayOrder, "entry %d replayed when %d was expected", index, r.next)
	}
	r.next++
	var problem error
	if l.Time.Before(r.lastTime) {
		problem = Errorf(ReasonReplayLogTime, "entry %d: log time %s is before the previous entry's %s", index, l.LogTime, FormatLogTime(r.lastTime))
	}
	r.lastTime = l.Time
	if r.config == nil && l.Kind != KindLogConfig {
		return firstErr(problem, Errorf(ReasonReplayConfig, "entry %d: the log does not begin with its configuration", index))
	}
	switch l.Kind {
	case KindLogConfig:
		r.setConfig(l.Config)
		if err := l.Config.Rules.Validate(); err != nil {
			// The rules cannot be applied faithfully under limits no log may
			// run with (a depth limit the chain walk does not cover).
			return firstErr(problem, Errorf(ReasonReplayConfig, "entry %d: %v", index, err))
		}
		return problem
	case KindPolicy:
		if l.Env == nil && r.policy != nil {
			return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: a policy written by the log itself after the first policy (only admins change the policy)", index))
		}
		if l.Env != nil {
			if err := soleSignature(l.Env, r.admins); err != nil {
				return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: policy not signed by an admin key: %v", index, err))
			}
			if err := sameDecision(index, l.Decision, &Decision{Outcome: OutcomeAccepted}); err != nil {
				return firstErr(problem, err)
			}
		}
		r.policy = l.Policy
		return problem
	case KindKeyBinding:
		if err := soleSignature(l.Env, r.registrars); err != nil {
			return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: key binding not signed by a registrar key: %v", index, err))
		}
		want := r.bindings.DecideKeyBinding(l.KeyBinding)
		err := sameDecision(index, l.Decision, want)
		if want.Outcome == OutcomeAccepted {
			key, kerr := ParsePublicKeyDER(l.KeyBinding.PublicKey)
			if kerr != nil {
				return firstErr(problem, kerr)
			}
			r.bindings = r.bindings.With(l.KeyBinding, key, index)
		}
		return firstErr(problem, err)
	case KindDelegation:
		d := l.Delegation
		sigs, err := CheckSignatures(l.Env, r.bindings.Agent(d.Issuer), r.bindings.KeyID)
		if err != nil {
			return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: delegation %s should have been refused: %v", index, d.ID, err))
		}
		if r.policy == nil {
			return firstErr(problem, Errorf(ReasonReplayPolicyMissing, "entry %d: a delegation before any policy entry", index))
		}
		want, err := DecideDelegation(r, d, sigs, l.Time, r.config.Rules, r.policy)
		if err != nil {
			return firstErr(problem, err)
		}
		if l.Decision.Outcome == OutcomeAccepted {
			r.dels[d.ID] = &DelegationRecord{Index: index, D: d}
			r.nonces[d.Issuer+"\x00"+d.Nonce] = true
		}
		return firstErr(problem, sameDecision(index, l.Decision, want))
	case KindRevocation:
		rev := l.Revocation
		byAdmin := false
		if len(l.Env.Signatures) == 1 && r.admins[l.Env.Signatures[0].KeyID] != nil {
			if err := soleSignature(l.Env, r.admins); err != nil {
				return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: revocation: %v", index, err))
			}
			byAdmin = true
		} else if _, err := CheckSignatures(l.Env, r.bindings.Agent(rev.Issuer), r.bindings.KeyID); err != nil || len(l.Env.Signatures) != 1 {
			return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: revocation should have been refused: %v", index, err))
		}
		if err := rev.CheckSigner(byAdmin); err != nil {
			return firstErr(problem, Errorf(ReasonReplayUnauthentic, "entry %d: revocation should have been refused: %v", index, err))
		}
		want, err := DecideRevocation(r, rev, byAdmin, r.config.Rules)
		if err != nil {
			return firstErr(problem, err)
		}
		if l.Decision.Outcome == OutcomeAccepted {
			r.revoked[rev.Delegation] = true
		}
		return firstErr(problem, sameDecision(index, l.Decision, want))
	}
	return firstErr(problem, Errorf(ReasonLeafMalformed, "entry %d: unknown kind %q", index, l.Kind))
}

func (r *Replay) setConfig(c *LogConfig) {
	r.config = c
	r.registrars = map[string]*PublicKey{}
	r.admins = map[string]*PublicKey{}
	for _, k := range c.RegistrarKeys {
		if pk, err := ParsePublicKeyDER(k.PublicKey); err == nil {
			r.registrars[pk.ID] = pk
		}
	}
	for _, k := range c.AdminKeys {
		if pk, err := ParsePublicKeyDER(k.PublicKey); err == nil {
			r.admins[pk.ID] = pk
		}
	}
}

// soleSignature checks that env has exactly one signature, by one of keys,
// and that it verifies.
func soleSignature(env *Envelope, keys map[string]*PublicKey) error {
	if len(env.Signatures) != 1 {
		return fmt.Errorf("%d signatures, want 1", len(env.Signatures))
	}
	k := keys[env.Signatures[0].KeyID]
	if k == nil {
		return fmt.Errorf("key %s is not one of the configured keys", env.Signatures[0].KeyID)
	}
	return env.Verify(k)
}

// sameDecision compares a recorded decision with the re-derived one.
func sameDecision(index uint64, got, want *Decision) error {
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		return Errorf(ReasonReplayDecision, "entry %d: recorded decision %s, the rules and recorded policy give %s", index, g, w)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

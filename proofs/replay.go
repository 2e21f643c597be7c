package proofs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Replay re-derives a log's decisions from its leaves alone, in index
// order: the auditor's run of the state machine the sequencer runs
// (State), over a store in memory. It implements ChainState over what it
// has replayed (State's methods).
type Replay struct {
	*State
	next     uint64
	lastTime time.Time
}

// NewReplay returns a replay positioned before entry 0.
func NewReplay() *Replay {
	return &Replay{State: NewState(NewMemStore())}
}

// Next is the index of the next entry Apply expects.
func (r *Replay) Next() uint64 { return r.next }

// Apply replays the entry at index: it checks that the log should have
// accepted it into the log at all (authentic, in order, log time not
// decreasing) and that its recorded decision is the one the rules and the
// recorded policy give, then applies the effects of the recorded decision
// (as the log did). The error names the first discrepancy; the state then
// still advances past the entry, so a replay can report every discrepancy
// of a log.
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
	if r.Config() == nil && l.Kind != KindLogConfig {
		return firstErr(problem, Errorf(ReasonReplayConfig, "entry %d: the log does not begin with its configuration", index))
	}
	ev, err := l.Event()
	if err != nil {
		return firstErr(problem, err)
	}
	if err := r.Authenticate(ev); err != nil {
		return firstErr(problem, &Error{Reason: ReasonReplayUnauthentic, Err: fmt.Errorf("entry %d: %w", index, err)})
	}
	if l.Delegation != nil && r.Policy() == nil {
		return firstErr(problem, Errorf(ReasonReplayPolicyMissing, "entry %d: a delegation before any policy entry", index))
	}
	want, err := r.Decide(ev, l.Time)
	if err != nil {
		return firstErr(problem, err)
	}
	mismatch := sameDecision(index, l.Decision, want)
	ef, err := r.Effects(index, ev, l.Decision)
	if err != nil {
		return firstErr(problem, err)
	}
	r.State.Apply(&ef)
	if l.Config != nil {
		if err := l.Config.Rules.Validate(); err != nil {
			// The rules cannot be applied faithfully under limits no log may
			// run with (a depth limit the chain walk does not cover).
			return firstErr(problem, Errorf(ReasonReplayConfig, "entry %d: %v", index, err))
		}
	}
	return firstErr(problem, mismatch)
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

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// A log run with a witness policy reports its witnesses' state at GET
// /witnesses. Nothing in that report is signed: it is the server's word.
// It is still worth reading, because a witness that holds another history
// of the log's origin says so only to the log (a 409 naming a size the log
// never signed, a 422 refusing its consistency proof), and the log is the
// only one to pass it on. A server that hides it is caught by policies
// (its checkpoints lack that witness's cosignature); one that reports it
// is reporting a split view of itself, or its own loss of state.

// ReasonWitnessConflict is the reason code of a witness conflict alert.
const ReasonWitnessConflict = proofs.ReasonWitnessConflict

// maxWitnessReportBytes bounds a GET /witnesses answer, after
// decompression: a few hundred bytes per witness.
const maxWitnessReportBytes = 1 << 20

// ErrNoWitnesses is returned by WitnessReport when the server reports no
// witnesses: it runs without a witness policy, or it is a static mirror.
var ErrNoWitnesses = errors.New("the server reports no witnesses")

// WitnessReport reads the server's GET /witnesses (at most 1 MiB). It
// returns ErrNoWitnesses when the server answers 404, and a ReasonMismatch
// error for an answer that is not a report about this client's log.
func (c *Client) WitnessReport(ctx context.Context) (*proofs.WitnessReport, error) {
	if c.noConnect.Load() {
		// A static tlog-tiles mirror serves tiles and the checkpoint only:
		// it has no witness report, and is not asked for one.
		return nil, ErrNoWitnesses
	}
	body, err := c.tiles.get(ctx, "witnesses", maxWitnessReportBytes)
	if se := statusError(0); errors.As(err, &se) && se == http.StatusNotFound {
		return nil, ErrNoWitnesses
	}
	if err != nil {
		return nil, err
	}
	var r proofs.WitnessReport
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, proofs.Errorf(ReasonMismatch, "GET /witnesses: %v", err)
	}
	if c.logKey != nil && r.Origin != c.logKey.Name() {
		return nil, proofs.Errorf(ReasonMismatch, "GET /witnesses reports on log %q, not %q", r.Origin, c.logKey.Name())
	}
	return &r, nil
}

// WitnessConflict is a witness that the server reports holding a
// checkpoint of the log's origin that conflicts with the log's. It is the
// server's unverified report, and it does not say which history is the
// true one: someone showed the witness another history under the log's
// key (a split view: the key is in other hands, or the operator keeps
// two logs), or the log lost state and signed again from an older size
// (restored from an old backup).
type WitnessConflict struct {
	Origin  string
	Witness proofs.WitnessStatus
	// Size is the log's latest size in the same report.
	Size uint64
	// Report is the witness's entry of the report, as JSON: the evidence.
	Report []byte
}

// AlertedConflict is what the follower state keeps of a witness conflict
// it has alerted on, so that it alerts once per conflict, across restarts.
type AlertedConflict struct {
	// Kind is the witness's last_error_kind when alerted.
	Kind string `json:"kind"`
	// LastCosigned is the witness's last_cosigned then: a witness that
	// cosigns again and conflicts again is another conflict.
	LastCosigned time.Time `json:"last_cosigned,omitzero"`
	// At is the last_error_at of the report alerted on.
	At time.Time `json:"at"`
}

// CheckWitnesses reads the server's witness report once and calls fn for
// each witness it reports in conflict (last_error_kind conflict or
// inconsistent) that it has not reported before, in report order.
//
// Once per conflict: a witness in conflict stays so, and the server
// retries it every few seconds, each time with a new last_error_at, so
// that time alone would make an alert of every check. A conflict is
// therefore the witness's name, its error kind and its last cosignature
// time; a report of the same conflict is skipped, a witness reported
// without a conflict (it cosigned again) or no longer reported is
// forgotten, and its next conflict alerts again. What was alerted on is
// kept in the state file once fn has returned nil: fn's error stops the
// check, and that conflict is reported again by the next one.
//
// A server that reports no witnesses is not an error: it returns 0, nil.
func (f *Follower) CheckWitnesses(ctx context.Context, fn func(context.Context, *WitnessConflict) error) (int, error) {
	r, err := f.c.WitnessReport(ctx)
	if errors.Is(err, ErrNoWitnesses) {
		return 0, f.saveAlerted(nil)
	}
	if err != nil {
		return 0, err
	}
	// What was alerted on, for the witnesses still in conflict.
	keep := map[string]AlertedConflict{}
	for _, w := range r.Witnesses {
		if a, ok := f.st.Witnesses[w.Name]; ok && w.Conflicting() {
			keep[w.Name] = a
		}
	}
	n := 0
	for i := range r.Witnesses {
		w := &r.Witnesses[i]
		if !w.Conflicting() {
			continue
		}
		if a, ok := keep[w.Name]; ok && a.Kind == w.LastErrorKind && a.LastCosigned.Equal(w.LastCosigned) {
			continue // alerted on already
		}
		raw, err := json.Marshal(w)
		if err != nil {
			return n, err
		}
		if err := fn(ctx, &WitnessConflict{Origin: r.Origin, Witness: *w, Size: r.Size, Report: raw}); err != nil {
			if serr := f.saveAlerted(keep); serr != nil {
				return n, serr
			}
			return n, fmt.Errorf("witness %s: %w", w.Name, err)
		}
		keep[w.Name] = AlertedConflict{Kind: w.LastErrorKind, LastCosigned: w.LastCosigned, At: w.LastErrorAt}
		n++
	}
	return n, f.saveAlerted(keep)
}

// saveAlerted writes the alerted conflicts into the state, if they changed.
func (f *Follower) saveAlerted(m map[string]AlertedConflict) error {
	if len(m) == 0 {
		m = nil
	}
	if len(m) == len(f.st.Witnesses) {
		same := true
		for name, a := range m {
			if b, ok := f.st.Witnesses[name]; !ok || a.Kind != b.Kind || !a.LastCosigned.Equal(b.LastCosigned) || !a.At.Equal(b.At) {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	st := f.st
	st.Witnesses = m
	return f.save(st)
}

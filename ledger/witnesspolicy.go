package ledger

// Witness policies, as the log uses them: which C2SP tlog-witness
// witnesses it sends its checkpoints to, and which of their cosignatures
// make a checkpoint witnessed (the quorum). The file is read by
// proofs.ParseWitnessPolicy, as every client reads it, so a policy the
// log accepts is one its clients accept, and a checkpoint the log serves
// as witnessed is one they count as witnessed.

import (
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// WitnessPolicy is a tlog-policy bound to one log's key.
type WitnessPolicy struct {
	*proofs.WitnessPolicy
	log note.Verifier
}

// ParseWitnessPolicy parses a tlog-policy file for the log whose verifier
// key is logVKey, and checks what a log needs beyond the format: every
// witness has an http(s) URL (the log must reach it; requests go to
// URL/add-checkpoint), and the quorum is not none (a log with witnesses
// that need not sign is a misconfiguration rather than a policy).
func ParseWitnessPolicy(text []byte, logVKey string) (*WitnessPolicy, error) {
	log, err := note.NewVerifier(logVKey)
	if err != nil {
		return nil, fmt.Errorf("witness policy: the log's key: %w", err)
	}
	p, err := proofs.ParseWitnessPolicy(text, logVKey, nil)
	if err != nil {
		return nil, err
	}
	if p.Quorum == "none" {
		return nil, proofs.Errorf(proofs.ReasonWitnessPolicyInvalid, "witness policy: the quorum is none: a witnessed log needs at least one witness to cosign")
	}
	if len(p.Witnesses) == 0 {
		return nil, proofs.Errorf(proofs.ReasonWitnessPolicyInvalid, "witness policy: no witness line")
	}
	for i := range p.Witnesses {
		w := &p.Witnesses[i]
		u, err := url.Parse(w.URL)
		if w.URL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, proofs.Errorf(proofs.ReasonWitnessPolicyInvalid, "witness policy: witness %s: URL %q is not an http(s) URL the log can send checkpoints to", w.Name, w.URL)
		}
	}
	return &WitnessPolicy{WitnessPolicy: p, log: log}, nil
}

// Satisfied reports whether the signed note is a checkpoint of the log
// whose cosignatures satisfy the quorum, as a client with the policy
// checks it. Signatures by other keys are ignored.
func (p *WitnessPolicy) Satisfied(signed []byte) bool {
	_, err := proofs.OpenWitnessedCheckpoint(signed, p.log, p.WitnessPolicy)
	return err == nil
}

// witnessURL is where a witness takes add-checkpoint requests.
func witnessURL(w *proofs.PolicyWitness) string {
	return strings.TrimSuffix(w.URL, "/") + "/add-checkpoint"
}

package ledger

// Witness policies: which C2SP tlog-witness witnesses the log sends its
// checkpoints to, and which of their cosignatures make a checkpoint
// witnessed (the quorum).

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// WitnessPolicy is a parsed tlog-policy file (the syntax of Sigsum's policy
// files with C2SP vkeys, as read by formats/witness.ParsePolicy):
//
//	log VKEY [URL]            the logs the policy is for (optional)
//	witness NAME VKEY URL     a witness: its cosigning key and its tlog-witness URL
//	group NAME N|any|all MEMBER...
//	quorum NAME|none
//
// The log needs each witness's URL (where it sends add-checkpoint) and key
// (to verify what comes back) and the quorum; the policy's names are the
// labels of its metrics and status.
type WitnessPolicy struct {
	// Witnesses in the order the policy names them; that is also the order
	// of their cosignature lines in a served checkpoint.
	Witnesses []PolicyWitness
	// Logs are the vkeys of the policy's log lines.
	Logs []string
	// quorum is the policy's quorum, which formats/witness evaluates.
	quorum fwitness.Group
}

// PolicyWitness is one witness line of a policy.
type PolicyWitness struct {
	Name string
	VKey string
	// URL is the witness's prefix URL; requests go to URL/add-checkpoint.
	URL string
	// Key verifies the witness's cosignatures: Ed25519 cosignature/v1 or
	// ML-DSA-44 (subtree/v1 over [0, size)), by the vkey's type.
	Key note.Verifier
}

// ParseWitnessPolicy parses a tlog-policy file. Every witness must have a
// URL (the log must be able to reach it) and the policy must define a
// quorum; "quorum none" is refused, as a log with witnesses that need not
// sign is a misconfiguration rather than a policy.
func ParseWitnessPolicy(text []byte) (*WitnessPolicy, error) {
	quorum, err := fwitness.ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if quorum.N == 0 {
		return nil, fmt.Errorf("witness policy: the quorum is none: a witnessed log needs at least one witness to cosign")
	}
	p := &WitnessPolicy{quorum: quorum}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "log":
			if len(fields) < 2 {
				return nil, fmt.Errorf("witness policy: invalid log line %q", strings.TrimSpace(line))
			}
			p.Logs = append(p.Logs, fields[1])
		case "witness":
			// ParsePolicy checked there are four fields and the key.
			w := PolicyWitness{Name: fields[1], VKey: fields[2], URL: strings.TrimSuffix(fields[3], "/")}
			u, err := url.Parse(w.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return nil, fmt.Errorf("witness policy: witness %s: URL %q is not an http(s) URL", w.Name, fields[3])
			}
			if w.Key, err = fnote.NewVerifierForCosignatureV1(w.VKey); err != nil {
				return nil, fmt.Errorf("witness policy: witness %s: key: %w", w.Name, err)
			}
			p.Witnesses = append(p.Witnesses, w)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if len(p.Witnesses) == 0 {
		return nil, fmt.Errorf("witness policy: no witness line")
	}
	return p, nil
}

// Satisfied reports whether the signed note carries cosignatures that
// satisfy the quorum. Signatures by other keys are ignored.
func (p *WitnessPolicy) Satisfied(signed []byte) bool { return p.quorum.Satisfied(signed) }

// checkLog checks that the policy is for the log with verifier key vkey
// when it names logs at all.
func (p *WitnessPolicy) checkLog(vkey string) error {
	if len(p.Logs) == 0 {
		return nil
	}
	for _, l := range p.Logs {
		if l == vkey {
			return nil
		}
	}
	return fmt.Errorf("witness policy: its log lines do not name this log's key %s", vkey)
}

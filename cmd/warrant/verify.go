package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// notShown is what a single tlog-proof cannot establish.
const notShown = "a tlog-proof shows that this leaf is in the log; it does not check the signatures inside it " +
	"(they need the key bindings in force, which a chain bundle carries), nor that nothing later revoked it " +
	"(that needs the whole log: warrant audit)"

func runVerify(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "verify", "PROOF|BUNDLE --log-key VKEY|@FILE [--witness-policy FILE] [--json]\n\nPROOF is a C2SP tlog-proof (from `warrant prove`), BUNDLE a chain bundle (from `warrant trace --out`).")
	logKey := fs.String("log-key", env.getenv("WARRANT_LOG_KEY"), "the log's note verifier key, or @FILE (env WARRANT_LOG_KEY)")
	asJSON := fs.Bool("json", false, "print one single-line JSON object")
	var witnessPolicy string
	registerWitnessPolicy(fs, env, &witnessPolicy)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("verify takes one argument: a tlog-proof file (from warrant prove) or a chain bundle (from warrant trace --out)")
	}
	vkey, err := logKeyText(*logKey)
	if err != nil {
		return err
	}
	v, err := proofs.ParseVerifierKey(vkey)
	if err != nil {
		return err
	}
	witnesses, err := loadWitnessPolicy(witnessPolicy, vkey, env.stderr)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if len(data) > 0 && data[0] == '{' {
		vc, err := proofs.VerifyBundle(data, v, proofs.BundleOptions{WitnessPolicy: witnesses})
		if err != nil {
			return err
		}
		last := vc.Links[len(vc.Links)-1]
		w, err := witnessedBy(witnesses, vc.Checkpoint, v)
		if err != nil {
			return err
		}
		if *asJSON {
			out := map[string]any{
				"id": last.Leaf.Delegation.ID, "index": last.Index, "kind": "chain_bundle", "links": len(vc.Links), "verified": true,
				"checkpoint": cpJSON(vc.Checkpoint), "not_shown": proofs.BundleNotShown,
			}
			if w != nil {
				out["witnesses"] = w
			}
			return printJSON(env.stdout, out)
		}
		fmt.Fprintf(env.stdout, "verified: the chain of %s, %d links from its root grant, in %s at tree size %d\n", last.Leaf.Delegation.ID, len(vc.Links), vc.Checkpoint.Origin, vc.Checkpoint.Size)
		printChain(env.stdout, vc)
		fmt.Fprintln(env.stdout, "checked: checkpoint signatures and consistency, inclusion of every entry, the log configuration, key bindings and policies, every link's signatures, chain continuity and the chain rules, every recorded decision against the recorded policy")
		if w != nil {
			fmt.Fprintln(env.stdout, w.line())
		}
		for _, n := range proofs.BundleNotShown {
			fmt.Fprintf(env.stdout, "not shown: %s\n", n)
		}
		return nil
	}
	ve, err := proofs.VerifyWitnessedTLogProof(data, v, witnesses)
	if err != nil {
		return err
	}
	w, err := witnessedBy(witnesses, ve.Checkpoint, v)
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{
			"id": ve.Leaf.ID(), "index": ve.Index, "kind": ve.Leaf.Kind, "verified": true,
			"checkpoint": cpJSON(ve.Checkpoint), "not_shown": notShown,
		}
		if w != nil {
			out["witnesses"] = w
		}
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "verified: entry %d (%s %s) is in %s at tree size %d\ncheckpoint signature, inclusion proof and leaf format checked\n",
		ve.Index, ve.Leaf.Kind, ve.Leaf.ID(), ve.Checkpoint.Origin, ve.Checkpoint.Size)
	if w != nil {
		fmt.Fprintln(env.stdout, w.line())
	}
	fmt.Fprintf(env.stdout, "not shown: %s\n", notShown)
	return nil
}

// witnessJSON is what verify reports of a satisfied witness policy: the
// witnesses whose cosignatures counted, and the quorum they meet.
type witnessJSON struct {
	CosignedBy []string `json:"cosigned_by"`
	Of         int      `json:"policy_witnesses"`
	Quorum     string   `json:"quorum"`
	QuorumMet  bool     `json:"quorum_met"`
}

// witnessedBy reports which of the policy's witnesses cosigned cp (which
// already satisfied the policy); nil without a policy.
func witnessedBy(p *proofs.WitnessPolicy, cp *proofs.Checkpoint, logKey note.Verifier) (*witnessJSON, error) {
	if p == nil {
		return nil, nil
	}
	names, err := p.Cosigners(cp.Note, logKey)
	if err != nil {
		return nil, err
	}
	return &witnessJSON{CosignedBy: append([]string{}, names...), Of: len(p.Witnesses), Quorum: p.Quorum, QuorumMet: true}, nil
}

func (w *witnessJSON) line() string {
	if w.Quorum == "none" {
		return fmt.Sprintf("witnesses: the policy's quorum is none, so no cosignature was required (cosigned by %d of its %d witnesses: %s)", len(w.CosignedBy), w.Of, namesOrNone(w.CosignedBy))
	}
	return fmt.Sprintf("witnesses: cosigned by %s (%d of the policy's %d); quorum %s is met", strings.Join(w.CosignedBy, ", "), len(w.CosignedBy), w.Of, w.Quorum)
}

func namesOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

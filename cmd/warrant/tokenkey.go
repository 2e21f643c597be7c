package main

import (
	"context"
	"fmt"

	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// runRotateTokenKey is `warrant rotate-token-key`: a new token-signing key
// for a stopped server, the old one kept as the previous key.
func runRotateTokenKey(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "rotate-token-key", "[--data DIR] [--json]")
	data := fs.String("data", envOr(env, "WARRANT_DATA", defaultData), "data directory of the stopped server (env WARRANT_DATA)")
	asJSON := fs.Bool("json", false, "print one single-line JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("rotate-token-key takes no arguments")
	}
	old, cur, err := ledger.RotateTokenKey(*data)
	if err != nil {
		return proofs.Errorf(proofs.ReasonIOError, "%v", err)
	}
	if *asJSON {
		return printJSON(env.stdout, map[string]string{"previous": old.ID, "current": cur.ID})
	}
	fmt.Fprintf(env.stdout, "token key rotated: current %s, previous %s (both published and recorded when the server starts)\n", cur.ID, old.ID)
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/proofs"
)

func runCheckpoint(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "checkpoint", "[--server URL] [--log-key VKEY|@FILE] [--state FILE] [--witness-policy FILE] [--witnesses] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	witnesses := fs.Bool("witnesses", false, "also show each witness's state as the server reports it: name, URL, last cosigned size, last error")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("checkpoint takes no arguments")
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return err
	}
	var ws *proofs.WitnessReport
	if *witnesses {
		// The server's report, not verified: the cosignatures on the
		// checkpoint are what can be checked.
		ws, err = c.WitnessReport(ctx)
		if errors.Is(err, client.ErrNoWitnesses) {
			return proofs.Errorf(proofs.ReasonNotFound, "the server at %s reports no witnesses: it runs without --witness-policy", cf.server)
		}
		if err != nil {
			return err
		}
	}
	if cf.json {
		out := map[string]any{
			"origin": cp.Origin, "size": cp.Size, "root": fmt.Sprintf("%x", cp.Root), "checkpoint": string(cp.Note),
		}
		if ws != nil {
			out["witness_mode"], out["witnessed_size"], out["witnesses"] = ws.Mode, ws.CosignedSize, ws.Witnesses
		}
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "origin %s\nsize %d\nroot %x\nsignature verified; consistent with the trusted state\n\n%s", cp.Origin, cp.Size, cp.Root, cp.Note)
	if ws != nil {
		fmt.Fprintf(env.stdout, "\nwitnesses (as the server reports them; mode %s, witnessed size %d):\n", ws.Mode, ws.CosignedSize)
		for _, w := range ws.Witnesses {
			fmt.Fprintf(env.stdout, "%s\t%s\tcosigned %d", w.Name, w.URL, w.CosignedSize)
			if w.LastError != "" {
				fmt.Fprintf(env.stdout, "\terror (%s, %s): %s", w.LastErrorKind, w.LastErrorAt.UTC().Format(time.RFC3339), w.LastError)
			}
			fmt.Fprintln(env.stdout)
		}
	}
	return nil
}

// fetchEntry resolves INDEX|ID to a verified entry.
func fetchEntry(ctx context.Context, c *client.Client, arg string) (*client.Entry, error) {
	if idx, err := strconv.ParseUint(arg, 10, 64); err == nil {
		return c.Entry(ctx, idx)
	}
	return c.Delegation(ctx, arg)
}

func runGet(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "get", "INDEX|ID [--raw] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	raw := fs.Bool("raw", false, "print the exact leaf bytes")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("get takes one argument: an entry index or a delegation id")
	}
	if *raw && cf.json {
		return usagef("--raw and --json exclude each other")
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	e, err := fetchEntry(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if *raw {
		_, err := env.stdout.Write(e.Leaf.Raw)
		return err
	}
	j := toEntryJSON(e)
	j.Payload = e.Leaf.Payload()
	if e.Status != nil {
		j.Status = &statusJSON{State: e.Status.GetState(), RevokedVia: e.Status.GetRevokedVia()}
	}
	if e.Leaf.Env != nil {
		for _, s := range e.Leaf.Env.Signatures {
			j.Signers = append(j.Signers, s.KeyID)
		}
		j.Actor = e.Leaf.Actor()
	}
	if cf.json {
		return printJSON(env.stdout, j)
	}
	body, _ := json.MarshalIndent(j.Payload, "", "  ")
	fmt.Fprintf(env.stdout, "entry %d: %s %s\nlog time %s\n", e.Index, e.Leaf.Kind, e.ID, e.Leaf.LogTime)
	if e.Leaf.Decision != nil {
		fmt.Fprintf(env.stdout, "decision %s", e.Leaf.Decision.Outcome)
		if len(e.Leaf.Decision.Reasons) > 0 {
			fmt.Fprintf(env.stdout, " (%v)", e.Leaf.Decision.Reasons)
		}
		fmt.Fprintln(env.stdout)
	}
	if e.Leaf.Env != nil {
		fmt.Fprintf(env.stdout, "payload type %s\nby %s\nsigned by %v\n", e.Leaf.Env.PayloadType, j.Actor, j.Signers)
	}
	if kb := e.Leaf.KeyBinding; kb != nil && kb.Revoked && e.Leaf.Decision.Outcome == proofs.OutcomeAccepted {
		fmt.Fprintln(env.stdout, withdrawal(kb))
	}
	if j.Status != nil {
		fmt.Fprintf(env.stdout, "status %s", j.Status.State)
		if j.Status.RevokedVia != "" {
			fmt.Fprintf(env.stdout, " (via %s)", j.Status.RevokedVia)
		}
		fmt.Fprintln(env.stdout, " (server's account, not proven: see `warrant audit`)")
	}
	fmt.Fprintf(env.stdout, "%s\ncheckpoint %s\ninclusion proof verified against the signed checkpoint\n", body, e.Checkpoint)
	return nil
}

func runProve(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "prove", "INDEX|ID [--out FILE] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	out := fs.String("out", "", "write the tlog-proof to FILE (default: stdout)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("prove takes one argument: an entry index or a delegation id")
	}
	if cf.json && *out == "" {
		return usagef("--json needs --out: stdout carries the JSON summary")
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	e, err := fetchEntry(ctx, c, pos[0])
	if err != nil {
		return err
	}
	p, err := e.TLogProof()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := env.stdout.Write(p)
		return err
	}
	if err := atomicfile.WriteFile(*out, p, 0o644); err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if cf.json {
		return printJSON(env.stdout, map[string]any{"id": e.ID, "index": e.Index, "out": *out, "tree_size": e.Checkpoint.Size})
	}
	fmt.Fprintf(env.stdout, "wrote tlog-proof of entry %d (%s) at tree size %d to %s\n", e.Index, e.ID, e.Checkpoint.Size, *out)
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

func runExport(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "export", "--out FILE [--json]")
	var cf clientFlags
	cf.register(fs, env)
	out := fs.String("out", "", "write the whole log to FILE")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usagef("export needs --out FILE and no arguments")
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	cp, err := c.Export(ctx, *out)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(env.stdout, map[string]any{"out": *out, "checkpoint": cpJSON(cp)})
	}
	fmt.Fprintf(env.stdout, "exported %d entries of %s to %s (the leaves hash to the signed checkpoint)\n", cp.Size, cp.Origin, *out)
	return nil
}

func runAudit(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "audit", "(--export FILE | --server URL) --log-key VKEY [--witness-policy FILE] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	export := fs.String("export", "", "audit an export file offline instead of the server")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("audit takes no arguments")
	}
	if *export == "" && !flagSet(fs, "server") && env.getenv("WARRANT_SERVER") == "" && env.getenv("WARRANT_SERVERS") == "" {
		return usagef("audit needs a source: --export FILE (from warrant export), or --server URL (env WARRANT_SERVERS or WARRANT_SERVER)")
	}
	if *export != "" {
		env.client = nil // offline: no server's log to name on a failure
	}
	v, err := loadLogKey(cf.logKey)
	if err != nil {
		return err
	}
	progress := progressBar(env.stderr)
	var report *proofs.AuditReport
	if *export != "" {
		f, err := os.Open(*export)
		if err != nil {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
		defer f.Close()
		witnesses, _, err := cf.witnesses()
		if err != nil {
			return err
		}
		var trusted *proofs.Checkpoint
		if cf.state != "" {
			if trusted, err = client.New(cf.server, v, client.WithState(client.FileState{Path: cf.state})).Trusted(); err != nil {
				return err
			}
		}
		if report, err = proofs.AuditWitnessedExport(f, v, witnesses, trusted, progress); err != nil {
			return err
		}
	} else {
		c, err := cf.newClient()
		if err != nil {
			return err
		}
		if report, err = c.Audit(ctx, progress); err != nil {
			return err
		}
	}
	if progress != nil {
		fmt.Fprint(env.stderr, "\r\033[K")
	}
	if cf.json {
		if err := printJSON(env.stdout, report); err != nil {
			return err
		}
	} else {
		printReport(env.stdout, report)
	}
	if !report.Verified {
		d := report.Discrepancies[0]
		return proofs.Errorf(d.Reason, "%d discrepancies; the first at entry %d: %s", len(report.Discrepancies), d.Index, d.Message)
	}
	return nil
}

func printReport(w io.Writer, r *proofs.AuditReport) {
	fmt.Fprintf(w, "audited %s: %d entries, root %s\n", r.Origin, r.Size, r.Root)
	for _, k := range proofs.Kinds() {
		if r.Entries[k] > 0 {
			fmt.Fprintf(w, "  %-12s %d\n", k, r.Entries[k])
		}
	}
	fmt.Fprintf(w, "signed events: %d accepted, %d denied\n", r.Accepted, r.Denied)
	for _, reason := range r.DenialReasons() {
		fmt.Fprintf(w, "  denied %-24s %d\n", reason, r.Denials[reason])
	}
	if r.Verified {
		fmt.Fprintln(w, "verified: the entries hash to the signed checkpoint; every signature, rule and policy decision replays")
		return
	}
	fmt.Fprintf(w, "NOT VERIFIED: %d discrepancies\n", len(r.Discrepancies))
	for _, d := range r.Discrepancies {
		fmt.Fprintf(w, "  entry %d: %s: %s\n", d.Index, d.Reason, d.Message)
	}
}

// progressBar returns a progress callback drawing on w when w is a
// terminal, or nil.
func progressBar(w io.Writer) func(done, total uint64) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(done, total uint64) {
		width := 40
		filled := width
		if total > 0 {
			filled = int(uint64(width) * done / total)
		}
		fmt.Fprintf(f, "\r[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), done, total)
	}
}

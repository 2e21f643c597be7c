package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// runBackup fetches an online backup from a running server (GET /backup),
// checks it while it streams (the checkpoint's signature, the leaves
// against its root, the trailer's SHA-256) and against the trusted state
// (consistency), and only then writes FILE.
func runBackup(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "backup", "--out FILE (--admin-key KEY | --ops URL) [--server URL] --log-key VKEY [--json]")
	var cf clientFlags
	cf.register(fs, env)
	out := fs.String("out", "", "write the backup to FILE")
	opsURL := fs.String("ops", env.getenv("WARRANT_OPS"), "the server's operations URL (serve --ops-listen), if it has one (default: --server; env WARRANT_OPS)")
	adminKey := fs.String("admin-key", "", "an admin private key of the server (serve --admin-key), to sign the request on the main listener")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usagef("backup needs --out FILE and no arguments")
	}
	v, err := loadLogKey(cf.logKey)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	base, hc := cf.server, http.DefaultClient
	if *opsURL != "" {
		base = *opsURL
	} else if len(client.SplitServers(cf.server)) > 1 {
		return usagef("backup reads one server's store: give --server one URL (or --ops URL), not the list %q", cf.server)
	} else if hc, err = backupHTTPClient(&cf.tls); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/backup", nil)
	if err != nil {
		return usagef("bad server URL %q: %v", base, err)
	}
	if *adminKey != "" {
		s, err := loadSigner(*adminKey)
		if err != nil {
			return err
		}
		if err := s.AuthorizeAdmin(req, v.Name(), time.Now()); err != nil {
			return &proofs.Error{Reason: proofs.ReasonSigningFailed, Err: err}
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonBackupFailed, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		reason := proofs.ReasonBackupFailed
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && strings.HasPrefix(string(msg), proofs.ReasonBackupInProgress):
			reason = proofs.ReasonBackupInProgress
		case resp.StatusCode == http.StatusUnauthorized:
			reason = proofs.ReasonAdminAuth
			if *adminKey == "" {
				msg = append(msg, " (sign the request with --admin-key KEY, or use the operations listener with --ops URL)"...)
			}
		}
		return proofs.Errorf(reason, "GET %s: %s: %s", req.URL, resp.Status, strings.TrimSpace(string(msg)))
	}
	tmp, err := atomicfile.Create(*out, 0o600)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	defer tmp.Abort()
	info, err := ledger.ReadBackup(io.TeeReader(resp.Body, tmp), v, nil)
	if err != nil {
		return fmt.Errorf("the backup from %s does not check out, nothing written: %w", req.URL, err)
	}
	// The backup's checkpoint must be consistent with what this client
	// trusts (older or newer: consistency proofs either way).
	if _, err := c.ObserveCheckpoint(ctx, info.Checkpoint.Note); err != nil {
		return err
	}
	if err := tmp.Commit(); err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if cf.json {
		return printJSON(env.stdout, map[string]any{"out": *out, "checkpoint": cpJSON(info.Checkpoint), "records": info.Records, "bytes": info.Bytes})
	}
	fmt.Fprintf(env.stdout, "backed up %d entries of %s (%d records, %d bytes) to %s\n", info.Checkpoint.Size, info.Checkpoint.Origin, info.Records, info.Bytes, *out)
	fmt.Fprintf(env.stdout, "checked: the leaves hash to the signed checkpoint (root %x), consistent with the trusted state\n", info.Checkpoint.Root)
	fmt.Fprintln(env.stdout, "the log key (log.key) is not in the backup: keep a copy of it separately")
	return nil
}

// backupHTTPClient is a plain HTTP client for the main listener, with the
// client's TLS settings (--tls-ca, --tls-cert, --tls-key) when given.
func backupHTTPClient(t *clientTLS) (*http.Client, error) {
	if t.ca == "" && t.cert == "" && t.key == "" {
		return http.DefaultClient, nil
	}
	if (t.cert == "") != (t.key == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	cfg, err := client.TLSConfig(t.ca, t.cert, t.key)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}

// runRestore rebuilds a data directory from a backup and the log key,
// checking and auditing every entry on the way.
func runRestore(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "restore", "--from FILE --data DIR --log-key-file LOG.KEY [--json]")
	from := fs.String("from", "", "the backup `FILE` (from warrant backup)")
	data := fs.String("data", "", "the data directory to create (must not exist, or be empty)")
	keyFile := fs.String("log-key-file", "", "the log's signing key, saved from the original data directory's log.key")
	jsonOut := fs.Bool("json", false, "print one single-line JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *from == "" || *data == "" || *keyFile == "" {
		return usagef("restore needs --from FILE, --data DIR and --log-key-file FILE, and no arguments")
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonKeyUnreadable, Err: err}
	}
	f, err := os.Open(*from)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	defer f.Close()
	info, err := ledger.Restore(ctx, f, *data, string(key), ledger.RestoreOptions{Audit: true, Logger: quietLogger(env)})
	if err != nil {
		return fmt.Errorf("restoring %s into %s: %w", *from, *data, err)
	}
	cp, report := info.Checkpoint, info.Audit
	if *jsonOut {
		if err := printJSON(env.stdout, map[string]any{"data": *data, "checkpoint": cpJSON(cp), "records": info.Records, "audit": report}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.stdout, "restored %d entries of %s (%d records) into %s\n", cp.Size, cp.Origin, info.Records, *data)
		fmt.Fprintf(env.stdout, "checked: the leaves and the stored tree match the backup's signed checkpoint (root %x)\n", cp.Root)
		printReport(env.stdout, report)
		fmt.Fprintf(env.stdout, "start it with `warrant serve --data %s` and the original's flags\n", *data)
	}
	if !report.Verified {
		d := report.Discrepancies[0]
		return proofs.Errorf(d.Reason, "restored, but the log has %d discrepancies; the first at entry %d: %s", len(report.Discrepancies), d.Index, d.Message)
	}
	return nil
}

// quietLogger logs warnings and errors (Badger's included) on stderr.
func quietLogger(env *cmdEnv) *slog.Logger {
	return slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
	"github.com/warrantlog/warrant/siem"
)

func runSIEM(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "siem", "--state FILE [--once] [--format ocsf|cef|syslog] [--out -|FILE|URL] [--witness-policy FILE]")
	var cf clientFlags
	cf.register(fs, env)
	fs.Lookup("state").Usage = "required: the follower's state file (where to resume, and the trusted checkpoint); created on the first run"
	once := fs.Bool("once", false, "drain to the current checkpoint and exit")
	format := fs.String("format", "ocsf", "event format: ocsf (JSON lines), cef or syslog (RFC 5424)")
	out := fs.String("out", "-", "sink: - (stdout), a file (appended), syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT, or a Splunk HEC https:// URL")
	tokenFile := fs.String("hec-token-file", "", "file holding the HEC token (default: env WARRANT_HEC_TOKEN; never on the command line)")
	caFile := fs.String("ca", "", "PEM CA certificates to trust for syslog+tls and HEC")
	stallAfter := fs.Duration("stall-after", time.Minute, "alert when the log's signed timestamp is older than this")
	poll := fs.Duration("poll", 5*time.Second, "polling interval when the checkpoint stream is unavailable, and of the server's witness report (GET /witnesses)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || cf.state == "" {
		return usagef("siem needs --state FILE and no arguments")
	}
	vkey, err := logKeyText(cf.logKey)
	if err != nil {
		return err
	}
	v, err := proofs.ParseVerifierKey(vkey)
	if err != nil {
		return err
	}
	tsKey, err := proofs.TimestampVerifier(vkey)
	if err != nil {
		return err
	}
	var fmtr siem.Format
	switch *format {
	case "ocsf":
		fmtr = siem.OCSF()
	case "cef":
		fmtr = siem.CEF()
	case "syslog":
		host, _ := os.Hostname()
		fmtr = siem.Syslog(host)
	default:
		return usagef("--format must be ocsf, cef or syslog")
	}
	opts := siem.OpenOptions{Stdout: env.stdout, RetryAttempts: 8, RetryBackoff: 500 * time.Millisecond}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
		opts.HECToken = strings.TrimSpace(string(b))
	} else {
		opts.HECToken = env.getenv("WARRANT_HEC_TOKEN")
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return usagef("--ca %s holds no PEM certificate", *caFile)
		}
		opts.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	sink, err := siem.Open(*out, opts)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonSinkUnavailable, Err: err}
	}
	defer sink.Close()

	topts, err := cf.tls.options() // an https:// log (--tls-ca, --tls-cert, --tls-key)
	if err != nil {
		return err
	}
	_, wopts, err := cf.witnesses() // a checkpoint without the quorum is an alert
	if err != nil {
		return err
	}
	c := client.New(cf.server, v, append(topts, wopts...)...)
	origin := v.Name()
	emit := func(ctx context.Context, entries []client.Followed) error {
		records := make([][]byte, len(entries))
		for i, e := range entries {
			r, err := fmtr.Event(&siem.Event{Origin: origin, Index: e.Index, CheckpointSize: e.CheckpointSize, Leaf: e.Leaf, Depth: e.Depth})
			if err != nil {
				return fmt.Errorf("rendering entry %d: %w", e.Index, err)
			}
			records[i] = r
		}
		return sink.Write(ctx, records)
	}
	f, err := c.NewFollower(client.FollowerOptions{StatePath: cf.state, Emit: emit, TimestampKey: tsKey})
	if err != nil {
		return err
	}
	defer f.Close()
	raise := func(err error) error {
		var a *client.AlertError
		if !errors.As(err, &a) {
			return err
		}
		rec, rerr := fmtr.Alert(&siem.Alert{Time: time.Now(), Origin: origin, Reason: a.Reason, Message: a.Err.Error(), Evidence: a.Evidence})
		if rerr == nil {
			fmt.Fprintf(env.stderr, "%s\n", rec)
			actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			sink.Write(actx, [][]byte{rec}) // best effort: the exit status is the alarm of record
			cancel()
		}
		return &proofs.Error{Reason: a.Reason, Err: fmt.Errorf("ALERT (state left untouched): %w", a.Err)}
	}

	// A witness conflict is the server's report, not a failure of what the
	// follower verified: it is delivered as an alert, durably like an
	// event, and the follower goes on (exit 0 with --once).
	witnessAlert := func(ctx context.Context, wc *client.WitnessConflict) error {
		w := wc.Witness
		rec, err := fmtr.Alert(&siem.Alert{
			Time: cmp.Or(w.LastErrorAt, time.Now()), Origin: origin, Reason: client.ReasonWitnessConflict,
			Message: fmt.Sprintf("the server reports that witness %s holds a checkpoint of this log's origin that conflicts with the log's (%s: %s); the log's latest size is %d. Either the witness was shown another history signed with the log's key (a split view: the key is in other hands, or a second log runs under this origin), or the log lost state and signed again from an older size. What this follower verified is consistent; ask the witness's operator for the checkpoint it holds",
				w.Name, w.LastErrorKind, w.LastError, wc.Size),
			Evidence: wc.Report, Witness: w.Name, WitnessURL: w.URL, WitnessErrorKind: w.LastErrorKind, WitnessError: w.LastError,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "%s\n", rec)
		return sink.Write(ctx, [][]byte{rec})
	}

	if *once {
		if _, err := f.Round(ctx); err != nil {
			return raise(err)
		}
		n, err := f.CheckWitnesses(ctx, witnessAlert)
		if err != nil {
			fmt.Fprintf(env.stderr, "warning: checking the server's witness report: %v\n", err)
		}
		st := f.State()
		if cf.json {
			return printJSON(env.stderr, map[string]any{"next": st.Next, "witness_alerts": n})
		}
		return nil
	}
	warn := func(err error) {
		if errors.Is(err, client.ErrNoFeed) {
			fmt.Fprintf(env.stderr, "warning: %s serves no checkpoint stream (a static tlog-tiles mirror): polling /checkpoint every %v; --stall-after cannot apply without the log's signed timestamps\n", cf.server, *poll)
			return
		}
		fmt.Fprintf(env.stderr, "warning: %v\n", err)
	}
	if err := f.Follow(ctx, client.FollowOptions{StallAfter: *stallAfter, Poll: *poll, Warn: warn, WitnessConflict: witnessAlert}); err != nil {
		return raise(err)
	}
	return nil
}

// logKeyText resolves --log-key to the verifier key text.
func logKeyText(spec string) (string, error) {
	if spec == "" {
		return "", usagef("--log-key is required (the log's verifier key, e.g. @warrant-data/log.vkey)")
	}
	if path, ok := strings.CutPrefix(spec, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", &proofs.Error{Reason: proofs.ReasonLogKeyUnreadable, Err: err}
		}
		return strings.TrimSpace(string(b)), nil
	}
	if err := logKeyIsPath(spec); err != nil {
		return "", err
	}
	return strings.TrimSpace(spec), nil
}

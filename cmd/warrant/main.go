// Command warrant runs a warrant ledger and is its command-line client.
//
// Conventions shared by every subcommand (see README.md):
// flags may come before or after positional arguments; with --json a command
// prints exactly one single-line JSON object on stdout, on success only;
// errors go to stderr as "error: <reason_code>: <text>"; the exit status is
// 0 on success, 1 on any refusal, denial or verification failure, and 2 on
// a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Defaults.
const (
	defaultServer = "http://127.0.0.1:8750"
	defaultListen = "127.0.0.1:8750"
	defaultData   = "./warrant-data"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cmdEnv, args []string) error
}

// cmdEnv is what a command may touch: its streams and environment, so that
// tests run commands in-process without global state.
type cmdEnv struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// client is the client flags of the command being run, if it talks to
	// a server: a failure's advice names the server (hints.go).
	client *clientFlags
	// appended, if set, is what the command sent to be appended: a failure
	// to witness it gets advice (hints.go).
	appended *appendCmd
}

func commands() []command {
	return []command{
		{"serve", "run the ledger", runServe},
		{"keygen", "generate a signing key pair", runKeygen},
		{"register", "append a key binding signed by a registrar", runRegister},
		{"delegate", "sign and append a delegation (or write the signed request)", runDelegate},
		{"approve", "add a human approver's signature to a request file", runApprove},
		{"submit", "append a (co-)signed request file", runSubmit},
		{"revoke", "append a revocation (cascades to descendants)", runRevoke},
		{"policy", "policy set: append a new Cedar policy, signed by an admin", runPolicy},
		{"checkpoint", "fetch, verify and print the latest checkpoint", runCheckpoint},
		{"get", "print an entry, inclusion verified", runGet},
		{"prove", "write a C2SP tlog-proof for an entry", runProve},
		{"trace", "fetch, verify and write the chain bundle of a delegation", runTrace},
		{"blast-radius", "everything downstream of what an agent received or issued", runBlastRadius},
		{"verify", "verify a tlog-proof or chain bundle offline", runVerify},
		{"export", "write the whole log, verified, to a file", runExport},
		{"audit", "replay the whole log (export file or server) and report", runAudit},
		{"backup", "take an online backup of a running server, verified", runBackup},
		{"restore", "rebuild a data directory from a backup and the log key, audited", runRestore},
		{"token", "exchange a delegation for a short-lived DPoP-bound access token", runToken},
		{"authz", "an Envoy external-authorization server that enforces the log's access tokens", runAuthz},
		{"rotate-token-key", "replace a stopped server's token-signing key, keeping the previous one published", runRotateTokenKey},
		{"siem", "follow the log for a SIEM: every entry once, verified, resumable", runSIEM},
		{"bench", "drive load against a running server and measure it", runBench},
		{"version", "print the version and build information", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &cmdEnv{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, env *cmdEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			return report(env.stderr, explain(ctx, env, err))
		}
	}
	fmt.Fprintf(env.stderr, "error: %s: unknown command %q (run `warrant help`)\n", proofs.ReasonUsage, args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: warrant <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w, "\nrun `warrant <command> -h` for a command's flags")
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// report prints err as "error: <reason>: <text>" and returns the exit status.
func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "error: %s: %s\n", proofs.ReasonUsage, oneLine(ue.msg))
		return exitUsage
	}
	reason, text := describe(err)
	var h hinted
	if errors.As(err, &h) {
		text += "; " + h.hint
	}
	fmt.Fprintf(w, "error: %s: %s\n", reason, oneLine(text))
	return exitFailure
}

// describe splits an error into its reason code and text.
func describe(err error) (string, string) {
	var de *client.DeniedError
	if errors.As(err, &de) {
		text := fmt.Sprintf("denied, recorded at index %d (id %s): %s", de.Entry.Index, de.Entry.ID, strings.Join(de.Reasons, ", "))
		if de.Entry.Duplicate {
			text += "; " + client.ResubmittedHint
		}
		return de.Reasons[0], text
	}
	var pe *proofs.Error
	if errors.As(err, &pe) {
		text := pe.Reason
		if pe.Err != nil {
			text = pe.Err.Error()
			var ce *connect.Error
			if errors.As(pe.Err, &ce) {
				text = ce.Message()
			}
		}
		// A reason the text begins with again is said once.
		for strings.HasPrefix(text, pe.Reason+": ") {
			text = strings.TrimPrefix(text, pe.Reason+": ")
		}
		return pe.Reason, text
	}
	if errors.Is(err, context.Canceled) {
		return proofs.ReasonCanceled, err.Error()
	}
	return proofs.ReasonFailed, err.Error()
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ") }

// parseArgs parses flags that may come before or after positional
// arguments ("--" ends flag parsing) and returns the positionals. -h prints
// the command's usage (once); a mistake is one error line, without it.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	printUsage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on every error too
	defer func() { fs.Usage = printUsage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage()
				return nil, err
			}
			return nil, flagError(fs, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if err := checkURLFlags(fs); err != nil {
		return nil, err
	}
	return pos, nil
}

// badValue is how the flag package reports a value it cannot parse.
var badValue = regexp.MustCompile(`^invalid value "(.*)" for flag -([^:]+): `)

// flagError turns a flag package error into a usage error that says what to
// type instead where it can: a duration without a unit is the usual one.
func flagError(fs *flag.FlagSet, err error) error {
	if m := badValue.FindStringSubmatch(err.Error()); m != nil {
		if f := fs.Lookup(m[2]); f != nil {
			if g, ok := f.Value.(flag.Getter); ok {
				if _, isDuration := g.Get().(time.Duration); isDuration {
					if _, numErr := strconv.ParseFloat(m[1], 64); numErr == nil {
						return usagef("--%s %s: a duration needs a unit: --%s %sm (or s, h; e.g. 90s, 1h30m)", m[2], m[1], m[2], m[1])
					}
					return usagef("--%s %q is not a duration: write a number and a unit, e.g. 10m, 90s or 1h30m", m[2], m[1])
				}
			}
		}
	}
	return usagef("%s: %v (run `warrant %s -h`)", fs.Name(), err, fs.Name())
}

// urlFlags are the flags that name a server by URL, and their environment
// variables. --server may list several (a cluster's nodes), separated by
// commas.
var urlFlags = [][2]string{{"server", "WARRANT_SERVERS or WARRANT_SERVER"}, {"ops", "WARRANT_OPS"}}

// serverDefault is --server's default: WARRANT_SERVERS (a cluster's
// nodes, comma-separated, as scripts/cluster.sh prints them), else
// WARRANT_SERVER, else the local default. The flag, given, wins over both.
func serverDefault(env *cmdEnv) string {
	return envOr(env, "WARRANT_SERVERS", envOr(env, "WARRANT_SERVER", defaultServer))
}

// checkURLFlags refuses a server URL without an http:// or https://
// scheme, from a flag or its environment variable: "127.0.0.1:8750" would
// otherwise fail later, and less clearly, as an unreachable server. Each
// URL of a list is checked.
func checkURLFlags(fs *flag.FlagSet) error {
	for _, uf := range urlFlags {
		f := fs.Lookup(uf[0])
		if f == nil || f.Value.String() == "" {
			continue
		}
		list := []string{f.Value.String()}
		if uf[0] == "server" {
			if list = client.SplitServers(f.Value.String()); len(list) == 0 {
				return usagef("--%s %q (or env %s) names no URL", uf[0], f.Value.String(), uf[1])
			}
		}
		for _, v := range list {
			if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
				continue
			}
			if strings.Contains(v, "://") {
				return usagef("--%s %q (or env %s): want an http:// or https:// URL with a host", uf[0], v, uf[1])
			}
			return usagef("--%s %q (or env %s) has no scheme: write http://%s (or https://)", uf[0], v, uf[1], v)
		}
	}
	return nil
}

// newFlagSet returns a command's flag set; -h prints its synopsis and its
// flags in aligned columns (help.go).
func newFlagSet(env *cmdEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { printCommandUsage(env.stderr, fs, synopsis) }
	return fs
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	server        string
	logKey        string
	state         string
	witnessPolicy string
	json          bool
	tls           clientTLS // --tls-ca, --tls-cert, --tls-key (tls.go)
	// stderr takes warnings (a witness policy that checks nothing);
	// warned is set once one is printed, so a command warns once.
	stderr io.Writer
	warned bool
}

func (f *clientFlags) register(fs *flag.FlagSet, env *cmdEnv) {
	env.client = f
	f.stderr = env.stderr
	fs.StringVar(&f.server, "server", serverDefault(env), "ledger URL, or the URLs of a cluster's nodes separated by commas, failed over between (env WARRANT_SERVERS, then WARRANT_SERVER)")
	fs.StringVar(&f.logKey, "log-key", env.getenv("WARRANT_LOG_KEY"), "the log's note verifier key, or @FILE (env WARRANT_LOG_KEY)")
	fs.StringVar(&f.state, "state", "", "trusted-checkpoint file (default: per origin under the user config dir)")
	registerWitnessPolicy(fs, env, &f.witnessPolicy)
	fs.BoolVar(&f.json, "json", false, "print one single-line JSON object")
	f.tls.register(fs, env)
}

// registerWitnessPolicy adds --witness-policy to fs.
func registerWitnessPolicy(fs *flag.FlagSet, env *cmdEnv, p *string) {
	fs.StringVar(p, "witness-policy", env.getenv("WARRANT_WITNESS_POLICY"), "a C2SP tlog-policy file: trust only checkpoints its witnesses' cosignatures satisfy (env WARRANT_WITNESS_POLICY)")
}

// loadWitnessPolicy reads and parses the --witness-policy file for the
// log whose verifier key is vkey; no file is no policy.
//
// A policy whose quorum is none is accepted, with a warning on warn (if
// not nil): it is valid tlog-policy, but it requires no cosignature, so
// the client trusts checkpoints on the log's signature alone, which is
// rarely what a user who names a policy means. (serve refuses such a
// policy outright: a witnessed log needs a witness.) Every client command
// treats it alike.
func loadWitnessPolicy(path, vkey string, warn io.Writer) (*proofs.WitnessPolicy, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonIOError, Err: fmt.Errorf("--witness-policy: %w", err)}
	}
	p, err := proofs.ParseWitnessPolicy(b, vkey, nil)
	if err != nil {
		return nil, fmt.Errorf("--witness-policy %s: %w", path, err)
	}
	if p.Quorum == "none" && warn != nil {
		fmt.Fprintf(warn, "warning: --witness-policy %s has quorum none: it requires no cosignature, so checkpoints are trusted on the log's signature alone (name a witness or a group as the quorum)\n", path)
	}
	return p, nil
}

// witnesses returns the client options for --witness-policy.
func (f *clientFlags) witnesses() (*proofs.WitnessPolicy, []client.Option, error) {
	if f.witnessPolicy == "" {
		return nil, nil, nil
	}
	vkey, err := logKeyText(f.logKey)
	if err != nil {
		return nil, nil, err
	}
	warn := f.stderr
	if f.warned {
		warn = nil
	}
	p, err := loadWitnessPolicy(f.witnessPolicy, vkey, warn)
	if err != nil {
		return nil, nil, err
	}
	f.warned = f.warned || p.Quorum == "none"

	return p, []client.Option{client.WithWitnessPolicy(p)}, nil
}

func envOr(env *cmdEnv, key, def string) string {
	if v := env.getenv(key); v != "" {
		return v
	}
	return def
}

// loadLogKey resolves --log-key (the key itself, or @FILE).
func loadLogKey(spec string) (note.Verifier, error) {
	text, err := logKeyText(spec)
	if err != nil {
		return nil, err
	}
	return proofs.ParseVerifierKey(text)
}

// newClient builds a client from the common flags.
func (f *clientFlags) newClient() (*client.Client, error) {
	v, err := loadLogKey(f.logKey)
	if err != nil {
		return nil, err
	}
	path := f.state
	if path == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, usagef("no --state given and no user config dir: %v", err)
		}
		path = filepath.Join(dir, "warrant", "state", safeName(v.Name())+".checkpoint")
	}
	opts, err := f.tls.options() // retries are on by default in the client
	if err != nil {
		return nil, err
	}
	_, wopts, err := f.witnesses()
	if err != nil {
		return nil, err
	}
	opts = append(opts, wopts...)
	return client.New(f.server, v, append(opts, client.WithState(client.FileState{Path: path}))...), nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// printJSON prints v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// Advice on failures. An error message should tell the user what to do
// next when the likely cause is a setup mistake (no server running, the
// wrong log key, a server started without the registrar's key), so that a
// first run does not end in a bare reason code. The reason code itself is
// never changed: scripts rely on it.

// hinted is an error with advice on what to do about it, printed after the
// error's own text.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() + "; " + h.hint }
func (h hinted) Unwrap() error { return h.err }

// explain adds advice to err where a setup mistake is the likely cause.
func explain(ctx context.Context, env *cmdEnv, err error) error {
	if err == nil {
		return nil
	}
	server := "the server"
	if env.client != nil {
		server = env.client.server
	}
	switch reason := proofs.Reason(err); {
	case unreachable(err):
		return hinted{err, fmt.Sprintf("no ledger answers at %s: point --server (env WARRANT_SERVERS or WARRANT_SERVER) at a running one, or start one with `warrant serve`", server)}
	case reason == ledger.ReasonRegistrarUnknown:
		return hinted{err, "the server accepts key bindings only from the registrar keys it was started with: restart it with `warrant serve --registrar-key PUB`, PUB being this registrar's public key"}
	case reason == proofs.ReasonWitnessUnavailable && env.appended != nil:
		return hinted{err, env.appended.unwitnessedHint(err, env.client)}
	case (reason == proofs.ReasonCheckpointSignature || reason == proofs.ReasonCheckpointOrigin) && env.client != nil && !errors.Is(err, proofs.ErrBadCosignature):
		// (A witness's bad cosignature is no sign of the wrong log key.)
		if h := env.client.servedLog(ctx); h != "" {
			return hinted{err, h}
		}
	}
	return err
}

// unreachable reports whether err is a failure to connect at all.
func unreachable(err error) bool {
	var oe *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.As(err, &oe) && oe.Op == "dial"
}

// servedLog names the log the server signs checkpoints for, read from its
// GET /checkpoint without verifying anything (it is advice for a user whose
// --log-key does not match, not a trust decision), or "" if it cannot.
func (f *clientFlags) servedLog(ctx context.Context) string {
	hc := &http.Client{Timeout: 5 * time.Second}
	if f.tls.ca != "" || f.tls.cert != "" {
		cfg, err := client.TLSConfig(f.tls.ca, f.tls.cert, f.tls.key)
		if err != nil {
			return ""
		}
		hc.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	var body []byte
	var server string
	for _, server = range client.SplitServers(f.server) {
		if body = servedCheckpoint(ctx, hc, server); body != nil {
			break
		}
	}
	if body == nil {
		return ""
	}
	_, err := note.Open(body, note.VerifierList())
	var une *note.UnverifiedNoteError
	if !errors.As(err, &une) || len(une.Note.UnverifiedSigs) == 0 {
		return ""
	}
	origin, _, _ := strings.Cut(une.Note.Text, "\n")
	var keys []string
	for _, s := range une.Note.UnverifiedSigs {
		keys = append(keys, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	given := "a key that does not sign it"
	if v, err := loadLogKey(f.logKey); err == nil {
		given = fmt.Sprintf("the key of %s+%08x", v.Name(), v.KeyHash())
	}
	return fmt.Sprintf("the server at %s signs the log %q (key %s, unverified), but --log-key (env WARRANT_LOG_KEY) is %s: use the verifier key of the log this server runs (its DATA_DIR/log.vkey, as --log-key @FILE), or point --server at the log you meant",
		server, origin, strings.Join(keys, ", "), given)
}

// servedCheckpoint is server's GET /checkpoint, unverified, or nil.
func servedCheckpoint(ctx context.Context, hc *http.Client, server string) []byte {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/checkpoint", nil)
	if err != nil {
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, proofs.MaxCheckpointBytes))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return body
}

// logKeyIsPath refuses a --log-key value that is a file name given without
// the @ that marks one, or that looks like one.
func logKeyIsPath(spec string) error {
	if _, err := proofs.ParseVerifierKey(spec); err == nil {
		return nil
	}
	s := strings.TrimSpace(spec)
	if fi, err := os.Stat(s); err == nil && !fi.IsDir() {
		return usagef("--log-key %s (or env WARRANT_LOG_KEY) is a file: write --log-key @%s (the key itself, or @FILE)", s, s)
	}
	if !strings.Contains(s, "+") { // a verifier key is NAME+HASH+KEY
		return usagef("--log-key %q (or env WARRANT_LOG_KEY) is neither a verifier key (NAME+HASH+KEY) nor @FILE: for a file, write --log-key @%s", s, s)
	}
	return nil
}

// appendCmd describes the request a command appended, for the advice on
// an entry that is committed but not (yet) witnessed.
type appendCmd struct {
	// key names the entry to `warrant get` if it is known before the
	// answer: a delegation's id.
	key string
	// file is the request file a command sent (submit): sending it again
	// is resubmitting the same envelope. Empty: the command signed a new
	// request, and running it again signs another.
	file string
	// requestOut says the command can write its signed request instead
	// of sending it (delegate --request-out).
	requestOut bool
}

// unwitnessedHint is the advice for witness_unavailable: the entry is
// committed, so the user must not run a command that signs a new request
// (a second entry; for a delegation id, a recorded id_reused denial).
func (a *appendCmd) unwitnessedHint(err error, cf *clientFlags) string {
	policy := ""
	if cf != nil && cf.witnessPolicy != "" {
		policy = " --witness-policy " + cf.witnessPolicy
	}
	key := a.key
	var ue *client.UnwitnessedError
	if errors.As(err, &ue) {
		key = ue.Key()
	}
	get := "`warrant get INDEX" + policy + "` (INDEX as above)"
	if key != "" {
		get = "`warrant get " + key + policy + "`"
	}
	proven := "with --witness-policy FILE it is proven against a witnessed checkpoint once there is one"
	if policy != "" {
		proven = "which proves it against a witnessed checkpoint once there is one"
	}
	if a.file != "" {
		return fmt.Sprintf("see it with %s (%s), or resubmit the same envelope later with `warrant submit %s`: it returns the entry with a witnessed checkpoint once there is one", get, proven, a.file)
	}
	h := ""
	if ue == nil {
		h = "this command does not keep the envelope it signed, so it cannot resubmit it: "
	}
	h += fmt.Sprintf("see the entry later with %s (%s); do not run this command again: it signs a new request, which would be a second entry", get, proven)
	if a.key != "" {
		h += " (with the same id, a recorded id_reused denial)"
	}
	if a.requestOut {
		h += "; to be able to resubmit the same envelope, write it with `warrant delegate ... --request-out FILE` and send it with `warrant submit FILE`"
	}
	return h
}

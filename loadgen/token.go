package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// ModeToken exchanges delegations for access tokens at the server's
// POST /oauth2/token (serve --tokens), the benchmark behind issue 14's
// speed target.
const ModeToken = "token"

// TokenResource is the resource the token mode's delegations name and its
// exchanges ask tokens for.
const TokenResource = "https://bench.example/api"

// tokenOp registers one human and, for each worker, an agent holding a
// root grant from that human, as independent agents would; each exchange
// is then the worker's agent trading its grant for a token over HTTP,
// with a fresh DPoP proof signed by its key, the answer's issuance entry
// verified against the log key (client.Client.ExchangeToken). An
// exchange is one operation; its latency runs from making the proof to
// holding the verified answer.
func tokenOp(ctx context.Context, cfg *Config) (func(context.Context, int) (int, uint64, error), error) {
	if cfg.Registrar == nil {
		return nil, errors.New("the token mode needs a registrar key to register its agents")
	}
	setup := client.New(cfg.Server, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient))
	run := randomSuffix()
	humanID := "spiffe://bench.example/human/grantor-" + run
	human, err := registerAgent(ctx, setup, cfg.Registrar, humanID, true)
	if err != nil {
		return nil, err
	}
	// The grants outlive the run (a root grant lives at most 8 hours).
	expires := time.Now().Add(min(cfg.Duration+30*time.Minute, 8*time.Hour-time.Minute))
	type worker struct {
		agent      *client.Signer
		delegation string
		c          *client.Client
	}
	verified := client.NewCheckpointCache(256)
	workers := make([]worker, cfg.Concurrency)
	for i := range workers {
		id := fmt.Sprintf("spiffe://bench.example/agent/exchanger-%s-%d", run, i)
		s, err := registerAgent(ctx, setup, cfg.Registrar, id, false)
		if err != nil {
			return nil, err
		}
		d := &proofs.Delegation{Issuer: humanID, Delegate: id, Task: "/bench/token", Scopes: []string{"bench:read"},
			Destinations: []string{TokenResource}, ExpiresAt: proofs.FormatTime(expires)}
		env, err := human.SignDelegation(d, time.Now())
		if err != nil {
			return nil, err
		}
		if _, err := setup.Append(ctx, env); err != nil {
			return nil, fmt.Errorf("the grant to %s: %w", id, err)
		}
		// One client per worker, as for appends: its own trusted state, the
		// checkpoint signatures checked once per process.
		workers[i] = worker{agent: s, delegation: d.ID,
			c: client.New(cfg.Server, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient), client.WithCheckpointCache(verified))}
	}
	return func(ctx context.Context, w int) (int, uint64, error) {
		wk := workers[w]
		tr, err := wk.c.ExchangeToken(ctx, wk.agent, wk.delegation, TokenResource, nil)
		if err != nil {
			return 0, 0, tokenError(err)
		}
		if tr.AccessToken == "" {
			return 0, 0, proofs.Errorf(proofs.ReasonResponseMismatch, "an accepted exchange without a token")
		}
		return 1, 0, nil
	}, nil
}

// tokenError names a refused exchange by its OAuth error, so that the
// run's errors tell invalid_dpop_proof from temporarily_unavailable:
// "token_refused/invalid_dpop_proof".
func tokenError(err error) error {
	var pe *proofs.Error
	if !errors.As(err, &pe) || pe.Reason != proofs.ReasonTokenRefused || pe.Err == nil {
		return err
	}
	code, _, _ := strings.Cut(pe.Err.Error(), ":")
	return &kindError{kind: pe.Reason + "/" + code, err: err}
}

// kindError is a failure counted under its own kind rather than its
// reason code alone.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

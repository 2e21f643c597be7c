package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// runToken is `warrant token`: exchange a delegation for an access token,
// or, as `warrant token inspect TOKEN`, check one against the log.
func runToken(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "token", "--key KEY --delegation ID --resource URI [--scope S]... [--json]\n       warrant token inspect TOKEN [--key KEY] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	keyPath := fs.String("key", "", "the delegate's private key (PEM): its key binding in force signs the DPoP proof")
	delegation := fs.String("delegation", "", "the delegation to exchange (you must be its delegate)")
	resource := fs.String("resource", "", "the one resource (a destination of the delegation) the token is for")
	var scopes stringList
	fs.Var(&scopes, "scope", "a scope to request (repeatable; default: the delegation's scopes)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "inspect" {
		i := slices.Index(args, "inspect")
		return runTokenInspect(ctx, env, append(slices.Clone(args[:i]), args[i+1:]...))
	}
	if len(pos) != 0 || *keyPath == "" || *delegation == "" || *resource == "" {
		return usagef("token needs --key, --delegation and --resource, and no arguments (or: token inspect TOKEN)")
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	tr, err := c.ExchangeToken(ctx, signer, *delegation, *resource, scopes)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(env.stdout, tr)
	}
	fmt.Fprintln(env.stdout, tr.AccessToken)
	return nil
}

// runTokenInspect is `warrant token inspect TOKEN`: the token's signature
// under a key of the server's JWKS that the log records, its issuance
// entry proven, its claims, and whether its chain is still in force (by
// introspection with --key, else from the chain's entries).
func runTokenInspect(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "token inspect", "TOKEN [--key KEY] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	keyPath := fs.String("key", "", "a registered agent's private key (PEM): ask the server's introspection endpoint, proving possession of it, whether the token is active")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("token inspect takes one argument: an access token (a JWT, header.claims.signature)")
	}
	if strings.Count(pos[0], ".") != 2 {
		return proofs.Errorf(proofs.ReasonPayloadMalformed, "the token is not a JWT (header.claims.signature, three base64url parts)")
	}
	token := pos[0]
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	ti, err := c.InspectToken(ctx, token)
	if err != nil {
		return err
	}
	now := time.Now()
	cl := ti.Claims
	expired := now.Unix() >= cl.Exp
	var source string
	var notInForce []string
	if *keyPath != "" {
		signer, err := loadSigner(*keyPath)
		if err != nil {
			return err
		}
		in, err := c.Introspect(ctx, signer, token)
		if err != nil {
			return err
		}
		source = "introspection"
		if !in.Active && !expired {
			notInForce = []string{"inactive"}
		}
	} else {
		source = "trace"
		if notInForce, err = c.ChainInForce(ctx, cl.Warrant.Delegation, cl.Warrant.DelegationIndex, now); err != nil {
			return err
		}
	}
	active := !expired && len(notInForce) == 0
	cp := ti.Issuance.Checkpoint
	// A token that verifies but is no longer in force is printed, then
	// reported as a refusal (exit 1), naming why.
	var refusal error
	switch {
	case expired:
		refusal = proofs.Errorf(proofs.ReasonTokenNotInForce, "the token has expired (at %s)", time.Unix(cl.Exp, 0).UTC().Format(time.RFC3339))
	case !active:
		refusal = proofs.Errorf(proofs.ReasonTokenNotInForce, "the token's chain is not in force: %s (from %s)", strings.Join(notInForce, ", "), source)
	}
	if cf.json {
		if err := printJSON(env.stdout, map[string]any{
			"claims": cl, "key_id": ti.KeyID, "key_entry": ti.KeyEntry, "issuance_index": ti.Issuance.Index,
			"checkpoint": cpJSON(cp), "expired": expired, "active": active, "in_force_source": source, "not_in_force": notInForce,
		}); err != nil {
			return err
		}
		return refusal
	}
	w := env.stdout
	fmt.Fprintf(w, "access token %s for %s, scope %q, client %s, subject %s\n", cl.JTI, cl.Aud, cl.Scope, cl.ClientID, cl.Sub)
	fmt.Fprintf(w, "  issued %s by %s, expires %s", time.Unix(cl.Iat, 0).UTC().Format(time.RFC3339), cl.Iss, time.Unix(cl.Exp, 0).UTC().Format(time.RFC3339))
	if expired {
		fmt.Fprint(w, " (EXPIRED)")
	}
	fmt.Fprintf(w, "\n  bound to the DPoP key %s\n", cl.Cnf.JKT)
	fmt.Fprintf(w, "  signature: verified under token key %s, recorded in log-config entry %d\n", ti.KeyID, ti.KeyEntry)
	fmt.Fprintf(w, "  issuance: entry %d (delegation %s, entry %d), verified against the checkpoint of %s at size %d\n",
		ti.Issuance.Index, cl.Warrant.Delegation, cl.Warrant.DelegationIndex, cp.Origin, cp.Size)
	switch {
	case active && source == "introspection":
		fmt.Fprintln(w, "  in force: yes (the server's introspection, from its live state)")
	case active:
		fmt.Fprintln(w, "  in force: yes as far as the chain's entries show (no link expired, no revocation listed; --key asks the server's live state)")
	case expired:
		fmt.Fprintln(w, "  in force: no, the token has expired")
	default:
		fmt.Fprintf(w, "  in force: NO (%s, from %s)\n", strings.Join(notInForce, ", "), source)
	}
	return refusal
}

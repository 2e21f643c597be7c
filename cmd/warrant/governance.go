package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/proofs"
)

func runApprove(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "approve", "--key HUMAN_KEY --approver ID FILE")
	keyPath := fs.String("key", "", "the approving human's private key (PEM)")
	approver := fs.String("approver", "", "the approving human's SPIFFE ID (registered with --human)")
	asJSON := fs.Bool("json", false, "print one single-line JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keyPath == "" || *approver == "" {
		return usagef("approve needs --key, --approver and one request FILE")
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return err
	}
	request, err := os.ReadFile(pos[0])
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	env0, err := proofs.ParseDSSE(request)
	if err != nil {
		return err
	}
	if env0.PayloadType != proofs.PayloadTypeDelegation {
		return proofs.Errorf(proofs.ReasonPayloadTypeMismatch, "%s holds a %q request, not a delegation", pos[0], env0.PayloadType)
	}
	d, err := proofs.ParseDelegation(env0.Payload)
	if err != nil {
		return err
	}
	cosigned, err := signer.Cosign(request)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(pos[0], append(cosigned, '\n'), 0o644); err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if *asJSON {
		return printJSON(env.stdout, map[string]any{"id": d.ID, "request": pos[0], "approver": *approver, "key_id": signer.KeyID()})
	}
	fmt.Fprintf(env.stdout, "%s approved delegation %s (%s -> %s, task %s) with key %s; submit it with `warrant submit %s`\n",
		*approver, d.ID, d.Issuer, d.Delegate, d.Task, signer.KeyID(), pos[0])
	return nil
}

func runSubmit(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "submit", "FILE")
	var cf clientFlags
	cf.register(fs, env)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("submit takes one request FILE")
	}
	request, err := os.ReadFile(pos[0])
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	env.appended = &appendCmd{file: pos[0]}
	if d, err := proofs.ParseDSSE(request); err == nil && d.PayloadType == proofs.PayloadTypeDelegation {
		if dl, err := proofs.ParseDelegation(d.Payload); err == nil {
			env.appended.key = dl.ID
		}
	}
	e, err := c.Append(ctx, request)
	if err != nil {
		return err
	}
	return printEntry(env, cf.json, e, fmt.Sprintf("%s from %s", e.Leaf.Kind, pos[0]))
}

func runRevoke(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "revoke", "--key KEY [--issuer ID] --id DELEGATION_ID --reason TEXT")
	var cf clientFlags
	cf.register(fs, env)
	keyPath := fs.String("key", "", "the revoker's private key (PEM): the delegation's or an ancestor's issuer, or an admin")
	issuer := fs.String("issuer", "", "the revoker's SPIFFE ID (omit when signing with an admin key)")
	id := fs.String("id", "", "the delegation to revoke (its descendants go with it)")
	reason := fs.String("reason", "", "why, for the record")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *keyPath == "" || *id == "" || *reason == "" {
		return usagef("revoke needs --key, --id and --reason, and no arguments")
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return err
	}
	envelope, err := signer.SignRevocation(&proofs.Revocation{Delegation: *id, Issuer: *issuer, Reason: *reason}, time.Now())
	if err != nil {
		return err
	}
	e, err := appendSigned(ctx, env, &cf, envelope)
	if err != nil {
		return err
	}
	return printEntry(env, cf.json, e, fmt.Sprintf("revoked %s and every delegation under it", *id))
}

func runPolicy(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "policy set", "--key ADMIN_KEY FILE.cedar")
	var cf clientFlags
	cf.register(fs, env)
	keyPath := fs.String("key", "", "an admin private key (PEM) given to serve with --admin-key")
	if len(args) == 0 || args[0] != "set" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			_, err := parseArgs(fs, args[:1]) // prints the usage
			return err
		}
		return usagef("policy takes a subcommand: warrant policy set --key ADMIN_KEY FILE.cedar")
	}
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keyPath == "" {
		return usagef("policy set needs --key and one FILE.cedar")
	}
	text, err := os.ReadFile(pos[0])
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	pol, err := proofs.ParsePolicy(text)
	if err != nil {
		return err
	}
	signer, err := loadSigner(*keyPath)
	if err != nil {
		return err
	}
	envelope, err := signer.SignPolicy(pol, time.Now())
	if err != nil {
		return err
	}
	e, err := appendSigned(ctx, env, &cf, envelope)
	if err != nil {
		return err
	}
	return printEntry(env, cf.json, e, fmt.Sprintf("policy %s in force from this entry on", pol.Digest))
}

package main

import (
	"context"
	"fmt"
)

// runToken is `warrant token`: exchange a delegation for an access token.
func runToken(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "token", "--key KEY --delegation ID --resource URI [--scope S]... [--json]")
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
	if len(pos) != 0 || *keyPath == "" || *delegation == "" || *resource == "" {
		return usagef("token needs --key, --delegation and --resource, and no arguments")
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

package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

func runKeygen(ctx context.Context, env *cmdEnv, args []string) error {
	fset := newFlagSet(env, "keygen", "--out PREFIX [--type ed25519|ecdsa-p256] | --type log --origin O --out PREFIX")
	out := fset.String("out", "", "write PREFIX.key (private, mode 0600) and PREFIX.pub (PREFIX.vkey for --type log)")
	typ := fset.String("type", "ed25519", "key type: ed25519 or ecdsa-p256 (an agent's key), or log (a log's checkpoint key)")
	origin := fset.String("origin", "", "with --type log: the log's checkpoint origin, the key's name")
	asJSON := fset.Bool("json", false, "print one single-line JSON object")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usagef("keygen needs --out PREFIX and no arguments")
	}
	if *typ == "log" {
		return keygenLog(env, *out, *origin, *asJSON)
	}
	if *origin != "" {
		return usagef("--origin goes with --type log only")
	}
	var priv crypto.Signer
	switch *typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa-p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return usagef("--type must be ed25519, ecdsa-p256 or log, got %q", *typ)
	}
	if err != nil {
		return fmt.Errorf("generating key: %w", err)
	}
	privPEM, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return fmt.Errorf("encoding public key: %w", err)
	}
	s, err := client.NewSigner(priv)
	if err != nil {
		return err
	}
	keyPath, pubPath := *out+".key", *out+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return &proofs.Error{Reason: proofs.ReasonFileExists, Err: fmt.Errorf("%s exists; refusing to overwrite a key", p)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
	}
	if err := writeNew(keyPath, privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, map[string]any{"key": keyPath, "pub": pubPath, "key_id": s.KeyID(), "type": *typ})
	}
	fmt.Fprintf(env.stdout, "wrote %s (private, 0600) and %s\nkey id %s\n", keyPath, pubPath, s.KeyID())
	return nil
}

// keygenLog writes a log's checkpoint key: PREFIX.key holds the note signing
// key in the form serve keeps as DATA_DIR/log.key, PREFIX.vkey its verifier key
// (what clients take as --log-key @FILE). A log run by several nodes (issue 17)
// signs with one key, so it is made once, here, and installed as log.key in
// every node's data directory before the node first starts.
func keygenLog(env *cmdEnv, out, origin string, asJSON bool) error {
	if origin == "" {
		return usagef("--type log needs --origin, the log's checkpoint origin (e.g. example.com/warrant)")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err == nil {
		_, err = note.NewSigner(skey) // GenerateKey lets some bad names through
	}
	if err != nil {
		return usagef("--origin %q cannot name a key (no spaces or '+'): %v", origin, err)
	}
	keyPath, vkeyPath := out+".key", out+".vkey"
	for _, p := range []string{keyPath, vkeyPath} {
		if _, err := os.Stat(p); err == nil {
			return &proofs.Error{Reason: proofs.ReasonFileExists, Err: fmt.Errorf("%s exists; refusing to overwrite a key", p)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
	}
	if err := writeNew(keyPath, []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeNew(vkeyPath, []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.stdout, map[string]any{"key": keyPath, "vkey": vkeyPath, "origin": origin, "type": "log"})
	}
	fmt.Fprintf(env.stdout, "wrote %s (private, 0600) and %s\nlog key %s\n", keyPath, vkeyPath, vkey)
	return nil
}

// writeNew creates path with perm, failing if it exists.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if err := f.Close(); err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	return nil
}

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

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

func runKeygen(ctx context.Context, env *cmdEnv, args []string) error {
	fset := newFlagSet(env, "keygen", "--out PREFIX [--type ed25519|ecdsa-p256]")
	out := fset.String("out", "", "write PREFIX.key (private, mode 0600) and PREFIX.pub")
	typ := fset.String("type", "ed25519", "key type: ed25519 or ecdsa-p256")
	asJSON := fset.Bool("json", false, "print one single-line JSON object")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usagef("keygen needs --out PREFIX and no arguments")
	}
	var priv crypto.Signer
	switch *typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa-p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return usagef("--type must be ed25519 or ecdsa-p256, got %q", *typ)
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

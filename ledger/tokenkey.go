package ledger

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/proofs"
)

// TokenKeyFile holds the key that signs the access tokens the log issues
// (ECDSA P-256, PKCS #8 PEM, mode 0600). It is not the log key: a token
// key that leaked lets its holder mint tokens, never checkpoints, and the
// two are rotated apart.
const TokenKeyFile = "token.key"

// LoadOrCreateTokenKey returns the token-signing key in dir, generating it
// on first use.
func LoadOrCreateTokenKey(dir string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(dir, TokenKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating token key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("encoding token key: %w", err)
		}
		if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("writing token key: %w", err)
		}
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("reading token key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token key %s is readable by others (mode %o): chmod 600 it", path, fi.Mode().Perm())
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("token key %s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token key %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("token key %s is not an ECDSA P-256 key", path)
	}
	return ek, nil
}

// TokenPreviousFile holds the public half of the token key before the
// current one (PEM), published in the JWKS and the log configuration so
// that tokens it signed keep verifying until they expire.
const TokenPreviousFile = "token-previous.pub"

// LoadPreviousTokenKeys returns the previous token key in dir, if any.
func LoadPreviousTokenKeys(dir string) ([]*proofs.PublicKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, TokenPreviousFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading previous token key: %w", err)
	}
	k, err := proofs.ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("previous token key %s: %w", TokenPreviousFile, err)
	}
	return []*proofs.PublicKey{k}, nil
}

// RotateTokenKey replaces the token key in dir by a new one, keeping the
// old public key as the previous one (replacing any older). The server
// must be stopped; on its next start the log configuration records both.
// A crash between the two writes leaves the current key also recorded as
// the previous one, which is harmless; rotating again finishes the job.
func RotateTokenKey(dir string) (old, cur *proofs.PublicKey, err error) {
	path := filepath.Join(dir, TokenKeyFile)
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no token key to rotate: %w", err)
	}
	k, err := LoadOrCreateTokenKey(dir)
	if err != nil {
		return nil, nil, err
	}
	if old, err = publicKeyOf(&k.PublicKey); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, TokenPreviousFile), old.PEM(), 0o644); err != nil {
		return nil, nil, fmt.Errorf("writing previous token key: %w", err)
	}
	nk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating token key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(nk)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding token key: %w", err)
	}
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, nil, fmt.Errorf("writing token key: %w", err)
	}
	cur, err = publicKeyOf(&nk.PublicKey)
	return old, cur, err
}

func publicKeyOf(k *ecdsa.PublicKey) (*proofs.PublicKey, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	return proofs.ParsePublicKeyDER(der)
}

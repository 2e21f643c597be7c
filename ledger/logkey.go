package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/internal/atomicfile"
)

// Files in the data directory.
const (
	// LogKeyFile holds the log's Ed25519 note signing key (mode 0600).
	LogKeyFile = "log.key"
	// LogVerifierKeyFile holds the matching verifier key, the one thing an
	// auditor needs to check this log.
	LogVerifierKeyFile = "log.vkey"
)

// loadOrCreateLogKey returns the log's note signer, generating the key on
// first start. The key's name is the log's origin, so an origin given on a
// later start must match it.
func loadOrCreateLogKey(dir, origin string) (note.Signer, note.Signer, string, error) {
	keyPath := filepath.Join(dir, LogKeyFile)
	skey, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if origin == "" {
			origin, err = defaultOrigin()
			if err != nil {
				return nil, nil, "", err
			}
		}
		sk, vk, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, nil, "", fmt.Errorf("generating log key for origin %q: %w", origin, err)
		}
		if err := atomicfile.WriteFile(keyPath, []byte(sk+"\n"), 0o600); err != nil {
			return nil, nil, "", fmt.Errorf("writing log key: %w", err)
		}
		skey = []byte(sk)
		_ = vk // re-derived below, for old and new keys alike
	case err != nil:
		return nil, nil, "", fmt.Errorf("reading log key: %w", err)
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, "", fmt.Errorf("log key %s is readable by others (mode %o): chmod 600 it", keyPath, fi.Mode().Perm())
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, "", fmt.Errorf("parsing log key %s: %w", keyPath, err)
	}
	if origin != "" && origin != signer.Name() {
		return nil, nil, "", fmt.Errorf("origin %q does not match this log's origin %q (the name of %s); a log's origin never changes", origin, signer.Name(), keyPath)
	}
	vkey, err := verifierKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, "", err
	}
	cosigner, err := fnote.NewSignerForCosignatureV1(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, "", fmt.Errorf("log key as a cosigner: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, LogVerifierKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, nil, "", fmt.Errorf("writing verifier key: %w", err)
	}
	return signer, cosigner, vkey, nil
}

// verifierKey derives the verifier key from a note signer key
// ("PRIVATE+KEY+name+hash+base64" -> "name+hash+base64(pub)").
func verifierKey(skey string) (string, error) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return "", errors.New("log key is not a note signer key")
	}
	name, rest, _ := strings.Cut(rest, "+")
	_, key64, ok := strings.Cut(rest, "+") // hash, then base64 (which may hold '+')
	if !ok {
		return "", errors.New("log key is not a note signer key")
	}
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("log key is not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

func defaultOrigin() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("localhost/warrant/%x", b), nil
}

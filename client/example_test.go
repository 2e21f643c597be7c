package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// Example shows the basic flow: a ledger, a client that verifies everything
// against the log's key, a registration, a delegation and its offline proof.
func Example() {
	ctx := context.Background()
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	newSigner := func() *client.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		check(err)
		s, err := client.NewSigner(k)
		check(err)
		return s
	}

	// A ledger in a temporary directory, trusting one registrar key, served
	// over HTTP (what `warrant serve` does).
	dir, err := os.MkdirTemp("", "warrant-example")
	check(err)
	defer os.RemoveAll(dir)
	registrar := newSigner()
	l, err := ledger.Open(ctx, ledger.Options{
		Dir:           dir,
		RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		Logger:        slog.New(slog.DiscardHandler),
	})
	check(err)
	defer l.Close()
	srv := httptest.NewServer(ledger.NewHandler(l))
	defer srv.Close()

	// The client needs the log's verifier key (DIR/log.vkey) and keeps the
	// last checkpoint it verified in a state file.
	logKey, err := proofs.ParseVerifierKey(l.VerifierKey())
	check(err)
	c := client.New(srv.URL, logKey, client.WithState(client.FileState{Path: filepath.Join(dir, "client", "trusted")}))

	// A fresh log describes itself: its first entries are written by the
	// log (its configuration, and anything it records with it).
	own, _, err := c.Entries(ctx, 0, 10) // verified against the checkpoint
	check(err)
	for i, leaf := range own {
		fmt.Printf("%s at index %d\n", leaf.Kind, i)
	}

	// The registrar binds two agents to their keys: alice, a human, and bob.
	alice, bob := newSigner(), newSigner()
	for _, a := range []struct {
		id    string
		key   *client.Signer
		human bool
	}{
		{"spiffe://example.org/alice", alice, true},
		{"spiffe://example.org/bob", bob, false},
	} {
		// The SDK fills in the time and a fresh nonce, and checks the
		// binding before signing it.
		env, err := registrar.SignKeyBinding(&proofs.KeyBinding{
			Agent:     a.id,
			PublicKey: a.key.Public().DER,
			Tier:      proofs.TierExecute,
			Human:     a.human,
		}, time.Now())
		check(err)
		e, err := c.Append(ctx, env)
		check(err)
		fmt.Printf("%s %s registered at index %d\n", e.Leaf.Kind, e.Leaf.KeyBinding.Agent, e.Index)
	}

	// Alice hands bob a task for fifteen minutes (a root grant: its root
	// subject is alice; the nonce and not_before are filled in).
	env, err := alice.SignDelegation(&proofs.Delegation{
		ID:        "del-example-1",
		Issuer:    "spiffe://example.org/alice",
		Delegate:  "spiffe://example.org/bob",
		Task:      "/tickets/triage",
		Scopes:    []string{"tickets:read"},
		ExpiresAt: proofs.FormatTime(time.Now().Add(15 * time.Minute)),
	}, time.Now())
	check(err)
	e, err := c.Append(ctx, env) // verified: signature, inclusion, consistency
	check(err)
	fmt.Printf("%s %s appended at index %d: %s\n", e.Leaf.Kind, e.ID, e.Index, e.Leaf.Decision.Outcome)

	// The receipt is a C2SP tlog-proof that verifies offline with the log
	// key alone.
	proof, err := e.TLogProof()
	check(err)
	v, err := proofs.VerifyTLogProof(proof, logKey)
	check(err)
	fmt.Printf("offline proof of index %d verifies\n", v.Index)

	// Output:
	// log_config at index 0
	// policy at index 1
	// key_binding spiffe://example.org/alice registered at index 2
	// key_binding spiffe://example.org/bob registered at index 3
	// delegation del-example-1 appended at index 4: accepted
	// offline proof of index 4 verifies
}

package explorertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// Agents of the test log.
const (
	alice    = "spiffe://example.org/human/alice"
	bob      = "spiffe://example.org/human/bob"
	planner  = "spiffe://example.org/agent/planner"
	executor = "spiffe://example.org/agent/executor"
	reviewer = "spiffe://example.org/agent/reviewer"
	notifier = "spiffe://example.org/agent/notifier"
	resource = "https://tickets.example/api"
)

// testLog is a real ledger on loopback holding a realistic tree:
//
//	dlg-old    alice -> planner      (root grant, accepted, expired)
//	dlg-root   alice -> planner      (root grant, accepted)
//	dlg-triage planner -> executor   (accepted; P-256 delegate; a token)
//	dlg-notify executor -> notifier  (accepted, under dlg-triage)
//	dlg-review planner -> reviewer   (accepted with bob's approval, then revoked by alice)
//	dlg-wide   planner -> executor   (denied: scope_widened, approval_required)
type testLog struct {
	l     *ledger.Log
	dir   string
	srv   *httptest.Server
	vkey  string
	c     *client.Client
	index map[string]uint64 // delegation id and "revocation", "token" -> entry index
	// tokenJTI is the access token's id.
	tokenJTI string
}

func newSigner(t testing.TB, p256 bool) *client.Signer {
	t.Helper()
	var s *client.Signer
	var err error
	if p256 {
		k, kerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if kerr != nil {
			t.Fatal(kerr)
		}
		s, err = client.NewSigner(k)
	} else {
		_, k, kerr := ed25519.GenerateKey(rand.Reader)
		if kerr != nil {
			t.Fatal(kerr)
		}
		s, err = client.NewSigner(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startLog opens a ledger with opts' CORS origins and builds the tree.
func startLog(t *testing.T, corsOrigins ...string) *testLog {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	registrar := newSigner(t, false)
	tokenKey, err := ledger.LoadOrCreateTokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The log's clock starts three hours back, so that a delegation made
	// then has expired by the time the browser looks; it then runs on from
	// the real time.
	var behind atomic.Int64
	behind.Store(int64(3 * time.Hour))
	clock := func() time.Time { return time.Now().Add(-time.Duration(behind.Load())) }
	l, err := ledger.Open(ctx, ledger.Options{
		Now:           clock,
		Dir:           dir,
		Origin:        "explorer.test/log",
		RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		TokenKey:      tokenKey,
		UICORSOrigins: corsOrigins,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(ledger.NewHandler(l))
	t.Cleanup(srv.Close)
	logKey, err := proofs.ParseVerifierKey(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{l: l, dir: dir, srv: srv, vkey: l.VerifierKey(), c: client.New(srv.URL, logKey), index: map[string]uint64{}}

	signers := map[string]*client.Signer{}
	for _, a := range []struct {
		id    string
		human bool
		p256  bool
	}{{alice, true, false}, {bob, true, false}, {planner, false, false}, {executor, false, true}, {reviewer, false, false}, {notifier, false, false}} {
		s := newSigner(t, a.p256)
		signers[a.id] = s
		env, err := registrar.SignKeyBinding(&proofs.KeyBinding{Agent: a.id, PublicKey: s.Public().DER, Tier: proofs.TierExecute, Human: a.human}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tl.c.Append(ctx, env); err != nil {
			t.Fatalf("registering %s: %v", a.id, err)
		}
	}
	now := clock()
	delegate := func(id, issuer, del, parent, task string, scopes, classes []string, life time.Duration, approver string) {
		t.Helper()
		env, err := signers[issuer].SignDelegation(&proofs.Delegation{
			ID: id, Issuer: issuer, Delegate: del, RootSubject: alice, Parent: parent, Task: task,
			Scopes: scopes, DataClasses: classes, Destinations: []string{resource},
			ExpiresAt: proofs.FormatTime(now.Add(life)), Purpose: "incident drill " + id,
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		if approver != "" {
			if env, err = signers[approver].Cosign(env); err != nil {
				t.Fatal(err)
			}
		}
		e, err := tl.c.Append(ctx, env)
		var denied *client.DeniedError
		if errors.As(err, &denied) {
			tl.index[id] = denied.Entry.Index
			return
		}
		if err != nil {
			t.Fatalf("delegation %s: %v", id, err)
		}
		tl.index[id] = e.Index
	}
	delegate("dlg-old", alice, planner, "", "/tickets/old", []string{"tickets:read"}, nil, time.Hour, "")
	behind.Store(0)
	now = clock()
	delegate("dlg-root", alice, planner, "", "/tickets", []string{"tickets:read", "tickets:write"}, []string{"confidential", "internal"}, 2*time.Hour, "")
	delegate("dlg-triage", planner, executor, "dlg-root", "/tickets/triage", []string{"tickets:read"}, []string{"internal"}, 14*time.Minute, "")
	delegate("dlg-notify", executor, notifier, "dlg-triage", "/tickets/triage/notify", []string{"tickets:read"}, nil, 10*time.Minute, "")
	delegate("dlg-review", planner, reviewer, "dlg-root", "/tickets/review", []string{"tickets:read", "tickets:write"}, []string{"confidential"}, 14*time.Minute, bob)
	delegate("dlg-wide", planner, executor, "dlg-root", "/tickets", []string{"tickets:admin"}, nil, 14*time.Minute, "")
	rev, err := signers[alice].SignRevocation(&proofs.Revocation{Delegation: "dlg-review", Issuer: alice, Reason: "reviewer compromised"}, now)
	if err != nil {
		t.Fatal(err)
	}
	re, err := tl.c.Append(ctx, rev)
	if err != nil {
		t.Fatalf("revocation: %v", err)
	}
	tl.index["revocation"] = re.Index
	tok, err := tl.c.ExchangeToken(ctx, signers[executor], "dlg-triage", resource, []string{"tickets:read"})
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	tl.index["token"] = tok.Index
	tl.tokenJTI = tok.Record.JTI
	return tl
}

// startFork opens a second log with tl's log key and origin but other
// entries (more of them than tl holds): a fork, every checkpoint of which
// carries a valid signature by the same key.
func startFork(t *testing.T, tl *testLog) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	key, err := os.ReadFile(filepath.Join(tl.dir, ledger.LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ledger.LogKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	registrar := newSigner(t, false)
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Origin: "explorer.test/log", RegistrarKeys: []*proofs.PublicKey{registrar.Public()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("opening the fork: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if l.VerifierKey() != tl.vkey {
		t.Fatalf("the fork has key %s, not %s", l.VerifierKey(), tl.vkey)
	}
	srv := httptest.NewServer(ledger.NewHandler(l))
	t.Cleanup(srv.Close)
	logKey, err := proofs.ParseVerifierKey(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(srv.URL, logKey)
	for i := 0; uint64(i) < tl.l.Checkpoint().Size+5; i++ {
		env, err := registrar.SignKeyBinding(&proofs.KeyBinding{Agent: fmt.Sprintf("spiffe://example.org/agent/fork-%d", i), PublicKey: newSigner(t, false).Public().DER, Tier: proofs.TierDraft}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Append(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

func itoa(i uint64) string { return fmt.Sprint(i) }

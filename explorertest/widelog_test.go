package explorertest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// wideLog is a real ledger on loopback holding wide delegation trees: for
// each tree, a root grant alice -> hub, the hub handing each of agents
// agents a task, and each agent handing perAgent tasks on to the next.
type wideLog struct {
	l   *ledger.Log
	srv *httptest.Server
}

const hub = "spiffe://example.org/agent/hub"

func wideAgent(i int) string { return fmt.Sprintf("spiffe://example.org/agent/w%02d", i) }

// newWideLog builds one tree per entry of roots (its root grant's id), each
// of agents*perAgent+agents+1 delegations.
func newWideLog(t testing.TB, agents, perAgent int, roots ...string) *wideLog {
	t.Helper()
	ctx := context.Background()
	registrar := newSigner(t, false)
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir(), Origin: "explorer.test/wide", RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		AgentRate: -1, AgentByteRate: -1, Logger: slog.New(slog.DiscardHandler)})
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
	c := client.New(srv.URL, logKey)
	batch := func(envs [][]byte) {
		t.Helper()
		res, err := c.AppendBatch(ctx, envs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil || r.Denied {
				if r.Denied {
					t.Fatalf("envelope %d denied: %v", i, r.Entry.Leaf.Decision.Reasons)
				}
				t.Fatalf("envelope %d: %v", i, r.Err)
			}
		}
	}
	signers := map[string]*client.Signer{}
	var envs [][]byte
	for i := -2; i < agents; i++ {
		name, human := wideAgent(i), false
		switch i {
		case -2:
			name, human = alice, true
		case -1:
			name = hub
		}
		s := newSigner(t, false)
		signers[name] = s
		env, err := registrar.SignKeyBinding(&proofs.KeyBinding{Agent: name, PublicKey: s.Public().DER, Tier: proofs.TierExecute, Human: human}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	batch(envs)
	now := time.Now()
	sign := func(id, issuer, delegate, parent string, life time.Duration) []byte {
		env, err := signers[issuer].SignDelegation(&proofs.Delegation{ID: id, Issuer: issuer, Delegate: delegate, RootSubject: alice, Parent: parent,
			Task: "/ops", Scopes: []string{"ops:read"}, Destinations: []string{resource}, ExpiresAt: proofs.FormatTime(now.Add(life))}, now)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	// A batch's delegations are decided against the log before it: each
	// level in its own batches.
	for _, root := range roots {
		batch([][]byte{sign(root, alice, hub, "", 2*time.Hour)})
		envs = nil
		for i := 0; i < agents; i++ {
			envs = append(envs, sign(fmt.Sprintf("%s-%d", root, i), hub, wideAgent(i), root, 14*time.Minute))
		}
		batch(envs)
		envs = nil
		for i := 0; i < agents; i++ {
			for j := 0; j < perAgent; j++ {
				envs = append(envs, sign(fmt.Sprintf("%s-%d-%d", root, i, j), wideAgent(i), wideAgent((i+1)%agents), fmt.Sprintf("%s-%d", root, i), 13*time.Minute))
				if len(envs) == 240 {
					batch(envs)
					envs = nil
				}
			}
		}
		if len(envs) > 0 {
			batch(envs)
		}
	}
	return &wideLog{l: l, srv: srv}
}

package explorertest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// TestBlastRadius500 draws the blast radius of a root grant with 500
// delegations under it (a hub hands 20 agents a task each, and each hands
// 24 tasks on), every node
// verified in the browser. It logs how long fetching, verifying and drawing
// took, and asserts no time: the machine is shared.
func TestBlastRadius500(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 500-delegation tree")
	}
	ctx := context.Background()
	registrar := newSigner(t, false)
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir(), Origin: "explorer.test/wide", RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		AgentRate: -1, AgentByteRate: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(ledger.NewHandler(l))
	defer srv.Close()
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
	const agents, perAgent = 20, 24
	signers := map[string]*client.Signer{}
	var envs [][]byte
	id := func(i int) string { return fmt.Sprintf("spiffe://example.org/agent/w%02d", i) }
	const hub = "spiffe://example.org/agent/hub"
	for i := -2; i < agents; i++ {
		name, human := id(i), false
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
	batch([][]byte{sign("w-root", alice, hub, "", 2*time.Hour)})
	envs = nil
	for i := 0; i < agents; i++ {
		envs = append(envs, sign(fmt.Sprintf("w-%d", i), hub, id(i), "w-root", 14*time.Minute))
	}
	batch(envs)
	envs = nil
	for i := 0; i < agents; i++ {
		for j := 0; j < perAgent; j++ {
			envs = append(envs, sign(fmt.Sprintf("w-%d-%d", i, j), id(i), id((i+1)%agents), fmt.Sprintf("w-%d", i), 13*time.Minute))
			if len(envs) == 240 {
				batch(envs)
				envs = nil
			}
		}
	}
	if len(envs) > 0 {
		batch(envs)
	}

	b := newBrowser(t)
	b.open(srv.URL + "/ui/blast-radius?delegation=w-root#logkey=" + url.QueryEscape(l.VerifierKey()))
	want := 1 + agents + agents*perAgent
	if n := b.count(`#graph a.node[data-verified="true"]`); n != want {
		t.Errorf("%d verified nodes drawn, want %d", n, want)
	}
	if n := b.count(`[data-verified="false"]`); n != 0 {
		t.Errorf("%d facts failed", n)
	}
	t.Logf("%d nodes: fetched, verified and drawn in %s ms; drawn (layout and SVG) in %s ms",
		want, eval[string](b, `document.querySelector(".page").dataset.renderMs`), eval[string](b, `document.querySelector(".page").dataset.drawMs`))
	b.screenshot("blast-radius-500")
	b.checkClean(srv.URL)
}

package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// stoppedURL is the URL of a loopback server that has stopped: nothing
// listens there any more.
func stoppedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// counting serves h and counts the requests for path.
func counting(t *testing.T, h http.Handler, path string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	return srv, &n
}

// TestFailoverStoppedServer: a client given two servers of one log keeps
// working when the one it used stops, within one attempt (no retries), for
// appends and reads alike, with one trusted state.
func TestFailoverStoppedServer(t *testing.T) {
	e := openLog(t, envOptions{})
	a := httptest.NewServer(ledger.NewHandler(e.log))
	defer a.Close()
	b := e.serve(t)
	st := &client.MemoryState{}
	c := client.New(a.URL+","+b+"/", e.verifier, client.WithState(st), client.WithRetry(1, 0))
	ctx := context.Background()
	first := mustAppend(t, c, e.bindingEnvelope(t, newAgent(t, "a", false), false))

	a.Close()
	second, err := c.Append(ctx, e.bindingEnvelope(t, newAgent(t, "b", false), false))
	if err != nil {
		t.Fatalf("append after the first server stopped: %v", err)
	}
	if second.Index != first.Index+1 {
		t.Fatalf("second entry at %d, want %d", second.Index, first.Index+1)
	}
	if got, err := c.Entry(ctx, first.Index); err != nil || got.ID != first.ID {
		t.Fatalf("read after failover: %v %v", got, err)
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("checkpoint after failover: %v", err)
	}
	trusted, _ := c.Trusted()
	if trusted == nil || trusted.Size != cp.Size || cp.Size != second.Index+1 {
		t.Fatalf("trusted %v, checkpoint size %d; want one trusted state at %d", trusted, cp.Size, second.Index+1)
	}

	// A list whose first server never answered works from the start.
	c2 := client.New(stoppedURL(t)+","+b, e.verifier, client.WithRetry(1, 0))
	if _, err := c2.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint with the first server down: %v", err)
	}
	// When none answers, the error is a transport failure naming them.
	down1, down2 := stoppedURL(t), stoppedURL(t)
	c3 := client.New(down1+","+down2, e.verifier, client.WithRetry(1, 0))
	_, err = c3.Checkpoint(ctx)
	if proofs.Reason(err) != proofs.ReasonUnavailable {
		t.Fatalf("no server up: %v, want reason %s", err, proofs.ReasonUnavailable)
	}
}

// TestFailoverOtherLogRefused: a server of another log in the list is not
// silently used: its checkpoints do not verify under the log key, the
// client says so, and the trusted state is left as it was.
func TestFailoverOtherLogRefused(t *testing.T) {
	e := openLog(t, envOptions{})
	other := openLog(t, envOptions{registrar: e.registrar})
	a := httptest.NewServer(ledger.NewHandler(e.log))
	defer a.Close()
	c := client.New(a.URL+","+other.serve(t), e.verifier, client.WithRetry(1, 0))
	mustAppend(t, c, e.bindingEnvelope(t, newAgent(t, "a", false), false))
	before, _ := c.Trusted()

	a.Close()
	_, err := c.Checkpoint(context.Background())
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	_, err = c.Append(context.Background(), e.bindingEnvelope(t, newAgent(t, "b", false), false))
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	if after, _ := c.Trusted(); after == nil || after.Size != before.Size || string(after.Note) != string(before.Note) {
		t.Fatalf("the trusted state moved: %v -> %v", before, after)
	}
}

// TestFailoverSplitBrain: two nodes that sign with the log's key but hold
// different histories (a split brain) are caught as a fork when the client
// fails over from one to the other, because the trusted state is the log's,
// not a server's.
func TestFailoverSplitBrain(t *testing.T) {
	reg := newEd25519(t)
	base := time.Now().Truncate(time.Second)
	x := openLog(t, envOptions{origin: "split.example/log", registrar: reg, clock: stepClock(base)})
	y := openLog(t, envOptions{origin: "split.example/log", registrar: reg, clock: stepClock(base), logKeyFrom: x.dir})
	xs := httptest.NewServer(ledger.NewHandler(x.log))
	defer xs.Close()
	c := client.New(xs.URL+","+y.serve(t), x.verifier, client.WithRetry(1, 0))
	mustAppend(t, c, x.bindingEnvelope(t, newAgent(t, "a", false), false))
	// y sequences another entry at the same index.
	cy := client.New(y.serve(t), y.verifier, client.WithState(&client.MemoryState{}))
	mustAppend(t, cy, y.bindingEnvelope(t, newAgent(t, "b", false), false))

	xs.Close()
	_, err := c.Checkpoint(context.Background())
	wantReason(t, err, proofs.ReasonForkDetected)
	if !errors.Is(err, client.ErrFork) {
		t.Fatalf("%v is not ErrFork", err)
	}
}

// TestFailoverFollowsLeader: a refusal naming the leader (Warrant-Leader,
// as a follower that cannot forward answers) sends the request to that
// server next, before the others, and the next request goes to it first.
func TestFailoverFollowsLeader(t *testing.T) {
	e := openLog(t, envOptions{})
	leader, leaderHits := counting(t, ledger.NewHandler(e.log), warrantv1connect.LedgerServiceAppendProcedure)
	other, otherHits := counting(t, ledger.NewHandler(e.log), warrantv1connect.LedgerServiceAppendProcedure)
	real := ledger.NewHandler(e.log)
	refuser, refuserHits := counting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" { // a node of the log, as every node serves it
			real.ServeHTTP(w, r)
			return
		}
		w.Header().Set(client.LeaderHeader, leader.URL)
		cerr := connect.NewError(connect.CodeUnavailable, errors.New("this node does not lead"))
		if d, err := connect.NewErrorDetail(&warrantv1.ErrorDetail{Reason: proofs.ReasonNotLeader}); err == nil {
			cerr.AddDetail(d)
		}
		connect.NewErrorWriter().Write(w, r, cerr)
	}), warrantv1connect.LedgerServiceAppendProcedure)

	c := client.New(refuser.URL+","+other.URL+","+leader.URL, e.verifier, client.WithRetry(1, 0))
	mustAppend(t, c, e.bindingEnvelope(t, newAgent(t, "a", false), false))
	mustAppend(t, c, e.bindingEnvelope(t, newAgent(t, "b", false), false))
	if refuserHits.Load() != 1 || otherHits.Load() != 0 || leaderHits.Load() != 2 {
		t.Fatalf("appends at the refuser %d, the other %d, the leader %d; want 1, 0, 2", refuserHits.Load(), otherHits.Load(), leaderHits.Load())
	}
}

// TestFailoverWitnessUnavailable: an append answered witness_unavailable
// (the server already waited its witness timeout) is not sent to the next
// server; a read answered Unavailable is.
func TestFailoverWitnessUnavailable(t *testing.T) {
	e := openLog(t, envOptions{})
	next, nextHits := counting(t, ledger.NewHandler(e.log), warrantv1connect.LedgerServiceAppendProcedure)
	real := ledger.NewHandler(e.log)
	witnessDown := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" { // a node of the log, as every node serves it
			real.ServeHTTP(w, r)
			return
		}
		cerr := connect.NewError(connect.CodeUnavailable, errors.New("no witnessed checkpoint in time"))
		if d, err := connect.NewErrorDetail(&warrantv1.ErrorDetail{Reason: proofs.ReasonWitnessUnavailable}); err == nil {
			cerr.AddDetail(d)
		}
		connect.NewErrorWriter().Write(w, r, cerr)
	}))
	c := client.New(witnessDown.URL+","+next.URL, e.verifier, client.WithRetry(1, 0))
	_, err := c.Append(context.Background(), e.bindingEnvelope(t, newAgent(t, "a", false), false))
	wantReason(t, err, proofs.ReasonWitnessUnavailable)
	if nextHits.Load() != 0 {
		t.Fatal("an append answered witness_unavailable was sent to the next server")
	}
	if _, err := c.Checkpoint(context.Background()); err != nil {
		t.Fatalf("a read refused Unavailable did not fail over: %v", err)
	}
}

// TestFailoverTokens: the token endpoint, the JWKS and introspection fail
// over too, each DPoP proof made for the URL it is sent to.
func TestFailoverTokens(t *testing.T) {
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e := openLog(t, envOptions{tokenKey: tokenKey})
	real := e.serve(t)
	c := client.New(stoppedURL(t)+","+real, e.verifier, client.WithRetry(1, 0))
	ctx := context.Background()
	alice, planner := newAgent(t, "human/alice", false), newAgent(t, "agent/planner", true)
	mustAppend(t, c, e.bindingEnvelope(t, alice, true))
	mustAppend(t, c, e.bindingEnvelope(t, planner, false))
	const api = "https://tickets.example/api"
	d := e.rootGrant(t, "dlg_failover", alice, planner)
	d.Destinations = []string{api}
	mustAppend(t, c, sign(t, alice, d))
	tr, err := c.ExchangeToken(ctx, planner.signer, d.ID, api, []string{"tickets:read"})
	if err != nil {
		t.Fatalf("token exchange with the first server down: %v", err)
	}
	// A fresh client starts from the first server again. (The issuer is
	// the server's URL: the token is checked where it was issued.)
	c = client.New(stoppedURL(t)+","+real, e.verifier, client.WithRetry(1, 0))
	if _, err := c.InspectToken(ctx, tr.AccessToken); err != nil {
		t.Fatalf("token inspection (JWKS) with the first server down: %v", err)
	}
	c = client.New(stoppedURL(t)+","+real, e.verifier, client.WithRetry(1, 0))
	if in, err := c.Introspect(ctx, alice.signer, tr.AccessToken); err != nil || !in.Active {
		t.Fatalf("introspection with the first server down: %+v %v", in, err)
	}
}

func TestSplitServers(t *testing.T) {
	got := client.SplitServers(" https://a:1/ ,, https://b:2,https://c:3/x/ ")
	want := []string{"https://a:1", "https://b:2", "https://c:3/x"}
	if len(got) != len(want) {
		t.Fatalf("%q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}

// TestFailoverOtherLogNotTrusted: a server of another log first in the list
// is not asked anything before its checkpoint has verified under the log
// key, so its word, a not_found above all, is never taken for the log's:
// the request goes to the next server, which serves the log. Each server's
// checkpoint is fetched once, not before every request. When no server
// serves the log, the error says so (checkpoint_signature_invalid).
func TestFailoverOtherLogNotTrusted(t *testing.T) {
	e := openLog(t, envOptions{})
	other := openLog(t, envOptions{registrar: e.registrar})
	ctx := context.Background()
	alice, planner := newAgent(t, "human/alice", false), newAgent(t, "agent/planner", true)
	single := client.New(e.serve(t), e.verifier)
	mustAppend(t, single, e.bindingEnvelope(t, alice, true))
	mustAppend(t, single, e.bindingEnvelope(t, planner, false))
	d := e.rootGrant(t, "dlg_other_log", alice, planner)
	mustAppend(t, single, sign(t, alice, d))

	foreign, foreignHits := counting(t, ledger.NewHandler(other.log), warrantv1connect.LedgerServiceGetEntryProcedure)
	good, goodChecks := counting(t, ledger.NewHandler(e.log), "/checkpoint")
	c := client.New(foreign.URL+","+good.URL, e.verifier, client.WithRetry(1, 0))
	got, err := c.Delegation(ctx, d.ID)
	if err != nil {
		t.Fatalf("get %s with a server of another log first: %v", d.ID, err)
	}
	if got.ID != d.ID {
		t.Fatalf("got %s, want %s", got.ID, d.ID)
	}
	// A negative answer comes from the log's server too.
	_, err = c.Delegation(ctx, "dlg_absent")
	wantReason(t, err, proofs.ReasonNotFound)
	if _, err := c.Entry(ctx, 0); err != nil {
		t.Fatalf("entry 0: %v", err)
	}
	if n := foreignHits.Load(); n != 0 {
		t.Fatalf("the server of another log was asked %d GetEntry requests, want none", n)
	}
	if n := goodChecks.Load(); n != 1 {
		t.Fatalf("the log's server was asked its checkpoint %d times for three requests, want once", n)
	}

	// No server of the log in the list: the error says so.
	c2 := client.New(foreign.URL+","+other.serve(t), e.verifier, client.WithRetry(1, 0))
	_, err = c2.Delegation(ctx, d.ID)
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	_, err = c2.Delegation(ctx, "dlg_absent")
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	if n := foreignHits.Load(); n != 0 {
		t.Fatalf("the server of another log was asked %d GetEntry requests, want none", n)
	}
}

// TestOneServerOfAnotherLog: a client given one server takes no negative
// answer from it before its checkpoint verified under the log key: a
// server of another log answers not_found, and the client reports
// checkpoint_signature_invalid instead. The server of the log is asked its
// checkpoint once, at its first negative answer, and a client that gets
// only positive answers is not asked to pay for the check.
func TestOneServerOfAnotherLog(t *testing.T) {
	e := openLog(t, envOptions{})
	other := openLog(t, envOptions{registrar: e.registrar})
	ctx := context.Background()
	c := client.New(other.serve(t), e.verifier, client.WithRetry(1, 0))
	_, err := c.Delegation(ctx, "dlg_absent")
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	_, err = c.Entry(ctx, 1000)
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	// An empty page is a negative answer too, though not by its status.
	c = client.New(other.serve(t), e.verifier, client.WithRetry(1, 0))
	_, _, err = c.AgentEntries(ctx, "spiffe://example.org/agent/absent", 0, 10)
	wantReason(t, err, proofs.ReasonCheckpointSignature)
	_, _, err = c.Children(ctx, "dlg_absent", 0, 10)
	wantReason(t, err, proofs.ReasonCheckpointSignature)

	good, checks := counting(t, ledger.NewHandler(e.log), "/checkpoint")
	c = client.New(good.URL, e.verifier, client.WithRetry(1, 0))
	mustAppend(t, c, e.bindingEnvelope(t, newAgent(t, "a", false), false))
	if _, err := c.Entry(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if n := checks.Load(); n != 0 {
		t.Fatalf("positive answers cost %d checkpoint fetches, want none", n)
	}
	for range 3 {
		_, err = c.Delegation(ctx, "dlg_absent")
		wantReason(t, err, proofs.ReasonNotFound)
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("three negative answers cost %d checkpoint fetches, want one", n)
	}
}

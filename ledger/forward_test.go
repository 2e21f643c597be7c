package ledger

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/testpki"
	"github.com/warrantlog/warrant/proofs"
)

// forwardNode is a node of a test cluster: a real log over Badger served
// on loopback, behind Forward with the leader function a test sets.
type forwardNode struct {
	log    *Log
	srv    *httptest.Server
	leader atomic.Pointer[func() (string, bool)]
	hits   atomic.Int64 // the writes that reached this node's handler
}

// newForwardNode opens a log in a fresh directory (signing with the log key
// in keyDir, if not ""), and serves it behind Forward.
func newForwardNode(t *testing.T, registrar *testKey, keyDir string) *forwardNode {
	t.Helper()
	dir := t.TempDir()
	if keyDir != "" {
		b, err := os.ReadFile(filepath.Join(keyDir, LogKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, LogKeyFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n := &forwardNode{log: openTestLog(t, dir, registrar, nil)}
	t.Cleanup(func() { n.log.Close() })
	self := func() (string, bool) { return "", true }
	n.leader.Store(&self)
	inner := NewHandler(n.log)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsForwardedWrite(r.URL.Path) {
			n.hits.Add(1)
		}
		inner.ServeHTTP(w, r)
	})
	n.srv = httptest.NewServer(Forward(counted, ForwardConfig{
		Leader: func() (string, bool) { return (*n.leader.Load())() },
		Logger: quietLogger(),
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *forwardNode) setLeader(url string, self bool) {
	f := func() (string, bool) { return url, self }
	n.leader.Store(&f)
}

func (n *forwardNode) verifier(t *testing.T) note.Verifier {
	v, err := note.NewVerifier(n.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestForwardAppendToLeader: an append sent to a follower is appended by
// the leader, and the receipt the follower relays verifies in the client;
// the follower's own log is untouched. So is a batch.
func TestForwardAppendToLeader(t *testing.T) {
	reg := newTestKey(t)
	leader := newForwardNode(t, reg, "")
	follower := newForwardNode(t, reg, leader.log.opts.Dir)
	follower.setLeader(leader.srv.URL, false)

	base, fbase := leader.log.Checkpoint().Size, follower.log.Checkpoint().Size // the log-config entries
	c := client.New(follower.srv.URL, leader.verifier(t))
	e, err := c.Append(context.Background(), bindingEnvelope(t, reg, "spiffe://example.org/a", newTestKey(t), proofs.TierExecute, false))
	if err != nil {
		t.Fatalf("append through the follower: %v", err)
	}
	if e.Index != base || leader.log.Checkpoint().Size != base+1 || follower.log.Checkpoint().Size != fbase {
		t.Fatalf("entry %d; leader size %d, follower size %d; want the entry at %d on the leader alone", e.Index, leader.log.Checkpoint().Size, follower.log.Checkpoint().Size, base)
	}
	res, err := c.AppendBatch(context.Background(), [][]byte{
		bindingEnvelope(t, reg, "spiffe://example.org/b", newTestKey(t), proofs.TierExecute, false),
		bindingEnvelope(t, reg, "spiffe://example.org/c", newTestKey(t), proofs.TierExecute, false),
	})
	if err != nil {
		t.Fatalf("batch through the follower: %v", err)
	}
	for i, r := range res {
		if r.Entry == nil || r.Err != nil {
			t.Fatalf("batch answer %d: %+v", i, r)
		}
	}
	if got := leader.log.Checkpoint().Size; got != base+3 {
		t.Fatalf("leader size %d after the batch, want %d", got, base+3)
	}
	if follower.hits.Load() != 0 || leader.hits.Load() != 2 {
		t.Fatalf("writes handled: follower %d, leader %d; want 0 and 2", follower.hits.Load(), leader.hits.Load())
	}
}

// TestForwardLeaderDown: a follower whose leader does not answer refuses
// the write with not_leader, Unavailable, naming the leader; with no
// leader at all, no_leader. Nothing is appended anywhere, and reads are
// still the follower's own.
func TestForwardLeaderDown(t *testing.T) {
	reg := newTestKey(t)
	leader := newForwardNode(t, reg, "")
	follower := newForwardNode(t, reg, leader.log.opts.Dir)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	follower.setLeader(downURL, false)

	base, fbase := leader.log.Checkpoint().Size, follower.log.Checkpoint().Size
	env := bindingEnvelope(t, reg, "spiffe://example.org/a", newTestKey(t), proofs.TierExecute, false)
	rpc := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, follower.srv.URL)
	_, err := rpc.Append(context.Background(), connect.NewRequest(&warrantv1.AppendRequest{Envelope: env}))
	wantRefusal(t, err, connect.CodeUnavailable, proofs.ReasonNotLeader, downURL)

	follower.setLeader("", false)
	_, err = rpc.Append(context.Background(), connect.NewRequest(&warrantv1.AppendRequest{Envelope: env}))
	wantRefusal(t, err, connect.CodeUnavailable, proofs.ReasonNoLeader, "")

	// The SDK reports the reason, and retries it (Unavailable) before
	// giving up.
	c := client.New(follower.srv.URL, leader.verifier(t), client.WithRetry(2, 0))
	_, err = c.Append(context.Background(), env)
	if proofs.Reason(err) != proofs.ReasonNoLeader {
		t.Fatalf("client append with no leader: %v, want reason %s", err, proofs.ReasonNoLeader)
	}
	if leader.log.Checkpoint().Size != base || follower.log.Checkpoint().Size != fbase {
		t.Fatal("a refused write was appended")
	}
	// Reads are answered by the follower itself.
	if _, err := rpc.GetCheckpoint(context.Background(), connect.NewRequest(&warrantv1.GetCheckpointRequest{})); err != nil {
		t.Fatalf("a read on a follower without a leader: %v", err)
	}
	// The token endpoint refuses in OAuth's terms.
	resp, err := http.Post(follower.srv.URL+TokenEndpointPath, "application/x-www-form-urlencoded", strings.NewReader("grant_type=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("token endpoint with no leader: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
}

// TestForwardLoop: two nodes that each believe the other leads bounce a
// write once, not forever: the second refuses a forwarded request with
// no_leader (the nodes agree on none) instead of forwarding it back.
func TestForwardLoop(t *testing.T) {
	reg := newTestKey(t)
	a := newForwardNode(t, reg, "")
	b := newForwardNode(t, reg, a.log.opts.Dir)
	var aIn, bIn atomic.Int64
	countIn := func(n *forwardNode, in *atomic.Int64) {
		h := n.srv.Config.Handler
		n.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in.Add(1)
			h.ServeHTTP(w, r)
		})
	}
	countIn(a, &aIn)
	countIn(b, &bIn)
	a.setLeader(b.srv.URL, false)
	b.setLeader(a.srv.URL, false)

	rpc := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, a.srv.URL)
	_, err := rpc.Append(context.Background(), connect.NewRequest(&warrantv1.AppendRequest{Envelope: bindingEnvelope(t, reg, "spiffe://example.org/a", newTestKey(t), proofs.TierExecute, false)}))
	wantRefusal(t, err, connect.CodeUnavailable, proofs.ReasonNoLeader, "")
	if aIn.Load() != 1 || bIn.Load() != 1 || a.hits.Load()+b.hits.Load() != 0 {
		t.Fatalf("requests: a %d, b %d, handled %d; want one each and none handled", aIn.Load(), bIn.Load(), a.hits.Load()+b.hits.Load())
	}
}

// TestForwardClientFailover: a client given the nodes of a cluster gets
// its append to the leader through refusals: a node that knows no leader
// (no_leader), and two nodes that each believe the other leads (each
// refusing what the other forwards, naming the other), until it reaches
// the one that leads. The receipt verifies, with one trusted state.
func TestForwardClientFailover(t *testing.T) {
	reg := newTestKey(t)
	leader := newForwardNode(t, reg, "")
	lost := newForwardNode(t, reg, leader.log.opts.Dir)
	a := newForwardNode(t, reg, leader.log.opts.Dir)
	b := newForwardNode(t, reg, leader.log.opts.Dir)
	lost.setLeader("", false)
	a.setLeader(b.srv.URL, false)
	b.setLeader(a.srv.URL, false)

	base := leader.log.Checkpoint().Size
	c := client.New(strings.Join([]string{lost.srv.URL, a.srv.URL, b.srv.URL, leader.srv.URL}, ","), leader.verifier(t), client.WithRetry(1, 0))
	e, err := c.Append(context.Background(), bindingEnvelope(t, reg, "spiffe://example.org/a", newTestKey(t), proofs.TierExecute, false))
	if err != nil {
		t.Fatalf("append through the cluster: %v", err)
	}
	if e.Index != base || leader.log.Checkpoint().Size != base+1 {
		t.Fatalf("entry %d, leader size %d; want %d, %d", e.Index, leader.log.Checkpoint().Size, base, base+1)
	}
	if n := lost.hits.Load() + a.hits.Load() + b.hits.Load(); n != 0 {
		t.Fatalf("%d writes handled by nodes that do not lead", n)
	}
}

// TestForwardMutualTLS: a follower does not forward a request that came
// with a client certificate (the leader would check the follower's
// identity instead of the agent's): it refuses it with not_leader naming
// the leader, and a client given both nodes sends it there itself.
func TestForwardMutualTLS(t *testing.T) {
	reg := newTestKey(t)
	leader := newForwardNode(t, reg, "")
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(leader.log.opts.Dir, LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, LogKeyFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	flog := openTestLog(t, dir, reg, nil)
	defer flog.Close()
	var forwarded atomic.Int64
	ca := testpki.NewCA(t, "test CA")
	follower := httptest.NewUnstartedServer(Forward(PeerIdentityFromTLS(NewHandler(flog)), ForwardConfig{
		Leader:    func() (string, bool) { return leader.srv.URL, false },
		Transport: forwardCounter{&forwarded},
		Logger:    quietLogger(),
	}))
	follower.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	follower.Config.ErrorLog = log.New(io.Discard, "", 0)
	follower.StartTLS()
	defer follower.Close()
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.SVID(t, "spiffe://example.org/registrar").TLS}}
	env := bindingEnvelope(t, reg, "spiffe://example.org/a", newTestKey(t), proofs.TierExecute, false)

	_, err = client.New(follower.URL, leader.verifier(t), client.WithTLS(cfg), client.WithRetry(1, 0)).Append(context.Background(), env)
	if proofs.Reason(err) != proofs.ReasonNotLeader || !strings.Contains(err.Error(), leader.srv.URL) {
		t.Fatalf("an append with a client certificate at a follower: %v, want not_leader naming %s", err, leader.srv.URL)
	}
	if forwarded.Load() != 0 {
		t.Fatal("a request with a client certificate was forwarded")
	}
	c := client.New(follower.URL+","+leader.srv.URL, leader.verifier(t), client.WithTLS(cfg), client.WithRetry(1, 0))
	if _, err := c.Append(context.Background(), env); err != nil {
		t.Fatalf("the client did not go to the leader it was given: %v", err)
	}
}

// TestForwardTokenExchange: a token exchange posted to a follower is
// recorded and answered by the leader, the DPoP proof checked against the
// URL the client posted to (the leader derives its issuer from the Host
// the follower keeps), and the SDK verifies the issuance entry.
func TestForwardTokenExchange(t *testing.T) {
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.TokenKey = tokenKey })
	leader := httptest.NewServer(NewHandler(f.log))
	defer leader.Close()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(f.dir, LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, LogKeyFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	flog := openTestLog(t, dir, f.registrar, nil)
	defer flog.Close()
	follower := httptest.NewServer(Forward(NewHandler(flog), ForwardConfig{
		Leader: func() (string, bool) { return leader.URL, false },
		Logger: quietLogger(),
	}))
	defer follower.Close()

	now := time.Now()
	root := &proofs.Delegation{ID: "d-fwd", Issuer: humanID, Delegate: agentID, RootSubject: humanID, Task: "/tickets",
		Scopes: []string{"tickets:read"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(now.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(now.Add(time.Hour)), Nonce: "nonce-fwd-1"}
	if a, err := f.log.Append(context.Background(), signDelegation(t, f.human, root)); err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("delegation: %v", err)
	}
	v, err := note.NewVerifier(f.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	size := f.log.Checkpoint().Size
	tr, err := client.New(follower.URL, v).ExchangeToken(context.Background(), f.agent.signer, "d-fwd", ticketsAPI, []string{"tickets:read"})
	if err != nil {
		t.Fatalf("token exchange through a follower: %v", err)
	}
	if tr.AccessToken == "" || tr.Index != size || f.log.Checkpoint().Size != size+1 {
		t.Fatalf("issuance at %d (leader size %d), want at %d on the leader", tr.Index, f.log.Checkpoint().Size, size)
	}
}

// TestForwardGRPC: over gRPC (HTTP/2, TLS between the nodes and to the
// client), a follower's refusal is a gRPC Unavailable the client fails
// over on, and a follower forwards an append to the leader.
func TestForwardGRPC(t *testing.T) {
	reg := newTestKey(t)
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Server(t).TLS
	nodes := make([]*httptest.Server, 3)
	logs := make([]*Log, 3)
	var leaderURL atomic.Pointer[string]
	nodeTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	defer nodeTransport.CloseIdleConnections()
	for i := range nodes {
		dir := t.TempDir()
		if i > 0 {
			b, err := os.ReadFile(filepath.Join(logs[0].opts.Dir, LogKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, LogKeyFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		logs[i] = openTestLog(t, dir, reg, nil)
		defer logs[i].Close()
		var self *httptest.Server
		leaderOf := func() (string, bool) {
			if l := leaderURL.Load(); l != nil {
				return *l, *l == self.URL
			}
			return "", false
		}
		if i == 2 {
			leaderOf = func() (string, bool) { return "", false } // a node that knows no leader
		}
		self = httptest.NewUnstartedServer(Forward(NewHandler(logs[i]), ForwardConfig{Leader: leaderOf, Transport: nodeTransport, Logger: quietLogger()}))
		self.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		self.EnableHTTP2 = true
		self.StartTLS()
		defer self.Close()
		nodes[i] = self
	}
	leaderURL.Store(&nodes[0].URL)
	v, err := note.NewVerifier(logs[0].VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	base := logs[0].Checkpoint().Size
	c := client.New(nodes[2].URL+","+nodes[1].URL, v, client.WithTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}), client.WithGRPC(), client.WithRetry(1, 0))
	e, err := c.Append(context.Background(), bindingEnvelope(t, reg, "spiffe://example.org/a", newTestKey(t), proofs.TierExecute, false))
	if err != nil {
		t.Fatalf("append over gRPC through a node without a leader and a follower: %v", err)
	}
	if e.Index != base || logs[0].Checkpoint().Size != base+1 || logs[1].Checkpoint().Size != logs[2].Checkpoint().Size {
		t.Fatalf("entry %d; sizes %d %d %d", e.Index, logs[0].Checkpoint().Size, logs[1].Checkpoint().Size, logs[2].Checkpoint().Size)
	}
}

// forwardCounter counts the requests it carries.
type forwardCounter struct{ n *atomic.Int64 }

func (c forwardCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestForwardBodyBound: a follower relays no more than the bound of the
// write it forwards, and refuses the request as too large.
func TestForwardBodyBound(t *testing.T) {
	reg := newTestKey(t)
	follower := newForwardNode(t, reg, "")
	var relayed atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		relayed.Add(n)
	}))
	defer sink.Close()
	follower.setLeader(sink.URL, false)
	limit := relayBound(MaxRequestBytes)
	body := bytes.Repeat([]byte("x"), int(limit)+1)
	rpc := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, follower.srv.URL)
	_, err := rpc.Append(context.Background(), connect.NewRequest(&warrantv1.AppendRequest{Envelope: body}))
	wantRefusal(t, err, connect.CodeResourceExhausted, proofs.ReasonRequestTooLarge, "")
	if n := relayed.Load(); n > limit {
		t.Fatalf("the leader got %d bytes, over the %d a follower relays", n, limit)
	}
}

// wantRefusal checks a Connect error's code, reason and Warrant-Leader.
func wantRefusal(t *testing.T, err error, code connect.Code, reason, leader string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a Connect error", err)
	}
	if ce.Code() != code {
		t.Fatalf("code %v (%v), want %v", ce.Code(), err, code)
	}
	got := ""
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ed, ok := v.(*warrantv1.ErrorDetail); ok {
				got = ed.GetReason()
			}
		}
	}
	if got != reason {
		t.Fatalf("reason %q (%v), want %q", got, err, reason)
	}
	if h := ce.Meta().Get(LeaderHeader); h != leader {
		t.Fatalf("%s %q, want %q", LeaderHeader, h, leader)
	}
}

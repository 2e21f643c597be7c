package client_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// smallBadger trims each test ledger's caches and value-log file; the store
// is still a real, synced Badger with the ledger's memtable (and so its
// transaction size limit).
func smallBadger(o badger.Options) badger.Options {
	return o.WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(2 << 20).
		WithValueLogFileSize(16 << 20)
}

// stepClock returns a log clock that starts at base and advances 1 ms per
// call. Two logs given clocks with the same base assign the same log times
// to the same sequence of entries, so their leaves (and trees) agree until
// their histories diverge.
func stepClock(base time.Time) func() time.Time {
	var n atomic.Int64
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}

// testEnv is a ledger, its registrar key and its verifier key.
type testEnv struct {
	dir       string
	log       *ledger.Log
	registrar *client.Signer
	verifier  note.Verifier
	// now is the wall clock for payload times (not the log's clock).
	now func() time.Time
}

type envOptions struct {
	origin    string
	registrar *client.Signer
	// clock is the log's clock (default time.Now).
	clock func() time.Time
	// logKeyFrom copies DIR/log.key from this directory before opening, so
	// that the new log signs with the same key as that one.
	logKeyFrom string
	// refresh is the idle checkpoint-feed interval (default the ledger's).
	refresh time.Duration
	// tokenKey, when set, makes the log issue access tokens.
	tokenKey *ecdsa.PrivateKey
}

// openLog opens a real ledger in a fresh temporary directory and closes it
// when the test ends.
func openLog(t testing.TB, o envOptions) *testEnv {
	t.Helper()
	dir := t.TempDir()
	if o.registrar == nil {
		o.registrar = newEd25519(t)
	}
	if o.logKeyFrom != "" {
		b, err := os.ReadFile(filepath.Join(o.logKeyFrom, ledger.LogKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ledger.LogKeyFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir:           dir,
		Origin:        o.origin,
		RegistrarKeys: []*proofs.PublicKey{o.registrar.Public()},
		Logger:        slog.New(slog.DiscardHandler),
		Now:           o.clock,
		Badger:        smallBadger,

		CheckpointRefresh: o.refresh,
		TokenKey:          o.tokenKey,
	})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing ledger: %v", err)
		}
	})
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{dir: dir, log: l, registrar: o.registrar, verifier: v, now: time.Now}
}

// serve serves h on a loopback test server.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// serveLog serves the ledger's real handler and returns its base URL.
func (e *testEnv) serve(t testing.TB) string {
	return serve(t, ledger.NewHandler(e.log)).URL
}

func newEd25519(t testing.TB) *client.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return mustSigner(t, k)
}

func newP256(t testing.TB) *client.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return mustSigner(t, k)
}

func mustSigner(t testing.TB, k crypto.Signer) *client.Signer {
	t.Helper()
	s, err := client.NewSigner(k)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

// nonce returns 32 random hex characters.
func nonce(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// agent is a registered (or to-be-registered) agent with its key.
type agent struct {
	id     string
	signer *client.Signer
}

func newAgent(t testing.TB, name string, useP256 bool) *agent {
	t.Helper()
	s := newEd25519(t)
	if useP256 {
		s = newP256(t)
	}
	return &agent{id: "spiffe://example.org/" + name, signer: s}
}

// bindingEnvelope is a key binding for a, signed by the registrar.
func (e *testEnv) bindingEnvelope(t testing.TB, a *agent, human bool) []byte {
	t.Helper()
	payload, err := proofs.MarshalPayload(&proofs.KeyBinding{
		Agent:     a.id,
		PublicKey: a.signer.Public().DER,
		Tier:      proofs.TierExecute,
		Human:     human,
		IssuedAt:  proofs.FormatTime(e.now()),
		Nonce:     nonce(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	env, err := e.registrar.SignEnvelope(proofs.PayloadTypeAgent, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// rootGrant is a root grant from issuer (a human) to delegate, valid for
// ten minutes around the log's clock.
func (e *testEnv) rootGrant(t testing.TB, id string, issuer, delegate *agent) *proofs.Delegation {
	t.Helper()
	now := e.now()
	return &proofs.Delegation{
		ID:          id,
		Issuer:      issuer.id,
		Delegate:    delegate.id,
		RootSubject: issuer.id,
		Task:        "/tickets",
		Scopes:      []string{"tickets:write", "tickets:read"},
		NotBefore:   proofs.FormatTime(now.Add(-time.Minute)),
		ExpiresAt:   proofs.FormatTime(now.Add(10 * time.Minute)),
		Nonce:       nonce(t),
	}
}

// child is a delegation under parent from its delegate to delegate, within
// the parent's bounds.
func child(t testing.TB, id string, parent *proofs.Delegation, issuer, delegate *agent) *proofs.Delegation {
	t.Helper()
	if parent.Delegate != issuer.id {
		t.Fatalf("child %s: issuer %s is not the parent's delegate %s", id, issuer.id, parent.Delegate)
	}
	return &proofs.Delegation{
		ID:          id,
		Issuer:      issuer.id,
		Delegate:    delegate.id,
		RootSubject: parent.RootSubject,
		Parent:      parent.ID,
		Task:        parent.Task + "/triage",
		Scopes:      []string{"tickets:read"},
		NotBefore:   parent.NotBefore,
		ExpiresAt:   parent.ExpiresAt,
		Nonce:       nonce(t),
	}
}

// sign signs a delegation payload with its issuer's key.
func sign(t testing.TB, issuer *agent, d *proofs.Delegation) []byte {
	t.Helper()
	payload, err := proofs.MarshalPayload(d)
	if err != nil {
		t.Fatal(err)
	}
	env, err := issuer.signer.SignEnvelope(proofs.PayloadTypeDelegation, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// mustAppend appends env through c and fails the test on any error.
func mustAppend(t testing.TB, c *client.Client, env []byte) *client.Entry {
	t.Helper()
	e, err := c.Append(context.Background(), env)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return e
}

// wantReason fails the test unless err carries the reason code.
func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want reason %q", reason)
	}
	if got := proofs.Reason(err); got != reason {
		t.Fatalf("got reason %q (%v), want %q", got, err, reason)
	}
}

// readFile returns the content of path, or nil if it does not exist.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

// double is a LedgerService that proxies to a real ledger (its backend,
// which can be switched to another log at any time) and can rewrite any
// answer: a test double for a log that lies.
type double struct {
	mu      sync.Mutex
	backend warrantv1connect.LedgerServiceClient

	appendFn     func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.AppendRequest) (*warrantv1.AppendResponse, error)
	getEntryFn   func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetEntryRequest) (*warrantv1.GetEntryResponse, error)
	getEntriesFn func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetEntriesRequest) (*warrantv1.GetEntriesResponse, error)
	checkpointFn func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error)
	consistFn    func(context.Context, warrantv1connect.LedgerServiceClient, *warrantv1.GetConsistencyProofRequest) (*warrantv1.GetConsistencyProofResponse, error)
}

var _ warrantv1connect.LedgerServiceHandler = (*double)(nil)

// rpcClient is a Connect client for a real ledger at url.
func rpcClient(url string) warrantv1connect.LedgerServiceClient {
	return warrantv1connect.NewLedgerServiceClient(http.DefaultClient, url)
}

// newDouble serves a double in front of backendURL and returns it with its
// URL.
func newDouble(t testing.TB, backendURL string) (*double, string) {
	t.Helper()
	d := &double{backend: rpcClient(backendURL)}
	mux := http.NewServeMux()
	mux.Handle(warrantv1connect.NewLedgerServiceHandler(d))
	// GET /checkpoint, which every server of a log serves (the client
	// checks a server's log with it), from the backend.
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		resp, err := d.snapshot().backend.GetCheckpoint(r.Context(), connect.NewRequest(&warrantv1.GetCheckpointRequest{}))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(resp.Msg.GetCheckpoint())
	})
	return d, serve(t, mux).URL
}

// set changes the double's behaviour under its lock.
func (d *double) set(f func(d *double)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// reset makes the double an honest proxy to url.
func (d *double) reset(url string) {
	d.set(func(d *double) {
		d.backend = rpcClient(url)
		d.appendFn, d.getEntryFn, d.getEntriesFn, d.checkpointFn, d.consistFn = nil, nil, nil, nil, nil
	})
}

func (d *double) snapshot() *double {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &double{backend: d.backend, appendFn: d.appendFn, getEntryFn: d.getEntryFn, getEntriesFn: d.getEntriesFn, checkpointFn: d.checkpointFn, consistFn: d.consistFn}
}

func (d *double) Append(ctx context.Context, req *connect.Request[warrantv1.AppendRequest]) (*connect.Response[warrantv1.AppendResponse], error) {
	s := d.snapshot()
	if s.appendFn != nil {
		return wrap(s.appendFn(ctx, s.backend, req.Msg))
	}
	return s.backend.Append(ctx, connect.NewRequest(req.Msg))
}

func (d *double) GetEntry(ctx context.Context, req *connect.Request[warrantv1.GetEntryRequest]) (*connect.Response[warrantv1.GetEntryResponse], error) {
	s := d.snapshot()
	if s.getEntryFn != nil {
		return wrap(s.getEntryFn(ctx, s.backend, req.Msg))
	}
	return s.backend.GetEntry(ctx, connect.NewRequest(req.Msg))
}

func (d *double) GetEntries(ctx context.Context, req *connect.Request[warrantv1.GetEntriesRequest]) (*connect.Response[warrantv1.GetEntriesResponse], error) {
	s := d.snapshot()
	if s.getEntriesFn != nil {
		return wrap(s.getEntriesFn(ctx, s.backend, req.Msg))
	}
	return s.backend.GetEntries(ctx, connect.NewRequest(req.Msg))
}

func (d *double) GetCheckpoint(ctx context.Context, req *connect.Request[warrantv1.GetCheckpointRequest]) (*connect.Response[warrantv1.GetCheckpointResponse], error) {
	s := d.snapshot()
	if s.checkpointFn != nil {
		return wrap(s.checkpointFn(ctx, s.backend, req.Msg))
	}
	return s.backend.GetCheckpoint(ctx, connect.NewRequest(req.Msg))
}

func (d *double) GetInclusionProof(ctx context.Context, req *connect.Request[warrantv1.GetInclusionProofRequest]) (*connect.Response[warrantv1.GetInclusionProofResponse], error) {
	return d.snapshot().backend.GetInclusionProof(ctx, connect.NewRequest(req.Msg))
}

func (d *double) GetConsistencyProof(ctx context.Context, req *connect.Request[warrantv1.GetConsistencyProofRequest]) (*connect.Response[warrantv1.GetConsistencyProofResponse], error) {
	s := d.snapshot()
	if s.consistFn != nil {
		return wrap(s.consistFn(ctx, s.backend, req.Msg))
	}
	return s.backend.GetConsistencyProof(ctx, connect.NewRequest(req.Msg))
}

func wrap[T any](m *T, err error) (*connect.Response[T], error) {
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(m), nil
}

// Helpers for double hooks: fetch from a backend, returning the message.

func getEntry(ctx context.Context, b warrantv1connect.LedgerServiceClient, index, trusted uint64) (*warrantv1.GetEntryResponse, error) {
	r, err := b.GetEntry(ctx, connect.NewRequest(&warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: index}, TrustedSize: trusted}))
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

func getCheckpoint(ctx context.Context, b warrantv1connect.LedgerServiceClient, trusted uint64) (*warrantv1.GetCheckpointResponse, error) {
	r, err := b.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{TrustedSize: trusted}))
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

func (d *double) GetChainBundle(ctx context.Context, req *connect.Request[warrantv1.GetChainBundleRequest]) (*connect.Response[warrantv1.GetChainBundleResponse], error) {
	return d.snapshot().backend.GetChainBundle(ctx, connect.NewRequest(req.Msg))
}

func (d *double) ListChildren(ctx context.Context, req *connect.Request[warrantv1.ListChildrenRequest]) (*connect.Response[warrantv1.ListChildrenResponse], error) {
	return d.snapshot().backend.ListChildren(ctx, connect.NewRequest(req.Msg))
}

func (d *double) ListChildrenBatch(ctx context.Context, req *connect.Request[warrantv1.ListChildrenBatchRequest]) (*connect.Response[warrantv1.ListChildrenBatchResponse], error) {
	return d.snapshot().backend.ListChildrenBatch(ctx, connect.NewRequest(req.Msg))
}

func (d *double) ListAgentEntries(ctx context.Context, req *connect.Request[warrantv1.ListAgentEntriesRequest]) (*connect.Response[warrantv1.ListAgentEntriesResponse], error) {
	return d.snapshot().backend.ListAgentEntries(ctx, connect.NewRequest(req.Msg))
}

func (d *double) WatchCheckpoints(ctx context.Context, req *connect.Request[warrantv1.WatchCheckpointsRequest], stream *connect.ServerStream[warrantv1.WatchCheckpointsResponse]) error {
	up, err := d.snapshot().backend.WatchCheckpoints(ctx, connect.NewRequest(req.Msg))
	if err != nil {
		return err
	}
	defer up.Close()
	for up.Receive() {
		if err := stream.Send(up.Msg()); err != nil {
			return err
		}
	}
	return up.Err()
}

func (d *double) AppendBatch(ctx context.Context, req *connect.Request[warrantv1.AppendBatchRequest]) (*connect.Response[warrantv1.AppendBatchResponse], error) {
	return d.snapshot().backend.AppendBatch(ctx, connect.NewRequest(req.Msg))
}

func (d *double) ExchangeToken(ctx context.Context, req *connect.Request[warrantv1.ExchangeTokenRequest]) (*connect.Response[warrantv1.ExchangeTokenResponse], error) {
	return d.snapshot().backend.ExchangeToken(ctx, connect.NewRequest(req.Msg))
}

package loadgen_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/loadgen"
	"github.com/warrantlog/warrant/proofs"
)

// tokenServer runs a real ledger issuing tokens on loopback; wrap, if
// set, sits between the client and the handler.
func tokenServer(t *testing.T, wrap func(http.Handler) http.Handler) (string, note.Verifier, *client.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir: t.TempDir(), RegistrarKeys: []*proofs.PublicKey{reg.Public()}, TokenKey: tokenKey,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := ledger.NewHandler(l)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, v, reg
}

// TestTokenMode: each worker's agent exchanges its grant for tokens with
// fresh proofs, every answer verified; no errors against a sound server.
func TestTokenMode(t *testing.T) {
	url, v, reg := tokenServer(t, nil)
	res, err := loadgen.Run(context.Background(), loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: loadgen.ModeToken,
		Concurrency: 3, Duration: 5 * time.Minute, MaxOps: 30})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 30 || len(res.Errors) != 0 || res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("token run: %+v", res)
	}
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Server: url, LogKey: v, Mode: loadgen.ModeToken}); err == nil {
		t.Fatal("a token run without a registrar key started")
	}
}

// TestTokenModeCountsRefusals: exchanges whose DPoP proofs are stripped
// in flight are counted by their OAuth error, never as exchanges.
func TestTokenModeCountsRefusals(t *testing.T) {
	strip := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == ledger.TokenEndpointPath {
				r.Header.Del("DPoP")
			}
			next.ServeHTTP(w, r)
		})
	}
	url, v, reg := tokenServer(t, strip)
	res, err := loadgen.Run(context.Background(), loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: loadgen.ModeToken,
		Concurrency: 2, Duration: 5 * time.Minute, MaxOps: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.Errors["token_refused/invalid_dpop_proof"] != 10 {
		t.Fatalf("stripped proofs: %+v", res)
	}
	if s := res.String(); !strings.Contains(s, "token_refused/invalid_dpop_proof=10") {
		t.Fatalf("summary:\n%s", s)
	}
}

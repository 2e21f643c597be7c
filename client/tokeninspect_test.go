package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestInspectToken: a token is checked against the log, and a server that
// serves a JWKS with a key of its own, or passes off another entry as the
// log-config entry, is caught.
func TestInspectToken(t *testing.T) {
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e := openLog(t, envOptions{tokenKey: tokenKey})
	real := e.serve(t)
	c := client.New(real, e.verifier)
	ctx := context.Background()
	alice, planner := newAgent(t, "human/alice", false), newAgent(t, "agent/planner", true)
	mustAppend(t, c, e.bindingEnvelope(t, alice, true))
	mustAppend(t, c, e.bindingEnvelope(t, planner, false))
	const api = "https://tickets.example/api"
	d := e.rootGrant(t, "dlg_tok", alice, planner)
	d.Destinations = []string{api}
	mustAppend(t, c, sign(t, alice, d))
	tr, err := c.ExchangeToken(ctx, planner.signer, d.ID, api, []string{"tickets:read"})
	if err != nil {
		t.Fatal(err)
	}

	ti, err := c.InspectToken(ctx, tr.AccessToken)
	if err != nil {
		t.Fatalf("an honest token: %v", err)
	}
	if ti.Issuance.Index != tr.Index || ti.Claims.Aud != api || ti.Claims.Scope != "tickets:read" || ti.KeyEntry >= tr.Index {
		t.Fatalf("inspection %+v", ti)
	}
	if in, err := c.Introspect(ctx, alice.signer, tr.AccessToken); err != nil || !in.Active || in.Aud != api {
		t.Fatalf("introspection: %+v %v", in, err)
	}
	if why, err := c.ChainInForce(ctx, d.ID, ti.Claims.Warrant.DelegationIndex, e.now()); err != nil || len(why) != 0 {
		t.Fatalf("chain in force: %v %v", why, err)
	}
	stranger := newAgent(t, "agent/stranger", false)
	if _, err := c.Introspect(ctx, stranger.signer, tr.AccessToken); proofs.Reason(err) != proofs.ReasonTokenRefused || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("introspection by an unregistered key: %v", err)
	}

	// A front that serves its own JWKS and proxies the rest.
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&attacker.PublicKey)
	apub, err := proofs.ParsePublicKeyDER(der)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := attacker.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	dbl, dblURL := newDouble(t, real)
	target, _ := url.Parse(real)
	dblTarget, _ := url.Parse(dblURL)
	// front serves the RPCs through the double, the JWKS by jwks (nil: the
	// real one) and the rest from the real server.
	front := func(jwks http.HandlerFunc) *client.Client {
		mux := http.NewServeMux()
		if jwks != nil {
			mux.HandleFunc("GET /.well-known/jwks.json", jwks)
		}
		mux.Handle("/warrant.v1.LedgerService/", httputil.NewSingleHostReverseProxy(dblTarget))
		mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
		return client.New(serve(t, mux).URL, e.verifier)
	}
	fc := front(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:]), "kid": apub.ID, "alg": "ES256"}}})
	})

	// The real token's claims, signed by the front's key.
	parts := strings.Split(tr.AccessToken, ".")
	hdr, _ := json.Marshal(map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": apub.ID})
	input := b64(hdr) + "." + parts[1]
	sum := sha256.Sum256([]byte(input))
	r, s, _ := ecdsa.Sign(rand.Reader, attacker, sum[:])
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	forged := input + "." + b64(sig)
	if _, err := fc.InspectToken(ctx, forged); proofs.Reason(err) != client.ReasonMismatch {
		t.Fatalf("a token signed by a key the log does not hold: %v", err)
	}
	// The real token no longer verifies under that JWKS.
	if _, err := fc.InspectToken(ctx, tr.AccessToken); proofs.Reason(err) != proofs.ReasonSignatureKeyUnknown {
		t.Fatalf("the real token under the front's JWKS: %v", err)
	}

	// A server that answers config_before with another entry.
	fc = front(nil)
	if _, err := fc.InspectToken(ctx, tr.AccessToken); err != nil {
		t.Fatalf("through an honest front: %v", err)
	}
	dbl.set(func(d *double) {
		d.getEntryFn = func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetEntryRequest) (*warrantv1.GetEntryResponse, error) {
			if k, ok := req.Key.(*warrantv1.GetEntryRequest_ConfigBefore); ok {
				req = &warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: k.ConfigBefore - 1}, TrustedSize: req.TrustedSize}
			}
			resp, err := b.GetEntry(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}
	})
	if _, err := c.InspectToken(ctx, tr.AccessToken); err != nil {
		t.Fatalf("the honest server again: %v", err)
	}
	_, err = fc.InspectToken(ctx, tr.AccessToken)
	wantReason(t, err, client.ReasonMismatch)
}

package ledger

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestDPoPNonce: with nonces on, the token and introspection endpoints
// answer a proof without the server's nonce use_dpop_nonce with one to
// retry with (RFC 9449 sections 8 and 9), give a fresh one with every
// answer, accept a nonce for one to two slots, and never accept another
// process's.
func TestDPoPNonce(t *testing.T) {
	w := newTokenWorld(t, func(o *Options) { o.DPoPNonce = true })
	endpoint := w.srv.URL + TokenEndpointPath
	form := exchangeForm("d-exec", ticketsAPI, "tickets:read")
	proof := func(nonce string) string {
		return w.exec.proofWith(t, "dpop+jwt", "POST", endpoint, w.clock.Now(), map[string]any{"nonce": nonce})
	}
	size := w.f.log.Checkpoint().Size
	a := postToken(t, endpoint, form, w.exec.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()))
	nonce := a.header.Get("DPoP-Nonce")
	if a.status != http.StatusBadRequest || a.Error != "use_dpop_nonce" || nonce == "" || a.Warrant != nil {
		t.Fatalf("without a nonce: %d %q nonce %q", a.status, a.Error, nonce)
	}
	if got := w.f.log.Checkpoint().Size; got != size {
		t.Fatal("a use_dpop_nonce answer wrote an entry")
	}
	if a := postToken(t, endpoint, form, proof("not-the-nonce")); a.status != 400 || a.Error != "use_dpop_nonce" {
		t.Fatalf("a wrong nonce: %d %q", a.status, a.Error)
	}
	ok := postToken(t, endpoint, form, proof(nonce))
	if ok.status != http.StatusOK || ok.AccessToken == "" || ok.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("with the nonce: %d %q %s, DPoP-Nonce %q", ok.status, ok.Error, ok.Description, ok.header.Get("DPoP-Nonce"))
	}
	// A nonce is good for the next slot too, not after.
	w.clock.Add(DPoPNonceSlot)
	if a := postToken(t, endpoint, form, proof(nonce)); a.status != http.StatusOK {
		t.Fatalf("the previous slot's nonce: %d %q %s", a.status, a.Error, a.Description)
	}
	w.clock.Add(DPoPNonceSlot)
	a = postToken(t, endpoint, form, proof(nonce))
	if a.status != 400 || a.Error != "use_dpop_nonce" || a.header.Get("DPoP-Nonce") == nonce {
		t.Fatalf("a nonce two slots old: %d %q, fresh %q", a.status, a.Error, a.header.Get("DPoP-Nonce"))
	}
	nonce = a.header.Get("DPoP-Nonce")

	// Another process (another key) never accepts this one's nonces: a
	// proof seen by a server before its restart cannot be replayed after.
	other := newTokenWorld(t, func(o *Options) { o.DPoPNonce = true; o.Now = w.clock.Now })
	otherEndpoint := other.srv.URL + TokenEndpointPath
	if a := postToken(t, otherEndpoint, form, w.exec.proofWith(t, "dpop+jwt", "POST", otherEndpoint, w.clock.Now(), map[string]any{"nonce": nonce})); a.Error != "use_dpop_nonce" {
		t.Fatalf("another process's nonce: %d %q", a.status, a.Error)
	}

	// Introspection: 401 with the DPoP challenge.
	token := ok.AccessToken
	iep := w.srv.URL + IntrospectionEndpointPath
	ia := postIntrospect(t, iep, url.Values{"token": {token}}, w.planner.proof(t, "dpop+jwt", "POST", iep, w.clock.Now()))
	if ia.status != 401 || ia.Error != "use_dpop_nonce" || ia.header.Get("DPoP-Nonce") == "" ||
		!strings.HasPrefix(ia.header.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) {
		t.Fatalf("introspection without a nonce: %d %q, %v", ia.status, ia.Error, ia.header)
	}
	ia = postIntrospect(t, iep, url.Values{"token": {token}},
		w.planner.proofWith(t, "dpop+jwt", "POST", iep, w.clock.Now(), map[string]any{"nonce": ia.header.Get("DPoP-Nonce")}))
	if ia.status != 200 || ia.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("introspection with the nonce: %d %q %s", ia.status, ia.Error, ia.Description)
	}
}

// TestDPoPNonceClientRetries: the SDK meets use_dpop_nonce once, retries
// with the nonce, and reuses the latest one.
func TestDPoPNonceClientRetries(t *testing.T) {
	w := newTokenWorld(t, func(o *Options) { o.DPoPNonce = true; o.Now = time.Now })
	c := client.New(w.srv.URL, w.f.verifier(t))
	s, err := client.NewSigner(w.exec.priv)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		tr, err := c.ExchangeToken(context.Background(), s, "d-exec", ticketsAPI, []string{"tickets:read"})
		if err != nil || tr.AccessToken == "" {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if tr.Record == nil || tr.Record.Requester != executorID {
			t.Fatalf("exchange %d: record %+v", i, tr.Record)
		}
	}
	if _, err := c.ExchangeToken(context.Background(), s, "d-nope", ticketsAPI, nil); proofs.Reason(err) != proofs.ReasonDelegationNotFound {
		t.Fatalf("a denied exchange through nonces: %v", err)
	}
}

// TestDPoPReplayAfterRestart: the jti replay cache dies with the process,
// so a proof seen before a restart must not be accepted after it, within
// its iat window: without nonces it was made before the start, with
// nonces it carries the previous process's.
func TestDPoPReplayAfterRestart(t *testing.T) {
	for _, nonces := range []bool{false, true} {
		t.Run(fmt.Sprintf("nonces=%v", nonces), func(t *testing.T) {
			const issuer = "https://warrant.example"
			mod := func(o *Options) { o.TokenIssuer = issuer; o.DPoPNonce = nonces }
			w := newTokenWorld(t, mod)
			endpoint := issuer + TokenEndpointPath
			form := exchangeForm("d-exec", ticketsAPI)
			extra := map[string]any{}
			if nonces {
				a := postToken(t, w.srv.URL+TokenEndpointPath, form, w.exec.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()))
				extra["nonce"] = a.header.Get("DPoP-Nonce")
			}
			proof := w.exec.proofWith(t, "dpop+jwt", "POST", endpoint, w.clock.Now(), extra)
			if a := postToken(t, w.srv.URL+TokenEndpointPath, form, proof); a.status != http.StatusOK {
				t.Fatalf("first use: %d %q %s", a.status, a.Error, a.Description)
			}
			if a := postToken(t, w.srv.URL+TokenEndpointPath, form, proof); a.Error != "invalid_dpop_proof" {
				t.Fatalf("replay to the same process: %d %q", a.status, a.Error)
			}
			// Restart, 10 s later: the proof is still inside its iat window.
			w.clock.Add(10 * time.Second)
			w.srv.Close()
			if err := w.f.log.Close(); err != nil {
				t.Fatal(err)
			}
			w.f.log = openTestLog(t, w.f.dir, w.f.registrar, func(o *Options) {
				w.f.withAdmin(o)
				o.Now, o.TokenKey = w.clock.Now, w.tokenKey
				mod(o)
			})
			srv := httptest.NewServer(NewHandler(w.f.log))
			defer srv.Close()
			size := w.f.log.Checkpoint().Size
			a := postToken(t, srv.URL+TokenEndpointPath, form, proof)
			want := "invalid_dpop_proof"
			if nonces {
				want = "use_dpop_nonce"
			}
			if a.status != 400 || a.Error != want || a.AccessToken != "" {
				t.Fatalf("replay after the restart: %d %q %s, want %s", a.status, a.Error, a.Description, want)
			}
			if w.f.log.Checkpoint().Size != size {
				t.Fatal("the replay wrote an entry")
			}
			// A fresh proof is accepted.
			extra = map[string]any{}
			if nonces {
				extra["nonce"] = a.header.Get("DPoP-Nonce")
			}
			if a := postToken(t, srv.URL+TokenEndpointPath, form, w.exec.proofWith(t, "dpop+jwt", "POST", endpoint, w.clock.Now(), extra)); a.status != http.StatusOK {
				t.Fatalf("a fresh proof after the restart: %d %q %s", a.status, a.Error, a.Description)
			}
		})
	}
}

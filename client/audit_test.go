package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// ExampleClient_Export writes the whole log to a file, checked against the
// signed checkpoint, and audits it offline with the log key alone.
func ExampleClient_Export() {
	ctx := context.Background()
	x := exampleLog()
	defer x.stop()
	c := client.New(x.url, x.logKey)

	path := filepath.Join(x.dir, "log.export")
	cp, err := c.Export(ctx, path) // written only if the leaves hash to cp's root
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exported %d entries\n", cp.Size)

	// Offline, later, by anyone holding the log key.
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	report, err := proofs.AuditExport(f, x.logKey, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("verified %v: %d accepted, %d denied\n", report.Verified, report.Accepted, report.Denied)
	// Output:
	// exported 3 entries
	// verified true: 1 accepted, 0 denied
}

// ExampleClient_Audit audits the whole log over the network: the same
// checks as an offline audit of an export, with nothing written.
func ExampleClient_Audit() {
	x := exampleLog()
	defer x.stop()
	c := client.New(x.url, x.logKey)

	report, err := c.Audit(context.Background(), nil)
	if err != nil {
		log.Fatal(err) // the log could not be read, or its checkpoint does not verify
	}
	if !report.Verified {
		log.Fatalf("%d discrepancies, the first: %+v", len(report.Discrepancies), report.Discrepancies[0])
	}
	fmt.Printf("%d entries verified: %d key bindings\n", report.Size, report.Entries[proofs.KindKeyBinding])
	// Output:
	// 3 entries verified: 1 key bindings
}

// exampleEnv is a served ledger for the examples.
type exampleEnv struct {
	url       string
	vkey      string // the log's verifier key, as in DIR/log.vkey
	logKey    note.Verifier
	registrar *client.Signer
	dir       string // scratch
	stop      func()
}

// exampleLog serves a fresh ledger holding one key binding (after the
// log's own configuration and policy).
func exampleLog() *exampleEnv {
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "warrant-example")
	check(err)
	registrar := exampleSigner()
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir:           filepath.Join(dir, "data"),
		RegistrarKeys: []*proofs.PublicKey{registrar.Public()},
		Logger:        slog.New(slog.DiscardHandler),
	})
	check(err)
	srv := httptest.NewServer(ledger.NewHandler(l))
	logKey, err := proofs.ParseVerifierKey(l.VerifierKey())
	check(err)
	env, err := registrar.SignKeyBinding(&proofs.KeyBinding{
		Agent:     "spiffe://example.org/agent/alice",
		PublicKey: exampleSigner().Public().DER,
		Tier:      proofs.TierDraft,
	}, time.Now())
	check(err)
	_, err = client.New(srv.URL, logKey).Append(context.Background(), env)
	check(err)
	return &exampleEnv{url: srv.URL, vkey: l.VerifierKey(), logKey: logKey, registrar: registrar, dir: dir, stop: func() {
		srv.Close()
		l.Close()
		os.RemoveAll(dir)
	}}
}

// exampleSigner returns a signer with a fresh Ed25519 key.
func exampleSigner() *client.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	s, err := client.NewSigner(k)
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// TestExportOfTamperedEntries serves the log's entry bundles with one
// byte of the last leaf changed: Export refuses and leaves the previous
// file as it was, and Audit reports the tree mismatch.
func TestExportOfTamperedEntries(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	mustAppend(t, client.New(e.serve(t), e.verifier), e.bindingEnvelope(t, newAgent(t, "alice", false), false))
	h := ledger.NewHandler(e.log)
	tampered := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			h.ServeHTTP(w, r)
			return
		}
		r.Header.Del("Accept-Encoding")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK && len(body) > 2 {
			body[len(body)-2] ^= 1
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	})).URL

	dir := t.TempDir()
	path := filepath.Join(dir, "log.export")
	if err := os.WriteFile(path, []byte("the previous export"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := client.New(tampered, e.verifier).Export(ctx, path)
	wantReason(t, err, proofs.ReasonAuditTreeMismatch)
	if b := readFile(t, path); string(b) != "the previous export" {
		t.Fatalf("the export file was changed to %q", b)
	}
	if des, err := os.ReadDir(dir); err != nil || len(des) != 1 {
		t.Fatalf("the directory holds %d files (%v), want only the previous export", len(des), err)
	}

	rep, err := client.New(tampered, e.verifier).Audit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verified || !slices.ContainsFunc(rep.Discrepancies, func(d proofs.Discrepancy) bool { return d.Reason == proofs.ReasonAuditTreeMismatch }) {
		t.Fatalf("audit of tampered entries: %+v", rep)
	}

	// The untampered log exports and audits clean.
	c := client.New(e.serve(t), e.verifier)
	if _, err := c.Export(ctx, path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if rep, err := proofs.AuditExport(f, e.verifier, nil, nil); err != nil || !rep.Verified || rep.Size != 3 {
		t.Fatalf("audit of the export: %+v, %v", rep, err)
	}
}

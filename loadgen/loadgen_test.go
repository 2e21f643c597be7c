package loadgen_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/loadgen"
	"github.com/warrantlog/warrant/proofs"
)

// server runs a real ledger behind a real Connect handler on loopback;
// wrap, if set, sits between the client and the handler.
func server(t *testing.T, wrap func(http.Handler) http.Handler) (string, note.Verifier, *client.Signer) {
	t.Helper()
	url, v, reg, _ := serverAndKey(t, wrap)
	return url, v, reg
}

// serverAndKey is server, also returning the log's verifier key text.
func serverAndKey(t *testing.T, wrap func(http.Handler) http.Handler) (string, note.Verifier, *client.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir:           t.TempDir(),
		RegistrarKeys: []*proofs.PublicKey{reg.Public()},
		AgentRate:     -1,
		AgentByteRate: -1,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	return srv.URL, v, reg, l.VerifierKey()
}

// TestModes drives every mode briefly against a real server: each must do
// work, verify every answer and see no errors.
func TestModes(t *testing.T) {
	url, v, reg := server(t, nil)
	ctx := context.Background()
	fill, err := loadgen.Run(ctx, loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: loadgen.ModeAppendBatch,
		Concurrency: 4, Duration: 5 * time.Minute, BatchSize: 64, Presign: 1200})
	if err != nil {
		t.Fatal(err)
	}
	// The run ends when the presigned envelopes run out, however long
	// that takes on a busy machine.
	if !fill.Exhausted || fill.Ops < 600 || len(fill.Errors) != 0 {
		t.Fatalf("filling the log: %+v", fill)
	}
	for _, mode := range []string{loadgen.ModeAppend, loadgen.ModeInclusion, loadgen.ModeConsistency, loadgen.ModeEntries, loadgen.ModeTiles} {
		t.Run(mode, func(t *testing.T) {
			res, err := loadgen.Run(ctx, loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: mode,
				Concurrency: 4, Duration: 5 * time.Minute, MaxOps: 40, Presign: 400})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops == 0 || len(res.Errors) != 0 || res.P50 <= 0 || res.Max < res.P99 || res.P99 < res.P50 {
				t.Fatalf("%s: %+v", mode, res)
			}
			if mode == loadgen.ModeAppend && (res.BatchMax == 0 || res.BatchMean <= 0) {
				t.Fatalf("append run reports no server batches: %+v", res)
			}
		})
	}
}

// TestTamperedProofsAreCounted: a server whose inclusion proofs are
// altered in flight yields errors by reason, never successful operations.
func TestTamperedProofsAreCounted(t *testing.T) {
	tamper := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != warrantv1connect.LedgerServiceGetInclusionProofProcedure {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			var m warrantv1.GetInclusionProofResponse
			if rec.Code == http.StatusOK && proto.Unmarshal(body, &m) == nil && len(m.Hashes) > 0 {
				m.Hashes[len(m.Hashes)-1][0] ^= 1
				body, _ = proto.Marshal(&m)
			} // else (e.g. the run's deadline) as it came
			for k, vs := range rec.Header() {
				w.Header()[k] = vs
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
	url, v, reg := server(t, tamper)
	ctx := context.Background()
	if _, err := loadgen.Run(ctx, loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: loadgen.ModeAppendBatch,
		Concurrency: 2, Duration: 5 * time.Minute, BatchSize: 64, Presign: 300}); err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Run(ctx, loadgen.Config{Server: url, LogKey: v, Mode: loadgen.ModeInclusion, Concurrency: 2, Duration: 5 * time.Minute, MaxOps: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.Errors["inclusion_proof_invalid"] == 0 {
		t.Fatalf("tampered proofs: %+v", res)
	}
	if s := res.String(); !strings.Contains(s, "inclusion_proof_invalid=") || !bytes.Contains([]byte(s), []byte("0 ops")) {
		t.Fatalf("summary does not show the failures:\n%s", s)
	}
}

// TestWitnessMode: the witness mode matches every append answer with a
// checkpoint of the witnessed feed that covers it. The log here has no
// witnesses, so its feed serves its latest checkpoints, and the client
// policy is "quorum none" (the logs with real witnesses are measured by
// bench/witness.sh, with three litewitness processes). A run without a
// policy is refused before it starts.
func TestWitnessMode(t *testing.T) {
	url, v, reg, vkey := serverAndKey(t, nil)
	ctx := context.Background()
	p, err := proofs.ParseWitnessPolicy([]byte("quorum none\n"), vkey, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Run(ctx, loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: loadgen.ModeWitness,
		Concurrency: 4, Duration: 5 * time.Minute, MaxOps: 60, Presign: 400, WitnessPolicy: p})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 60 || len(res.Errors) != 0 || res.Witnessed != res.Ops || res.Unwitnessed != 0 || res.WitnessMax < res.WitnessP50 {
		t.Fatalf("witness run: %+v", res)
	}
	if !strings.Contains(res.String(), "witnessed checkpoint") {
		t.Fatalf("summary: %s", res)
	}
	if _, err := loadgen.Run(ctx, loadgen.Config{Server: url, LogKey: v, Registrar: reg, Mode: loadgen.ModeWitness, MaxOps: 1}); err == nil {
		t.Fatal("a witness run without a policy ran")
	}
}

package loadgen_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/loadgen"
	"github.com/warrantlog/warrant/proofs"
)

// TestServersAndMetrics: one log behind two URLs (as a cluster's replicas
// serve one log): a read run given both spreads its clients over them;
// an append run reads the server's /metrics before and after and reports
// the entries it sequenced, exactly as many as the run appended, and its
// CPU time; a /metrics that cannot be read is reported, not fatal.
func TestServersAndMetrics(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := ledger.NewMetrics(promReg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir(), RegistrarKeys: []*proofs.PublicKey{reg.Public()},
		AgentRate: -1, AgentByteRate: -1, Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	var hits [2]atomic.Int64
	mux := func(i int) http.Handler {
		h := ledger.NewHandler(l)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
				return
			}
			hits[i].Add(1)
			h.ServeHTTP(w, r)
		})
	}
	a, b := httptest.NewServer(mux(0)), httptest.NewServer(mux(1))
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	ctx := context.Background()

	res, err := loadgen.Run(ctx, loadgen.Config{Server: a.URL, LogKey: v, Registrar: reg, Mode: loadgen.ModeAppend,
		Concurrency: 4, Duration: 5 * time.Minute, Presign: 300, Metrics: []string{a.URL + "/metrics", a.URL + "/nowhere"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exhausted || res.Ops == 0 || len(res.Errors) != 0 || len(res.Nodes) != 2 {
		t.Fatalf("append run: %+v", res)
	}
	if n := res.Nodes[0]; n.Error != "" || n.Entries != float64(res.Ops) || n.Batches < 1 || n.CPUSeconds <= 0 || n.Puts != 0 {
		t.Fatalf("node load of a run of %d appends: %+v", res.Ops, n)
	}
	if n := res.Nodes[1]; n.Error == "" || !strings.Contains(res.String(), "not read") {
		t.Fatalf("an unreadable /metrics: %+v\n%s", n, res)
	}
	if !strings.Contains(res.String(), "sequenced ") {
		t.Fatalf("summary does not show the node's load:\n%s", res)
	}

	before := [2]int64{hits[0].Load(), hits[1].Load()}
	res, err = loadgen.Run(ctx, loadgen.Config{Server: a.URL + "," + b.URL + "/", LogKey: v, Mode: loadgen.ModeInclusion,
		Concurrency: 4, Duration: 5 * time.Minute, MaxOps: 40})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 40 || len(res.Errors) != 0 {
		t.Fatalf("inclusion run over two servers: %+v", res)
	}
	// Clients 0 and 2 read from the first server, 1 and 3 from the
	// second (which also answered one checkpoint request at the start).
	if d0, d1 := hits[0].Load()-before[0], hits[1].Load()-before[1]; d0 < 3 || d1 < 3 || d0+d1 < 41 {
		t.Fatalf("requests per server: %d and %d; want the 40 proofs spread over both", d0, d1)
	}
}

package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// scrape GETs url and returns its text exposition.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// metricValue returns the value of the sample named exactly series (name
// and labels as exposed), or -1 if there is none.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// TestMetricsScrape: appends, denials, duplicates and refusals show up on
// /metrics with the right labels and counts.
func TestMetricsScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Metrics = m })
	ctx := context.Background()
	// Accepted: a root grant from the human to the agent, twice (the second
	// is a resubmission: a duplicate).
	ok := signDelegation(t, f.human, delegation("dlg_ok", humanID, agentID, "nonce-ok-1"))
	for range 2 {
		if _, err := f.log.Append(ctx, ok); err != nil {
			t.Fatal(err)
		}
	}
	// Denied: two grants to an unregistered delegate.
	for i := range 2 {
		d := delegation(fmt.Sprintf("dlg_no%d", i), humanID, "spiffe://example.org/agent/nobody", fmt.Sprintf("nonce-no-%d", i))
		a, err := f.log.Append(ctx, signDelegation(t, f.human, d))
		if err != nil || a.Decision.Outcome != proofs.OutcomeDenied {
			t.Fatalf("want a denial, got %+v, %v", a, err)
		}
	}
	// Refused: not an envelope; and signed by an unknown key.
	if _, err := f.log.Append(ctx, []byte("{}")); err == nil {
		t.Fatal("a malformed envelope was accepted")
	}
	stranger := newTestKey(t)
	_, err = f.log.Append(ctx, signDelegation(t, stranger, delegation("dlg_x", humanID, agentID, "nonce-forged")))
	refusedReason := proofs.Reason(err)
	if refusedReason == "" {
		t.Fatalf("a forged delegation: %v", err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	text := scrape(t, srv.URL)
	want := map[string]float64{
		`warrant_appends_total{kind="delegation",outcome="accepted"}`:  1,
		`warrant_appends_total{kind="delegation",outcome="duplicate"}`: 1,
		`warrant_appends_total{kind="delegation",outcome="denied"}`:    2,
		`warrant_appends_total{kind="key_binding",outcome="accepted"}`: 2,
		`warrant_appends_total{kind="log_config",outcome="accepted"}`:  1,
		`warrant_appends_total{kind="policy",outcome="accepted"}`:      1,
		`warrant_denials_total{reason="delegate_unknown"}`:             2,
		`warrant_refusals_total{reason="` + refusedReason + `"}`:       1,
		`warrant_tree_size`:                    7, // config, policy, 2 bindings, 1 grant, 2 denials
		`warrant_queue_depth`:                  0,
		`warrant_append_latency_seconds_count`: 8, // 2 bindings + 6 above (the log's own entries are not Appends)
		`warrant_batch_size_sum`:               7,
	}
	for series, v := range want {
		if got := metricValue(t, text, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if got := metricValue(t, text, `warrant_commit_latency_seconds_count`); got < 1 {
		t.Errorf("commit latency count %v", got)
	}
	for _, g := range []string{"warrant_badger_lsm_bytes", "warrant_badger_vlog_bytes"} {
		if metricValue(t, text, g) < 0 {
			t.Errorf("%s is missing", g)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", text)
	}
	// A nil Metrics records nothing and breaks nothing (every other test).
	var nilM *Metrics
	nilM.observeAppend(time.Now(), errors.New("x"))
	nilM.observeCommit(time.Second)
	nilM.sequenced(nil, nil, nil)
}

// TestTracingSpanForAppend: with the otelconnect interceptor, an Append RPC
// produces a server span.
func TestTracingSpanForAppend(t *testing.T) {
	f := newFixture(t, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ic, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(tp), otelconnect.WithoutMetrics())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(f.log, connect.WithInterceptors(ic)))
	defer srv.Close()
	v, err := note.NewVerifier(f.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(srv.URL, v)
	if _, err := c.Append(context.Background(), signDelegation(t, f.human, delegation("dlg_traced", humanID, agentID, "nonce-traced"))); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
		if s.Name() == "warrant.v1.LedgerService/Append" {
			return
		}
	}
	t.Fatalf("no Append span; spans: %q", names)
}

// appendLoad appends root grants from several goroutines until stop is
// closed; it returns how many were accepted.
func appendLoad(t *testing.T, f *fixture, workers int, stop <-chan struct{}) (wait func() int64) {
	var wg sync.WaitGroup
	var n atomic.Int64
	var errs atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := delegation(fmt.Sprintf("dlg_load_%d_%d", w, i), humanID, agentID, fmt.Sprintf("nonce-load-%d-%d", w, i))
				a, err := f.log.Append(context.Background(), signDelegation(t, f.human, d))
				if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
					if errs.Add(1) == 1 {
						t.Errorf("load append: %+v, %v", a, err)
					}
					return
				}
				n.Add(1)
			}
		})
	}
	return func() int64 { wg.Wait(); return n.Load() }
}

// TestBackupUnderLoadRestoresAndAudits: a backup taken over HTTP while
// appends run restores into a new directory, opens (the recovery check
// passes), audits with no discrepancy, and its checkpoint is consistent
// with the live log's.
func TestBackupUnderLoadRestoresAndAudits(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	srv := httptest.NewServer(BackupHandler(f.log, BackupOptions{}))
	defer srv.Close()

	stop := make(chan struct{})
	wait := appendLoad(t, f, 8, stop)
	for deadline := time.Now().Add(3 * time.Minute); f.log.Checkpoint().Size < 200; {
		if time.Now().After(deadline) || t.Failed() {
			close(stop)
			wait()
			t.Fatalf("the load did not get going (size %d)", f.log.Checkpoint().Size)
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	backup, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET backup: %v %v", resp.Status, err)
	}
	// The log moves on past the backup (whose size is at most this one's).
	for after, deadline := f.log.Checkpoint().Size, time.Now().Add(3*time.Minute); f.log.Checkpoint().Size <= after; {
		if time.Now().After(deadline) || t.Failed() {
			close(stop)
			wait()
			t.Fatalf("the load stopped after the backup (size %d)", after)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	accepted := wait()
	live := f.log.Checkpoint()

	v, err := note.NewVerifier(f.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	info, err := ReadBackup(bytes.NewReader(backup), v, nil)
	if err != nil {
		t.Fatalf("ReadBackup: %v", err)
	}
	cp := info.Checkpoint
	t.Logf("backup at %d entries (%d records, %d bytes); live log at %d after %d loaded appends", cp.Size, info.Records, info.Bytes, live.Size, accepted)
	if cp.Size < 200 || cp.Size >= live.Size {
		t.Fatalf("backup at size %d, live at %d: not taken under load", cp.Size, live.Size)
	}

	// Restore, with the log key kept separately.
	key, err := os.ReadFile(filepath.Join(f.dir, LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	rinfo, err := Restore(ctx, bytes.NewReader(backup), dir, string(key), RestoreOptions{Audit: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rinfo.Audit.Verified || len(rinfo.Audit.Discrepancies) != 0 || rinfo.Audit.Size != cp.Size {
		t.Fatalf("restore audit: %+v", rinfo.Audit)
	}
	if fi, err := os.Stat(filepath.Join(dir, LogKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored log key: %v %v", fi, err)
	}

	// Open it as serve would (same trust anchors: nothing is appended).
	l2 := openTestLog(t, dir, f.registrar, f.withAdmin)
	defer l2.Close()
	got := l2.Checkpoint()
	if got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) {
		t.Fatalf("restored log at %d/%x, backup at %d/%x", got.Size, got.Root, cp.Size, cp.Root)
	}
	// Audit the restored log from its own entries, as `warrant audit` does.
	var export bytes.Buffer
	next := uint64(0)
	var pending [][]byte
	err = proofs.WriteExport(&export, got, func() ([]byte, error) {
		if len(pending) == 0 {
			var err error
			if pending, err = l2.Entries(ctx, next, MaxEntriesPerRead); err != nil {
				return nil, err
			}
		}
		leaf := pending[0]
		pending = pending[1:]
		next++
		return leaf, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	report, err := proofs.AuditExport(&export, v, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !report.Verified || len(report.Discrepancies) != 0 {
		t.Fatalf("audit of the restored log: %+v", report.Discrepancies)
	}
	// The restored checkpoint is a prefix of the live log.
	proof, _, err := f.log.ConsistencyProof(ctx, got.Size, live.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proofs.VerifyConsistency(got.Size, live.Size, proof, got.Root, live.Root); err != nil {
		t.Fatalf("restored checkpoint is not consistent with the live log: %v", err)
	}
	// And the restored log takes appends again.
	if _, err := l2.Append(ctx, signDelegation(t, f.human, delegation("dlg_after", humanID, agentID, "nonce-after"))); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefuses: the wrong log key, a damaged or truncated backup, and
// a non-empty target are refused, leaving nothing behind.
func TestRestoreRefuses(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	var buf bytes.Buffer
	if _, err := f.log.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	backup := buf.Bytes()
	key, err := os.ReadFile(filepath.Join(f.dir, LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	other := openTestLog(t, otherDir, nil, nil)
	other.Close()
	otherKey, err := os.ReadFile(filepath.Join(otherDir, LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(backup)
	flipped[len(flipped)/2] ^= 1
	cases := []struct {
		name   string
		data   []byte
		key    []byte
		reason string
	}{
		{"wrong key", backup, otherKey, ReasonBackupKeyMismatch},
		{"truncated", backup[:len(backup)-40], key, ReasonBackupMalformed},
		{"no trailer hash", backup[:len(backup)-32], key, ReasonBackupMalformed},
		{"flipped bit", flipped, key, ""},
		{"trailing data", append(bytes.Clone(backup), 0), key, ReasonBackupMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			_, err := Restore(ctx, bytes.NewReader(c.data), dir, string(c.key), RestoreOptions{Logger: quietLogger()})
			if err == nil {
				t.Fatal("restored")
			}
			if c.reason != "" && proofs.Reason(err) != c.reason {
				t.Fatalf("reason %q, want %q: %v", proofs.Reason(err), c.reason, err)
			}
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Fatalf("a failed restore left %s behind (%v)", dir, err)
			}
		})
	}
	// A non-empty target is refused and left alone.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600)
	if _, err := Restore(ctx, bytes.NewReader(backup), dir, string(key), RestoreOptions{Logger: quietLogger()}); proofs.Reason(err) != ReasonRestoreTarget {
		t.Fatalf("non-empty target: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Fatal(err)
	}
	// An empty existing directory is fine.
	if _, err := Restore(ctx, bytes.NewReader(backup), t.TempDir(), string(key), RestoreOptions{Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
}

// TestBackupHandlerOneAtATime: a second concurrent backup is refused with
// 503, and a closed log refuses backups.
func TestBackupHandlerOneAtATime(t *testing.T) {
	f := newFixture(t, nil)
	h := BackupHandler(f.log, BackupOptions{})
	// Hold the first backup by blocking its writer.
	block := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), started: started, block: block}
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/backup", nil))
	}()
	<-started
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/backup", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(rec.Body.String(), "backup_in_progress") {
		t.Fatalf("second backup: %d %q", rec.Code, rec.Body.String())
	}
	close(block)
	<-done
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/backup", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
	closed := openTestLog(t, t.TempDir(), nil, nil)
	closed.Close()
	if _, err := closed.Backup(context.Background(), io.Discard); proofs.Reason(err) != ReasonShuttingDown {
		t.Fatalf("backup of a closed log: %v", err)
	}
}

type blockingWriter struct {
	*httptest.ResponseRecorder
	once    sync.Once
	started chan struct{}
	block   chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.started); <-b.block })
	return b.ResponseRecorder.Write(p)
}

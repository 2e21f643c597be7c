package ledger

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// TestBackupRequiresAdmin: on a listener that demands it, a backup is
// served only for a fresh request signed by an admin key of this log, for
// this path, once. Everything else is refused 401 admin_auth_invalid and
// streams nothing.
func TestBackupRequiresAdmin(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	now := time.Now().Truncate(time.Second)
	start := now.Add(-10 * time.Second)
	clock.Store(&start)
	f := newFixture(t, func(o *Options) { o.Now = func() time.Time { return *clock.Load() } })
	srv := httptest.NewServer(BackupHandler(f.log, BackupOptions{RequireAdmin: true}))
	defer srv.Close()
	clock.Store(&now)
	origin := f.log.Origin()

	get := func(sign func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/backup", nil)
		if sign != nil {
			sign(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != proofs.AdminAuthScheme {
			t.Errorf("401 without WWW-Authenticate: %s", proofs.AdminAuthScheme)
		}
		return resp.StatusCode, string(body)
	}
	signed := func(key *testKey, origin, path string, at time.Time) func(*http.Request) {
		return func(r *http.Request) {
			signReq, _ := http.NewRequest(r.Method, srv.URL+path, nil)
			if err := key.signer.AuthorizeAdmin(signReq, origin, at); err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", signReq.Header.Get("Authorization"))
		}
	}
	refused := func(what string, sign func(*http.Request), want string) {
		t.Helper()
		code, body := get(sign)
		if code != http.StatusUnauthorized || !strings.HasPrefix(body, proofs.ReasonAdminAuth+": ") || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q, want 401 %s mentioning %q", what, code, body, proofs.ReasonAdminAuth, want)
		}
	}

	refused("no credential", nil, "Authorization header")
	refused("junk", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, proofs.AdminAuthScheme)
	refused("a registrar's key", signed(f.registrar, origin, "/backup", now), "not an admin key")
	refused("signed for another log", signed(f.admin, "other.example/log", "/backup", now), "does not verify")
	refused("signed for another path", signed(f.admin, origin, "/metrics", now), "does not verify")
	refused("too old", signed(f.admin, origin, "/backup", now.Add(-2*proofs.AdminRequestWindow)), "more than")
	refused("from the future", signed(f.admin, origin, "/backup", now.Add(2*proofs.AdminRequestWindow)), "more than")
	// Used nonces live in memory: a request signed before the server
	// started may have been served by an earlier run, so it is refused.
	refused("signed before the server started", signed(f.admin, origin, "/backup", start.Add(-time.Second)), "before this server started")
	tampered := func(r *http.Request) {
		signed(f.admin, origin, "/backup", now)(r)
		h := r.Header.Get("Authorization")
		i := strings.LastIndexByte(h, ' ') + 2
		c := byte('A')
		if h[i] == 'A' {
			c = 'B'
		}
		r.Header.Set("Authorization", h[:i]+string(c)+h[i+1:])
	}
	refused("a tampered signature", tampered, "")

	var header string
	code, body := get(func(r *http.Request) {
		signed(f.admin, origin, "/backup", now)(r)
		header = r.Header.Get("Authorization")
	})
	if code != http.StatusOK {
		t.Fatalf("admin-signed backup: %d %q", code, body)
	}
	v, err := note.NewVerifier(f.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBackup(strings.NewReader(body), v, nil); err != nil {
		t.Fatalf("the admin's backup does not read back: %v", err)
	}
	refused("a replay", func(r *http.Request) { r.Header.Set("Authorization", header) }, "replayed")

	// The server's clock decides freshness: a minute later the same
	// signature time is still inside the window, two minutes later not.
	later := now.Add(30 * time.Second)
	clock.Store(&later)
	if code, body := get(signed(f.admin, origin, "/backup", now)); code != http.StatusOK {
		t.Fatalf("inside the window by the server's clock: %d %q", code, body)
	}

	// A log without admin keys serves no backup on such a listener.
	bare := openTestLog(t, t.TempDir(), nil, nil)
	defer bare.Close()
	bareSrv := httptest.NewServer(BackupHandler(bare, BackupOptions{RequireAdmin: true}))
	defer bareSrv.Close()
	resp, err := http.Get(bareSrv.URL + "/backup")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(msg), "--admin-key") {
		t.Fatalf("backup from a log without admin keys: %d %q", resp.StatusCode, msg)
	}
}

// FuzzAdminAuthorization: the header parser never panics, and what it
// accepts formats back to the same bytes (one spelling per request).
func FuzzAdminAuthorization(f *testing.F) {
	f.Add("Warrant-Admin sha256:" + strings.Repeat("ab", 32) + " 1700000000 " + strings.Repeat("0f", 16) + " AAAA")
	f.Add("Warrant-Admin sha256:" + strings.Repeat("AB", 32) + " 01 x y")
	f.Add("Warrant-Admin  a b c d")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := proofs.ParseAdminAuthorization(h)
		if err != nil {
			if proofs.Reason(err) != proofs.ReasonAdminAuth {
				t.Fatalf("error without its reason: %v", err)
			}
			return
		}
		if got := proofs.FormatAdminAuthorization(a); got != h {
			t.Fatalf("accepted %q, formats as %q", h, got)
		}
	})
}

// TestBackupSlowReaderBounded: a reader that never reads holds the backup
// slot only until the handler's MaxDuration; then the next backup runs.
func TestBackupSlowReaderBounded(t *testing.T) {
	f := newFixture(t, nil)
	h := BackupHandler(f.log, BackupOptions{MaxDuration: 200 * time.Millisecond})
	done := make(chan struct{})
	stalled := &stallingWriter{ResponseRecorder: httptest.NewRecorder()}
	go func() {
		defer close(done)
		defer func() { recover() }() // the aborted response (http.ErrAbortHandler)
		h.ServeHTTP(stalled, httptest.NewRequest(http.MethodGet, "/backup", nil))
	}()
	<-done // returns: the write deadline never lies past MaxDuration
	if stalled.deadline.IsZero() || stalled.deadline.Sub(stalled.setAt) > 200*time.Millisecond {
		t.Fatalf("write deadline %v, set at %v: past the backup's MaxDuration", stalled.deadline, stalled.setAt)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/backup", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("the backup after a stalled one: %d %q", rec.Code, rec.Body.String())
	}
}

// stallingWriter is a response whose client never reads: a write blocks
// until the write deadline the handler set, as a real connection's would,
// and then fails.
type stallingWriter struct {
	*httptest.ResponseRecorder
	deadline, setAt time.Time
}

func (s *stallingWriter) SetWriteDeadline(t time.Time) error {
	s.deadline, s.setAt = t, time.Now()
	return nil
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	if s.deadline.IsZero() {
		select {} // a writer without a deadline would hang here forever
	}
	time.Sleep(time.Until(s.deadline))
	return 0, os.ErrDeadlineExceeded
}

// TestBackupNonceNotReplayedAfterRestart: used nonces are remembered in
// memory, so a request signed before the server started (which an earlier
// run may have served) is refused by the restarted server, even within the
// time window (found by the security review of issue 11).
func TestBackupNonceNotReplayedAfterRestart(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	t0 := time.Now().Truncate(time.Second)
	clock.Store(&t0)
	f := newFixture(t, func(o *Options) { o.Now = func() time.Time { return *clock.Load() } })
	first := BackupHandler(f.log, BackupOptions{RequireAdmin: true})
	signedAt := t0.Add(2 * time.Second)
	clock.Store(&signedAt)
	req, _ := http.NewRequest(http.MethodGet, "http://log.example/backup", nil)
	if err := f.admin.signer.AuthorizeAdmin(req, f.log.Origin(), signedAt); err != nil {
		t.Fatal(err)
	}
	use := func(h http.Handler) (int, string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/backup", nil)
		r.Header.Set("Authorization", req.Header.Get("Authorization"))
		h.ServeHTTP(rec, r)
		return rec.Code, rec.Body.String()
	}
	if code, body := use(first); code != http.StatusOK {
		t.Fatalf("first use: %d %q", code, body)
	}
	restart := signedAt.Add(3 * time.Second) // within the window
	clock.Store(&restart)
	if code, body := use(BackupHandler(f.log, BackupOptions{RequireAdmin: true})); code != http.StatusUnauthorized || !strings.Contains(body, "before this server started") {
		t.Fatalf("the same request after a restart: %d %q, want 401", code, body)
	}
}

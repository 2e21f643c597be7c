package client_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// reportServer serves a GET /witnesses the test sets (a status and body).
type reportServer struct {
	mu     sync.Mutex
	status int
	body   string
	gets   int
}

func (s *reportServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != "/witnesses" {
		http.NotFound(w, r)
		return
	}
	s.gets++
	w.WriteHeader(s.status)
	w.Write([]byte(s.body))
}

func (s *reportServer) set(status int, body string) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// report renders a GET /witnesses answer.
func report(t *testing.T, origin string, ws ...proofs.WitnessStatus) string {
	t.Helper()
	b, err := json.Marshal(proofs.WitnessReport{Origin: origin, Mode: "async", Size: 5, Witnesses: ws})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckWitnesses: the follower alerts once per witness conflict, not
// once per report of it (the server retries a conflicting witness and
// updates last_error_at every few seconds); keeps that across restarts in
// its state file; alerts again when the witness cosigned in between or
// changes from conflict to inconsistent; retries an alert its sink
// failed to take; ignores other failures; and treats a server without
// witnesses, an oversized report and a report about another log as what
// they are.
func TestCheckWitnesses(t *testing.T) {
	const origin = "test.example/log"
	_, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	srv := &reportServer{status: http.StatusNotFound}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	statePath := filepath.Join(t.TempDir(), "follower.state")
	c := client.New(ts.URL, v)
	open := func() *client.Follower {
		f, err := c.NewFollower(client.FollowerOptions{StatePath: statePath, Emit: func(context.Context, []client.Followed) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := open()
	ctx := context.Background()
	var got []string
	var failNext error
	alert := func(_ context.Context, wc *client.WitnessConflict) error {
		if err := failNext; err != nil {
			failNext = nil
			return err
		}
		if wc.Origin != origin || !json.Valid(wc.Report) || !strings.Contains(string(wc.Report), wc.Witness.Name) {
			t.Errorf("conflict %+v", wc)
		}
		got = append(got, wc.Witness.Name+" "+wc.Witness.LastErrorKind)
		return nil
	}
	check := func(want ...string) {
		t.Helper()
		got = nil
		n, err := f.CheckWitnesses(ctx, alert)
		if err != nil || n != len(want) || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("CheckWitnesses: %d %v, alerts %q; want %q", n, err, got, want)
		}
	}

	check() // 404: no witnesses, no error

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cosigned := at.Add(-time.Hour)
	ok := proofs.WitnessStatus{Name: "w1", URL: "http://w1", CosignedSize: 5, LastCosigned: cosigned}
	down := proofs.WitnessStatus{Name: "w2", URL: "http://w2", LastError: "connection refused", LastErrorKind: "unreachable", LastErrorAt: at}
	conflict := func(name string, kind string, at, cosigned time.Time) proofs.WitnessStatus {
		return proofs.WitnessStatus{Name: name, URL: "http://" + name, CosignedSize: 3, LastCosigned: cosigned,
			LastError: "the witness holds size 9, beyond this log's 5", LastErrorKind: kind, LastErrorAt: at}
	}
	srv.set(http.StatusOK, report(t, origin, ok, down))
	check() // other failures are not conflicts

	srv.set(http.StatusOK, report(t, origin, ok, down, conflict("w3", "conflict", at, cosigned)))
	check("w3 conflict")
	for i := range 3 { // retried by the server: a new last_error_at each time
		srv.set(http.StatusOK, report(t, origin, ok, down, conflict("w3", "conflict", at.Add(time.Duration(i+1)*5*time.Second), cosigned)))
		check()
	}
	// A restarted follower remembers it.
	f.Close()
	f = open()
	check()

	// A second witness conflicts; the sink fails to take its alert: it is
	// alerted at the next check, and the first is not repeated.
	srv.set(http.StatusOK, report(t, origin, ok, conflict("w2", "inconsistent", at, time.Time{}), conflict("w3", "conflict", at.Add(time.Minute), cosigned)))
	failNext = errors.New("sink down")
	got = nil
	if _, err := f.CheckWitnesses(ctx, alert); err == nil || !strings.Contains(err.Error(), "sink down") {
		t.Fatalf("a failed alert: %v", err)
	}
	check("w2 inconsistent")

	// w3 turns from conflict to inconsistent (the log grew past the
	// witness's size): a new finding.
	srv.set(http.StatusOK, report(t, origin, ok, conflict("w2", "inconsistent", at.Add(time.Minute), time.Time{}), conflict("w3", "inconsistent", at.Add(2*time.Minute), cosigned)))
	check("w3 inconsistent")

	// w2 cosigns again (no error), then conflicts again: alerted again.
	srv.set(http.StatusOK, report(t, origin, ok, proofs.WitnessStatus{Name: "w2", LastCosigned: at.Add(3 * time.Minute)}, conflict("w3", "inconsistent", at.Add(3*time.Minute), cosigned)))
	check()
	srv.set(http.StatusOK, report(t, origin, ok, conflict("w2", "inconsistent", at.Add(4*time.Minute), at.Add(3*time.Minute)), conflict("w3", "inconsistent", at.Add(4*time.Minute), cosigned)))
	check("w2 inconsistent")
	// Without the recovery being seen, a later last_cosigned is a new
	// conflict too.
	srv.set(http.StatusOK, report(t, origin, ok, conflict("w2", "inconsistent", at.Add(6*time.Minute), at.Add(5*time.Minute)), conflict("w3", "inconsistent", at.Add(6*time.Minute), cosigned)))
	check("w2 inconsistent")

	// Not a report about this log; too large; not JSON: errors, no alert,
	// the remembered conflicts kept.
	for _, body := range []string{
		report(t, "other.example/log", conflict("w9", "conflict", at, cosigned)),
		`{"origin":"` + origin + `","witnesses":[` + strings.Repeat(" ", 2<<20) + `]}`,
		`<html>`,
	} {
		srv.set(http.StatusOK, body)
		got = nil
		if n, err := f.CheckWitnesses(ctx, alert); err == nil || n != 0 || len(got) != 0 {
			t.Fatalf("report %.40q: %d %v %q", body, n, err, got)
		} else if reason := proofs.Reason(err); reason != client.ReasonMismatch && reason != client.ReasonResponseTooLarge {
			t.Fatalf("report %.40q: reason %q (%v)", body, reason, err)
		}
	}
	srv.set(http.StatusOK, report(t, origin, ok, conflict("w2", "inconsistent", at.Add(7*time.Minute), at.Add(5*time.Minute)), conflict("w3", "inconsistent", at.Add(7*time.Minute), cosigned)))
	check()
	if st := f.State(); len(st.Witnesses) != 2 {
		t.Fatalf("state keeps %v", st.Witnesses)
	}
	// The witnesses recover: the state forgets them.
	srv.set(http.StatusOK, report(t, origin, ok))
	check()
	if st := f.State(); st.Witnesses != nil {
		t.Fatalf("state keeps %v", st.Witnesses)
	}
	f.Close()
}

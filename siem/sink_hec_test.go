package siem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/siem"
)

const sinkTestToken = "11111111-2222-3333-4444-555555555555"

type sinkTestHECEvent struct {
	Time       json.Number     `json:"time"`
	Sourcetype string          `json:"sourcetype"`
	Source     string          `json:"source"`
	Event      json.RawMessage `json:"event"`
}

// sinkTestHEC is a HEC receiver: handler decides each answer from the
// request number (1-based); accepted events are recorded.
type sinkTestHEC struct {
	srv      *httptest.Server
	requests atomic.Int32

	mu     sync.Mutex
	events []sinkTestHECEvent
	sizes  []int
	counts []int
	errs   []string
}

func sinkTestNewHEC(t *testing.T, answer func(n int) (int, string)) *sinkTestHEC {
	t.Helper()
	h := &sinkTestHEC{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(h.requests.Add(1))
		body, err := io.ReadAll(r.Body)
		if err != nil {
			h.fail("reading body: %v", err)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/services/collector/event" {
			h.fail("%s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Splunk "+sinkTestToken {
			h.fail("Authorization = %q", got)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"text":"Token is required","code":2}`)
			return
		}
		var evs []sinkTestHECEvent
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		for {
			var ev sinkTestHECEvent
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				h.fail("decoding events: %v", err)
				return
			}
			evs = append(evs, ev)
		}
		status, resp := answer(n)
		if status == http.StatusOK {
			h.mu.Lock()
			h.events = append(h.events, evs...)
			h.sizes = append(h.sizes, len(body))
			h.counts = append(h.counts, len(evs))
			h.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, resp)
	}))
	t.Cleanup(func() {
		h.srv.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.errs {
			t.Error("HEC receiver: " + e)
		}
	})
	return h
}

func (h *sinkTestHEC) fail(format string, args ...any) {
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *sinkTestHEC) url() string { return h.srv.URL + "/services/collector/event" }

func (h *sinkTestHEC) sink() siem.Sink {
	return siem.HEC(h.url(), sinkTestToken, h.srv.Client())
}

const sinkTestHECOK = `{"text":"Success","code":0}`

func sinkTestAlwaysOK(int) (int, string) { return http.StatusOK, sinkTestHECOK }

func TestHECSinkDelivers(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	s := h.sink()
	defer s.Close()
	recs := sinkTestRecords(
		`{"class_uid":3005,"time":1714557600123,"metadata":{"uid":"o/0"},"message":"<b>&"}`,
		`CEF:0|warrantlog|warrant|0.1.0|delegation|accepted|3|rt=1714557600123 msg=a\=b`,
		`{"class_uid":6003,"metadata":{"uid":"o/2"}}`,
		`<134>1 2024-05-01T10:00:00.123Z host warrant - - - "quoted" <tag>`,
		`{"time":"not a number"}`,
		`{"time":5}`,
	)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) != len(recs) {
		t.Fatalf("%d events, want %d", len(h.events), len(recs))
	}
	want := []struct{ time, sourcetype string }{
		{"1714557600.123", "warrant:ocsf"},
		{"", "warrant:cef"},
		{"", "warrant:ocsf"},
		{"", "warrant:syslog"},
		{"", "warrant:ocsf"},
		{"0.005", "warrant:ocsf"},
	}
	for i, ev := range h.events {
		if string(ev.Time) != want[i].time || ev.Sourcetype != want[i].sourcetype || ev.Source != "warrant" {
			t.Errorf("event %d: time %q sourcetype %q source %q, want %q %q warrant", i, ev.Time, ev.Sourcetype, ev.Source, want[i].time, want[i].sourcetype)
		}
		if json.Valid(recs[i]) {
			if string(ev.Event) != string(recs[i]) {
				t.Errorf("event %d: %s, want the record verbatim %s", i, ev.Event, recs[i])
			}
		} else {
			var s string
			if err := json.Unmarshal(ev.Event, &s); err != nil || s != string(recs[i]) {
				t.Errorf("event %d: %s, want the record as a string", i, ev.Event)
			}
		}
	}
}

func TestHECSinkRetriesServerBusy(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, func(n int) (int, string) {
		if n <= 2 {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`
		}
		return http.StatusOK, sinkTestHECOK
	})
	s := siem.WithRetry(h.sink(), 5, time.Millisecond)
	defer s.Close()
	recs := sinkTestRecords(`{"metadata":{"uid":"o/0"}}`, `{"metadata":{"uid":"o/1"}}`, `{"metadata":{"uid":"o/2"}}`)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n := h.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range h.events {
		seen[string(ev.Event)] = true
	}
	for _, r := range recs {
		if !seen[string(r)] {
			t.Fatalf("record %s lost", r)
		}
	}
}

func TestHECSinkRetries429(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, func(n int) (int, string) {
		if n == 1 {
			return http.StatusTooManyRequests, `{"text":"Too many requests","code":9}`
		}
		return http.StatusOK, sinkTestHECOK
	})
	raw := h.sink()
	err := raw.Write(ctx, sinkTestRecords("x"))
	if err == nil || errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("429: err = %v, want retryable", err)
	}
	s := siem.WithRetry(raw, 3, time.Millisecond)
	defer s.Close()
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	if n := h.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestHECSinkPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
	}{
		{http.StatusUnauthorized, `{"text":"Invalid token ` + sinkTestToken + `","code":4}`},
		{http.StatusForbidden, `{"text":"Invalid token","code":4}`},
		{http.StatusBadRequest, `{"text":"Invalid data format","code":6}`},
		{http.StatusOK, `<html>not HEC</html>`},
		{http.StatusOK, `{"text":"Incorrect index","code":7}`},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			ctx := sinkTestCtx(t)
			h := sinkTestNewHEC(t, func(int) (int, string) { return tc.status, tc.body })
			s := siem.WithRetry(h.sink(), 10, 50*time.Millisecond)
			defer s.Close()
			err := s.Write(ctx, sinkTestRecords(`{"a":1}`))
			if !errors.Is(err, siem.ErrPermanent) {
				t.Fatalf("err = %v, want permanent", err)
			}
			if n := h.requests.Load(); n != 1 {
				t.Fatalf("%d requests, want 1 (no retry)", n)
			}
			if strings.Contains(err.Error(), sinkTestToken) {
				t.Fatalf("error text carries the token: %v", err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.status)) {
				t.Fatalf("error text %q does not name the status", err)
			}
		})
	}
}

func TestHECSinkWrongTokenNotLeaked(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	const wrong = "wrong-token-do-not-print"
	s := siem.WithRetry(siem.HEC(h.url(), wrong, h.srv.Client()), 5, time.Millisecond)
	err := s.Write(ctx, sinkTestRecords("x"))
	h.mu.Lock()
	h.errs = nil // the receiver reported the wrong token: expected
	h.mu.Unlock()
	if !errors.Is(err, siem.ErrPermanent) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("err = %v, want permanent without the token", err)
	}
}

func TestHECSinkSplitsLargeBatches(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	s := h.sink()
	defer s.Close()
	var recs [][]byte
	for i := 0; i < 7; i++ {
		recs = append(recs, []byte(fmt.Sprintf(`{"time":%d,"i":%d,"pad":"%s"}`, 1000+i, i, strings.Repeat("p", 200<<10))))
	}
	recs = append(recs, bytes.Repeat([]byte{'c'}, 1200<<10)) // larger than the bound: goes alone
	recs = append(recs, []byte("CEF:0|tail"))
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sizes) < 4 {
		t.Fatalf("%d requests (%v bytes), want the batch split", len(h.sizes), h.sizes)
	}
	for i, n := range h.sizes {
		if n > 1<<20 && h.counts[i] != 1 {
			t.Fatalf("request %d has %d events in %d bytes, above the 1 MiB bound", i, h.counts[i], n)
		}
	}
	if len(h.events) != len(recs) {
		t.Fatalf("%d events, want %d", len(h.events), len(recs))
	}
	for i, ev := range h.events { // in order, none lost
		if json.Valid(recs[i]) {
			if string(ev.Event) != string(recs[i]) {
				t.Fatalf("event %d out of order or altered", i)
			}
		} else {
			var s string
			if json.Unmarshal(ev.Event, &s) != nil || s != string(recs[i]) {
				t.Fatalf("event %d out of order or altered", i)
			}
		}
	}
}

func TestHECSinkContextCancelStopsRetries(t *testing.T) {
	h := sinkTestNewHEC(t, func(int) (int, string) {
		return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`
	})
	s := siem.WithRetry(h.sink(), 1000, 10*time.Millisecond)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := s.Write(ctx, sinkTestRecords("x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// 1,000 retries from 10 ms would take hours: returning at all shows
	// the cancellation ended them.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("returned after %v", d)
	}
	n := h.requests.Load()
	time.Sleep(50 * time.Millisecond)
	if h.requests.Load() != n {
		t.Fatal("requests continued after cancellation")
	}
}

func TestHECSinkNetworkErrorIsRetryable(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	url, client := h.url(), h.srv.Client()
	h.srv.Close()
	err := siem.HEC(url, sinkTestToken, client).Write(ctx, sinkTestRecords("x"))
	if err == nil || errors.Is(err, siem.ErrPermanent) || strings.Contains(err.Error(), sinkTestToken) {
		t.Fatalf("err = %v, want retryable without the token", err)
	}
}

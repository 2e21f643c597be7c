package siem

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// hecMaxBody bounds a request body; a larger batch is split over
	// several requests. A single event larger than this goes alone.
	hecMaxBody = 1 << 20
	// hecMaxResponse bounds how much of a response is read.
	hecMaxResponse   = 64 << 10
	hecClientTimeout = 60 * time.Second
	hecDefaultPath   = "/services/collector/event"
)

// HEC returns a sink posting records to a Splunk HTTP Event Collector
// endpoint (e.g. https://splunk:8088/services/collector/event) with the
// header "Authorization: Splunk <token>". The body is one JSON object per
// record, newline-separated:
//
//	{"time":<s.ms>,"sourcetype":"warrant:ocsf","source":"warrant","event":<record>}
//
// "event" is the record itself when it is valid JSON, else the record as a
// JSON string; "time" is the record's OCSF "time" (integer milliseconds)
// in seconds with millisecond precision, omitted when the record has
// none; "sourcetype" is warrant:ocsf for a JSON object, warrant:cef for a
// CEF line, warrant:syslog for an RFC 5424 line, and warrant otherwise.
//
// A batch is split into requests of at most 1 MiB (an event larger than
// that goes alone), sent in order; Write stops at the first failure. A
// request succeeds only on HTTP 200 with {"code":0}. Any other 2xx or 3xx
// answer, and 4xx other than 408 and 429, is permanent (ErrPermanent);
// 408, 429, 5xx and network errors are retryable, and a Retry-After is
// passed on to WithRetry. Without indexer acknowledgement (not used here)
// code 0 means HEC accepted the events, not that they are indexed.
//
// A nil client means a client with a 60 s timeout that follows no
// redirects. The token never appears in errors: any response text that
// echoes it is redacted.
func HEC(endpoint string, token string, client *http.Client) Sink {
	own := false
	if client == nil {
		client = hecNewClient(nil)
		own = true
	}
	return &hecSink{endpoint: endpoint, token: token, client: client, ownClient: own}
}

// hecNewClient is the client Open and HEC(nil) use: its own transport
// (with tlsConfig, if any), a timeout, and no redirects: a redirected POST
// would be replayed as a GET, or carry the token elsewhere.
func hecNewClient(tlsConfig *tls.Config) *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig.Clone()
	}
	return &http.Client{
		Transport: tr,
		Timeout:   hecClientTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type hecSink struct {
	endpoint  string
	token     string
	client    *http.Client
	ownClient bool
	closed    atomic.Bool
}

func (s *hecSink) Write(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errSinkClosed
	}
	if len(records) == 0 {
		return nil
	}
	if s.token == "" {
		return Permanent(errors.New("siem: hec: no token configured"))
	}
	body := make([]byte, 0, 64<<10)
	for _, r := range records {
		ev, err := hecEvent(r)
		if err != nil {
			return Permanent(fmt.Errorf("siem: hec: encoding an event: %w", err))
		}
		if len(body) > 0 && len(body)+len(ev) > hecMaxBody {
			if err := s.post(ctx, body); err != nil {
				return err
			}
			body = body[:0]
		}
		body = append(body, ev...)
	}
	return s.post(ctx, body)
}

// hecEvent renders one record as a HEC event object followed by a newline.
func hecEvent(record []byte) ([]byte, error) {
	buf := make([]byte, 0, len(record)+96)
	buf = append(buf, '{')
	isJSON := json.Valid(record)
	sourcetype := "warrant"
	trimmed := bytes.TrimLeft(record, " \t\r\n")
	switch {
	case isJSON && len(trimmed) > 0 && trimmed[0] == '{':
		sourcetype = "warrant:ocsf"
		if t, ok := hecTime(record); ok {
			buf = append(buf, `"time":`...)
			buf = append(buf, t...)
			buf = append(buf, ',')
		}
	case bytes.HasPrefix(record, []byte("CEF:")):
		sourcetype = "warrant:cef"
	case hecLooksSyslog(record):
		sourcetype = "warrant:syslog"
	}
	buf = append(buf, `"sourcetype":"`...)
	buf = append(buf, sourcetype...)
	buf = append(buf, `","source":"warrant","event":`...)
	if isJSON {
		buf = append(buf, record...)
	} else {
		var sb bytes.Buffer
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(string(record)); err != nil {
			return nil, err
		}
		buf = append(buf, bytes.TrimRight(sb.Bytes(), "\n")...)
	}
	buf = append(buf, '}', '\n')
	return buf, nil
}

// hecTime is the record's top-level "time" (OCSF: integer milliseconds
// since the epoch) as seconds with three decimals.
func hecTime(record []byte) (string, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(record, &top); err != nil {
		return "", false
	}
	raw, ok := top["time"]
	if !ok {
		return "", false
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < 0 {
		return "", false
	}
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000), true
}

// hecLooksSyslog recognises an RFC 5424 line: "<PRI>VERSION ".
func hecLooksSyslog(r []byte) bool {
	if len(r) < 4 || r[0] != '<' {
		return false
	}
	i := 1
	for i < len(r) && i <= 4 && r[i] >= '0' && r[i] <= '9' {
		i++
	}
	return i > 1 && i < len(r)-1 && r[i] == '>' && r[i+1] >= '1' && r[i+1] <= '9'
}

func (s *hecSink) redact(msg string) string {
	if s.token != "" {
		msg = strings.ReplaceAll(msg, s.token, "[REDACTED]")
	}
	return msg
}

func (s *hecSink) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("siem: hec: %s", s.redact(err.Error())))
	}
	req.Header.Set("Authorization", "Splunk "+s.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", Product+"/"+ProductVersion)
	resp, err := s.client.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("siem: hec: %w", cerr)
		}
		return &hecError{msg: "siem: hec: " + s.redact(err.Error()), err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, hecMaxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	var ack struct {
		Text string `json:"text"`
		Code *int   `json:"code"`
	}
	jerr := json.Unmarshal(raw, &ack)
	if resp.StatusCode == http.StatusOK && jerr == nil && ack.Code != nil && *ack.Code == 0 {
		return nil
	}
	detail := hecSnippet(raw)
	if jerr == nil && ack.Code != nil {
		detail = fmt.Sprintf("%s (code %d)", hecSnippet([]byte(ack.Text)), *ack.Code)
	}
	msg := s.redact(fmt.Sprintf("siem: hec: HTTP %d: %s", resp.StatusCode, detail))
	switch sc := resp.StatusCode; {
	case sc == http.StatusTooManyRequests || sc == http.StatusRequestTimeout || sc >= 500:
		var e error = &hecError{msg: msg}
		if d := hecRetryAfter(resp.Header.Get("Retry-After")); d > 0 {
			e = &retryAfterError{err: e, after: d}
		}
		return e
	default:
		return Permanent(&hecError{msg: msg})
	}
}

type hecError struct {
	msg string
	err error
}

func (e *hecError) Error() string { return e.msg }
func (e *hecError) Unwrap() error { return e.err }

// hecSnippet is a short, printable excerpt of a response for an error.
func hecSnippet(b []byte) string {
	const limit = 200
	s := strings.TrimSpace(string(b))
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "empty response"
	}
	return strconv.Quote(s)
}

func hecRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func (s *hecSink) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

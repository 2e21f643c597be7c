package siem

// Sinks: stdout, append-only files, syslog over TCP or TLS (RFC 5425
// octet counting) and Splunk's HTTP Event Collector, plus a retrying
// wrapper and Open, which turns the CLI's --out value into a Sink.
//
// Every sink follows the Sink contract: Write returns nil only once the
// whole batch is handed over, and after an error the caller retries the
// whole batch (duplicates are possible, losses are not). No sink ever
// logs or echoes record contents, and the HEC token never appears in an
// error.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrPermanent marks a delivery error that retrying the same batch cannot
// fix (a rejected token, a malformed request, a record a sink cannot
// carry, a closed sink). Test with errors.Is(err, ErrPermanent). Any other
// error from a sink is worth retrying.
var ErrPermanent = errors.New("permanent delivery failure")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds and
// WithRetry does not retry it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() + " (permanent)" }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// retryAfterError carries a receiver's Retry-After hint to WithRetry.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

var errSinkClosed = Permanent(errors.New("siem: sink is closed"))

// sinkCheckLines refuses records that would break line framing: the
// Format contract makes every record one line, so a line break inside one
// is a bug upstream, and writing it would turn one event into two broken
// lines.
func sinkCheckLines(records [][]byte) error {
	for i, r := range records {
		if bytes.IndexByte(r, '\n') >= 0 {
			return Permanent(fmt.Errorf("siem: record %d of the batch contains a line break", i))
		}
	}
	return nil
}

// sinkLines is the batch as newline-terminated lines, in one buffer.
func sinkLines(prefix []byte, records [][]byte) []byte {
	n := len(prefix)
	for _, r := range records {
		n += len(r) + 1
	}
	buf := make([]byte, 0, n)
	buf = append(buf, prefix...)
	for _, r := range records {
		buf = append(buf, r...)
		buf = append(buf, '\n')
	}
	return buf
}

// ---------------------------------------------------------------- stdout

// Stdout returns a sink that writes each record and a newline to w (nil
// means os.Stdout), the whole batch in one Write call, and flushes w when
// it has a Flush() error method (a *bufio.Writer). Close flushes but does
// not close w. A record containing a line break is refused (permanent).
func Stdout(w io.Writer) Sink {
	if w == nil {
		w = os.Stdout
	}
	return &stdoutSink{w: w}
}

type stdoutSink struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (s *stdoutSink) Write(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sinkCheckLines(records); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	if len(records) > 0 {
		if _, err := s.w.Write(sinkLines(nil, records)); err != nil {
			return fmt.Errorf("siem: stdout: %w", err)
		}
	}
	return s.flush()
}

func (s *stdoutSink) flush() error {
	if f, ok := s.w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return fmt.Errorf("siem: stdout: flush: %w", err)
		}
	}
	return nil
}

func (s *stdoutSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.flush()
}

// ------------------------------------------------------------------ file

// File returns a sink appending to the file at path, created with mode
// 0600 if it does not exist (an existing file keeps its mode; a new file's
// directory is synced too). Each record is written followed by a newline;
// a Write is a single write call of the whole batch followed by fsync, and
// returns only after the fsync.
//
// Crash behaviour: a crash during a Write leaves a prefix of the batch in
// the file, possibly ending in a torn, unterminated line. Before writing
// to a file it has not yet written successfully (on open, and after any
// failed Write) the sink checks the file's last byte and, if it is not a
// newline, first writes one, so a torn fragment stays on its own line and
// never glues onto the retried records. Readers should skip lines that do
// not parse; the retried batch repeats the lost records in full.
// A record containing a line break is refused (permanent).
func File(path string) (Sink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if errors.Is(err, fs.ErrPermission) {
			// Write-only access still allows appending; the torn-line
			// check is then skipped.
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				return &fileSink{f: f, path: path, noTail: true}, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("siem: file sink: %w", err)
	}
	if created {
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("siem: file sink: %w", err)
		}
		fileSyncDir(filepath.Dir(path))
	}
	return &fileSink{f: f, path: path, checkTail: !created}, nil
}

// fileSyncDir makes a new directory entry durable where the platform
// allows it (best effort: not every system can fsync a directory).
func fileSyncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

type fileSink struct {
	mu        sync.Mutex
	f         *os.File
	path      string
	checkTail bool // check for a torn last line before the next write
	noTail    bool // opened write-only: cannot check
	closed    bool
}

func (s *fileSink) Write(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sinkCheckLines(records); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	if len(records) == 0 {
		return nil
	}
	var prefix []byte
	if s.checkTail && !s.noTail {
		torn, err := s.tornTail()
		if err != nil {
			return fmt.Errorf("siem: file %s: %w", s.path, err)
		}
		if torn {
			prefix = []byte{'\n'}
		}
	}
	s.checkTail = true // until this Write has succeeded
	if _, err := s.f.Write(sinkLines(prefix, records)); err != nil {
		return fmt.Errorf("siem: file %s: write: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("siem: file %s: fsync: %w", s.path, err)
	}
	s.checkTail = false
	return nil
}

// tornTail reports whether the file is non-empty and does not end in a
// newline.
func (s *fileSink) tornTail() (bool, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() == 0 {
		return false, nil
	}
	var b [1]byte
	if _, err := s.f.ReadAt(b[:], fi.Size()-1); err != nil {
		return false, err
	}
	return b[0] != '\n', nil
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// ---------------------------------------------------------------- syslog

const (
	syslogDialTimeout  = 30 * time.Second
	syslogWriteTimeout = 30 * time.Second
	// syslogProbeWait bounds the liveness probe before each Write on a
	// reused connection (see syslogConnAlive).
	syslogProbeWait = time.Millisecond
)

// SyslogTCP returns a sink sending each record as one syslog message over
// TCP with RFC 5425 / RFC 6587 octet-counting framing ("MSG-LEN SP
// SYSLOG-MSG"), so records may contain any byte, line breaks included.
// With a nil tlsConfig the connection is plain TCP, otherwise TLS (RFC
// 5425); an empty ServerName is taken from addr.
//
// The sink connects on the first Write and again after any error. Before
// writing on an existing connection it probes it for an orderly close or
// reset by the receiver and reconnects if so; a Write that fails on a
// reused connection is retried once on a fresh one. A Write returns nil
// once every frame has been written to the connection; write deadlines
// come from ctx, or 30 s. Syslog has no application-level
// acknowledgement: "handed over" means accepted by the local TCP/TLS
// stack, and a receiver that dies right after can still lose what it had
// not read. Empty records cannot be framed (MSG-LEN is at least 1) and are
// refused (permanent).
func SyslogTCP(addr string, tlsConfig *tls.Config) Sink {
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
	}
	return &syslogSink{addr: addr, tlsConfig: tlsConfig}
}

type syslogSink struct {
	addr      string
	tlsConfig *tls.Config

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

func (s *syslogSink) scheme() string {
	if s.tlsConfig != nil {
		return "syslog+tls"
	}
	return "syslog+tcp"
}

// syslogFrames octet-counts the batch into one buffer.
func syslogFrames(records [][]byte) ([]byte, error) {
	n := 0
	for i, r := range records {
		if len(r) == 0 {
			return nil, Permanent(fmt.Errorf("siem: syslog: record %d of the batch is empty and cannot be framed", i))
		}
		n += len(r) + 12
	}
	buf := make([]byte, 0, n)
	for _, r := range records {
		buf = strconv.AppendInt(buf, int64(len(r)), 10)
		buf = append(buf, ' ')
		buf = append(buf, r...)
	}
	return buf, nil
}

func (s *syslogSink) Write(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	frames, err := syslogFrames(records)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	if len(frames) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		reused := s.conn != nil
		if reused && !syslogConnAlive(s.conn) {
			s.dropConn()
			reused = false
		}
		if s.conn == nil {
			if err := s.dial(ctx); err != nil {
				return err
			}
		}
		err := s.writeAll(ctx, frames)
		if err == nil {
			return nil
		}
		s.dropConn()
		if reused && attempt == 0 && ctx.Err() == nil {
			continue // a stale connection: once more on a fresh one
		}
		return err
	}
}

func (s *syslogSink) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: syslogDialTimeout}
	var (
		c   net.Conn
		err error
	)
	if s.tlsConfig == nil {
		c, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		td := &tls.Dialer{NetDialer: d, Config: s.tlsConfig}
		c, err = td.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("siem: %s %s: connect: %w", s.scheme(), s.addr, err)
	}
	s.conn = c
	return nil
}

func (s *syslogSink) writeAll(ctx context.Context, frames []byte) error {
	c := s.conn
	deadline := time.Now().Add(syslogWriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("siem: %s %s: %w", s.scheme(), s.addr, err)
	}
	// Cancellation interrupts a blocked write.
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	// net.Conn.Write writes everything or returns an error; a tls.Conn
	// splits it into records and writes them all.
	if _, err := c.Write(frames); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("siem: %s %s: write: %w: %w", s.scheme(), s.addr, cerr, err)
		}
		return fmt.Errorf("siem: %s %s: write: %w", s.scheme(), s.addr, err)
	}
	return nil
}

// syslogConnAlive probes a connection the receiver never writes to (a
// syslog receiver sends nothing back): a read that times out means it is
// still open; EOF or an error means the receiver closed or reset it, and
// writing to it would silently lose the first records. Data the receiver
// does send (TLS session tickets, say) is consumed and ignored.
func syslogConnAlive(c net.Conn) bool {
	if err := c.SetReadDeadline(time.Now().Add(syslogProbeWait)); err != nil {
		return false
	}
	var buf [256]byte
	_, err := c.Read(buf[:])
	if err == nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *syslogSink) dropConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (s *syslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// ------------------------------------------------------------------- HEC

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

// ----------------------------------------------------------------- retry

const (
	retryMaxBackoff     = 30 * time.Second
	retryDefaultBackoff = 100 * time.Millisecond
)

// WithRetry returns a sink that tries s.Write up to attempts times in all
// (attempts < 1 means once), waiting between tries with exponential
// back-off from backoff (≤ 0 means 100 ms), doubled each time, with
// jitter (each wait is between half and all of the nominal one), capped
// at 30 s (or backoff, if larger), and stretched to a receiver's
// Retry-After within that cap. It stops at once on success, on a
// permanent error (ErrPermanent), and when ctx is done. Each try sends
// the whole batch again. The returned error is the last one, and also
// matches ctx.Err() when ctx ended the retries.
func WithRetry(s Sink, attempts int, backoff time.Duration) Sink {
	if attempts < 1 {
		attempts = 1
	}
	if backoff <= 0 {
		backoff = retryDefaultBackoff
	}
	return &retrySink{s: s, attempts: attempts, backoff: backoff}
}

type retrySink struct {
	s        Sink
	attempts int
	backoff  time.Duration
}

func (r *retrySink) Write(ctx context.Context, records [][]byte) error {
	var err error
	for i := 0; i < r.attempts; i++ {
		if i > 0 {
			t := time.NewTimer(retryDelay(r.backoff, i-1, err))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("siem: delivery abandoned: %w; last error: %w", ctx.Err(), err)
			case <-t.C:
			}
		}
		err = r.s.Write(ctx, records)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrPermanent) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("siem: delivery abandoned: %w; last error: %w", cerr, err)
		}
	}
	if r.attempts == 1 {
		return err
	}
	return fmt.Errorf("siem: delivery failed after %d attempts: %w", r.attempts, err)
}

// retryDelay is the wait before retry n (0-based) after err.
func retryDelay(base time.Duration, n int, err error) time.Duration {
	limit := max(retryMaxBackoff, base)
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	d = half + rand.N(d-half+1)
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if hint := ra.RetryAfter(); hint > d {
			d = min(hint, limit)
		}
	}
	return d
}

func (r *retrySink) Close() error { return r.s.Close() }

// ------------------------------------------------------------------ open

// OpenOptions configure Open.
type OpenOptions struct {
	// Stdout is where "-" writes (nil: os.Stdout).
	Stdout io.Writer
	// HECToken is the Splunk HEC token for http(s) outputs. The CLI reads
	// it from WARRANT_HEC_TOKEN or --hec-token-file, never from its
	// command line.
	HECToken string
	// TLS configures syslog+tls and https outputs (e.g. RootCAs for a
	// receiver with a private CA); nil means the system roots.
	TLS *tls.Config
	// RetryAttempts is the number of tries of a network sink's Write
	// (0: 5; 1 or less than 0: no retry).
	RetryAttempts int
	// RetryBackoff is the first back-off of the retries (0: 500 ms).
	RetryBackoff time.Duration
}

const (
	openDefaultAttempts = 5
	openDefaultBackoff  = 500 * time.Millisecond
)

// Open parses the CLI's --out value:
//
//   - stdout
//     syslog+tcp://host:port     syslog, octet-counted, plain TCP
//     syslog+tls://host:port     syslog, octet-counted, TLS (RFC 5425)
//     https://host[:port][/path] Splunk HEC (path default /services/collector/event)
//     http://host[:port][/path]  the same without TLS (the token travels in clear)
//     anything else              a file path, appended to
//
// A value that looks like a URL with another scheme is an error rather
// than a file name. Network sinks are wrapped in WithRetry with the
// options' attempts and back-off; stdout and file sinks are not (their
// errors are rarely transient).
func Open(spec string, opts OpenOptions) (Sink, error) {
	if spec == "" {
		return nil, errors.New("siem: empty output")
	}
	if spec == "-" {
		return Stdout(opts.Stdout), nil
	}
	scheme, ok := openScheme(spec)
	if !ok {
		return File(spec)
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("siem: output %q: %w", spec, err)
	}
	var s Sink
	switch scheme {
	case "syslog+tcp", "syslog+tls":
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("siem: output %q: a syslog output is %s://host:port and nothing more", spec, scheme)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("siem: output %q: a syslog output needs host:port", spec)
		}
		if scheme == "syslog+tcp" {
			s = SyslogTCP(u.Host, nil)
		} else {
			cfg := &tls.Config{MinVersion: tls.VersionTLS12}
			if opts.TLS != nil {
				cfg = opts.TLS.Clone()
			}
			s = SyslogTCP(u.Host, cfg)
		}
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("siem: output %q: HEC endpoint without a host", spec)
		}
		if u.User != nil {
			return nil, errors.New("siem: HEC endpoint must not carry credentials (use the token)")
		}
		if opts.HECToken == "" {
			return nil, errors.New("siem: HEC output needs a token (WARRANT_HEC_TOKEN or --hec-token-file)")
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = hecDefaultPath
		}
		var cfg *tls.Config
		if scheme == "https" {
			cfg = opts.TLS
		}
		s = &hecSink{endpoint: u.String(), token: opts.HECToken, client: hecNewClient(cfg), ownClient: true}
	default:
		return nil, fmt.Errorf("siem: output %q: unsupported scheme %q (use -, a file path, syslog+tcp://, syslog+tls://, https:// or http://)", spec, scheme)
	}
	attempts := opts.RetryAttempts
	if attempts == 0 {
		attempts = openDefaultAttempts
	}
	backoff := opts.RetryBackoff
	if backoff <= 0 {
		backoff = openDefaultBackoff
	}
	return WithRetry(s, attempts, backoff), nil
}

// openScheme reports the lower-cased scheme of a "scheme://..." value.
func openScheme(spec string) (string, bool) {
	i := strings.Index(spec, "://")
	if i <= 0 {
		return "", false
	}
	for j, c := range spec[:i] {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", false
		}
	}
	return strings.ToLower(spec[:i]), true
}

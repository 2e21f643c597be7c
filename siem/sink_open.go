package siem

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

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

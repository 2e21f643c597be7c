package leader

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults and bounds of Config.
const (
	DefaultPrefix   = "/warrant/"
	DefaultLeaseTTL = 5 * time.Second

	// MinLeaseTTL is etcd's own floor for leases with its default timing
	// (one and a half election timeouts, rounded up to whole seconds): a
	// shorter lease would be granted longer than asked anyway.
	MinLeaseTTL = 2 * time.Second
	// MaxLeaseTTL bounds failover: a dead leader is replaced only after its
	// lease runs out.
	MaxLeaseTTL = 60 * time.Second
)

// Config says how a node reaches etcd and what it announces there. The zero
// value of a field selects its default; Dial validates the whole Config in one
// place (validate) before it connects.
type Config struct {
	// Endpoints are etcd's client URLs ("http://host:port" or
	// "host:port"); at least one. TLS to etcd is not supported yet.
	Endpoints []string
	// Prefix is prepended to every key this package uses (default
	// DefaultPrefix). It must start and end with "/". Nodes of one log share
	// it; logs sharing one etcd use different prefixes.
	Prefix string
	// NodeID names this node among the others: 1 to 63 characters of
	// letters, digits, '.', '_' and '-', starting with a letter or digit.
	// Node ids are unique in a cluster: Dial refuses an id registered by a
	// live process (ErrNodeIDInUse); a node restarted under the same id
	// after a crash waits for the dead process's lease to run out.
	NodeID string
	// URL is where other nodes and clients reach this node: an absolute
	// http or https URL with a host, without user info, query or fragment.
	URL string
	// LeaseTTL is the lifetime of this node's etcd leases (default
	// DefaultLeaseTTL): a whole number of seconds in [MinLeaseTTL,
	// MaxLeaseTTL]. A dead leader is replaced about LeaseTTL after it died; a
	// leader cut off from etcd stops LeaseTTL minus Margin(LeaseTTL) after
	// its last renewal was sent.
	LeaseTTL time.Duration
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the local clock the lease deadline is measured by (default
	// time.Now). Only its progress matters, not its agreement with etcd's
	// clock.
	Now func() time.Time
}

var nodeIDSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// validate fills in the defaults of cfg and checks every field.
func (cfg Config) validate() (Config, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if len(cfg.Endpoints) == 0 {
		errs = append(errs, errors.New("no etcd endpoints"))
	}
	for _, e := range cfg.Endpoints {
		if err := checkEndpoint(e); err != nil {
			errs = append(errs, err)
		}
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || !strings.HasSuffix(cfg.Prefix, "/") {
		errs = append(errs, fmt.Errorf("prefix %q must start and end with /", cfg.Prefix))
	}
	if !nodeIDSyntax.MatchString(cfg.NodeID) {
		errs = append(errs, fmt.Errorf("node id %q: want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", cfg.NodeID))
	}
	if err := checkNodeURL(cfg.URL); err != nil {
		errs = append(errs, err)
	}
	if cfg.LeaseTTL < MinLeaseTTL || cfg.LeaseTTL > MaxLeaseTTL || cfg.LeaseTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("lease TTL %v: want a whole number of seconds from %v to %v", cfg.LeaseTTL, MinLeaseTTL, MaxLeaseTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("leader: config: %w", err)
	}
	return cfg, nil
}

func checkEndpoint(e string) error {
	host := e
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil {
			return fmt.Errorf("etcd endpoint %q: %w", e, err)
		}
		if u.Scheme != "http" {
			return fmt.Errorf("etcd endpoint %q: want http://host:port or host:port (TLS is not supported yet)", e)
		}
		if (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("etcd endpoint %q: want http://host:port, nothing more", e)
		}
		host = u.Host
	}
	if h, p, err := net.SplitHostPort(host); err != nil || h == "" || p == "" {
		return fmt.Errorf("etcd endpoint %q: want host:port", e)
	}
	return nil
}

func checkNodeURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("node URL %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("node URL %q: want an absolute http or https URL", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("node URL %q: no user info, query or fragment", s)
	}
	return nil
}

// Margin is how long before its lease could run out, by the local clock,
// that a term ends when its renewals fail: a quarter of the TTL, at least
// half a second. It covers the time a leader takes to notice that Done is
// closed and stop, and a local clock that runs slower than etcd's.
func Margin(ttl time.Duration) time.Duration {
	return max(ttl/4, 500*time.Millisecond)
}

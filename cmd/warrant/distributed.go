package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/warrantlog/warrant/leader"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/objstore"
	"github.com/warrantlog/warrant/proofs"
)

// Distributed mode of `warrant serve` (docs/distributed.md): the flags, their
// all-or-nothing check, and the constructors of the object store and the
// coordination service that ledger.Options takes.

// distributedFlags are serve's flags of distributed mode.
type distributedFlags struct {
	objectStore   string
	s3Endpoint    string
	s3Credentials string
	etcd          string
	nodeID        string
	advertise     string
	leaseTTL      time.Duration
	reconfigure   bool

	// Checked forms (check).
	bucket, prefix string
	endpoints      []string
}

// defaultLeaseTTL is the default --lease-ttl; leaseTTLMin and leaseTTLMax
// bound it (etcd's floor for leases, and a minute).
const (
	defaultLeaseTTL = 5 * time.Second
	leaseTTLMin     = 2 * time.Second
	leaseTTLMax     = 60 * time.Second
)

func (f *distributedFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.objectStore, "object-store", "", "distributed mode: the log's bucket prefix, s3://BUCKET/PREFIX (with --etcd and --node-id)")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", "", "distributed mode: base URL of the S3-compatible server (default: AWS S3)")
	fs.StringVar(&f.s3Credentials, "s3-credentials", "", "distributed mode: file of AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines, mode 0600 (default: those environment variables)")
	fs.StringVar(&f.etcd, "etcd", "", "distributed mode: etcd client URLs, comma-separated")
	fs.StringVar(&f.nodeID, "node-id", "", "distributed mode: this node's name in the cluster (letters, digits, . _ -)")
	fs.StringVar(&f.advertise, "advertise", "", "distributed mode: the URL other nodes and clients reach this node at (default: http(s)://<listen address> if it names a host)")
	fs.BoolVar(&f.reconfigure, "reconfigure", false, "distributed mode: when this node leads, record its configuration (registrar, admin and token keys, rule limits) as the log's new one; without it a node whose configuration differs from the log's refuses to start or lead")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", defaultLeaseTTL, "distributed mode: the leader's etcd lease; a dead leader is replaced about this long after it died (whole seconds, 2s to 60s)")
}

// nodeIDSyntax is the form of a node id (that of package leader, which
// checks it again).
var nodeIDSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// check validates the distributed flags all together, before anything is
// bound or opened: none of them (the default mode), or --object-store,
// --etcd and --node-id together with the optional ones. It reports whether
// distributed mode is on. scheme and listen give --advertise's default.
func (f *distributedFlags) check(fs *flag.FlagSet, scheme, listen string) (bool, error) {
	required := []string{"object-store", "etcd", "node-id"}
	optional := []string{"s3-endpoint", "s3-credentials", "advertise", "lease-ttl", "reconfigure"}
	var given, missing []string
	for _, name := range required {
		if flagSet(fs, name) {
			given = append(given, "--"+name)
		} else {
			missing = append(missing, "--"+name)
		}
	}
	if len(given) == 0 {
		for _, name := range optional {
			if flagSet(fs, name) {
				return false, usagef("--%s is for distributed mode: give --object-store, --etcd and --node-id with it", name)
			}
		}
		return false, nil
	}
	if len(missing) > 0 {
		return false, usagef("distributed mode needs --object-store, --etcd and --node-id together: %s given, %s missing", strings.Join(given, ", "), strings.Join(missing, ", "))
	}
	bucket, prefix, err := objstore.ParseURL(f.objectStore)
	if err != nil {
		return false, usagef("--object-store %q: want s3://BUCKET/PREFIX (%v)", f.objectStore, err)
	}
	f.bucket, f.prefix = bucket, prefix
	if f.s3Endpoint != "" {
		if u, err := url.Parse(f.s3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false, usagef("--s3-endpoint %q: want an http:// or https:// URL with a host", f.s3Endpoint)
		}
	}
	if f.s3Credentials != "" {
		if _, err := os.Stat(f.s3Credentials); err != nil {
			return false, usagef("--s3-credentials: %v", err)
		}
	}
	f.endpoints = nil
	for _, e := range strings.Split(f.etcd, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			return false, usagef("--etcd %q: an empty URL in the list", f.etcd)
		}
		// A URL, as documented: "host:port" would be taken by the etcd
		// client, but parses as a URL of scheme "host" and hides a typo
		// like "http//host:2379" until the node cannot reach etcd.
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return false, usagef("--etcd %q: want absolute http:// URLs with a host and port, comma-separated (e.g. http://127.0.0.1:2379)", e)
		}
		if u.Scheme == "https" {
			return false, usagef("--etcd %q: TLS to etcd is not supported yet: give its http:// client URL", e)
		}
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return false, usagef("--etcd %q: the port must be a number from 1 to 65535", e)
		}
		f.endpoints = append(f.endpoints, e)
	}
	if !nodeIDSyntax.MatchString(f.nodeID) {
		return false, usagef("--node-id %q: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", f.nodeID)
	}
	if f.leaseTTL < leaseTTLMin || f.leaseTTL > leaseTTLMax || f.leaseTTL%time.Second != 0 {
		return false, usagef("--lease-ttl %v: whole seconds from %v to %v", f.leaseTTL, leaseTTLMin, leaseTTLMax)
	}
	if f.advertise == "" {
		host, _, err := net.SplitHostPort(listen)
		if err != nil || host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
			return false, usagef("distributed mode on a listener that names no host (%s) needs --advertise URL, the URL other nodes and clients reach this node at", listen)
		}
		return true, nil // defaultAdvertise, once the listener is bound
	}
	if u, err := url.Parse(f.advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return false, usagef("--advertise %q: want an absolute http:// or https:// URL without user, query or fragment", f.advertise)
	}
	f.advertise = strings.TrimSuffix(f.advertise, "/")
	return true, nil
}

// defaultAdvertise gives --advertise its default once the listener is
// bound: the scheme, the listen address's host as written, and the port
// bound (which --listen may have left to the system with port 0).
func (f *distributedFlags) defaultAdvertise(scheme, listen string, bound net.Addr) {
	if f.advertise != "" {
		return
	}
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(bound.String())
	f.advertise = scheme + "://" + net.JoinHostPort(host, port)
}

// checkClusterLogKey refuses to start a node of a cluster without the
// cluster's log key: Open would generate a key of its own, whose checkpoints
// no other node accepts.
func checkClusterLogKey(dir string) error {
	p := filepath.Join(dir, ledger.LogKeyFile)
	if _, err := os.Stat(p); err != nil {
		return proofs.Errorf(proofs.ReasonOpenFailed, "distributed mode: %s: every node needs the cluster's one log key there before it first starts (made once with `warrant keygen --type log`, then copied): %v", p, err)
	}
	return nil
}

// openDistributed makes the object store and the coordination service of
// the distributed flags, as ledger.Options takes them; closeFn releases
// them after the log is closed.
func openDistributed(ctx context.Context, f *distributedFlags, logger *slog.Logger) (ledger.ObjectStore, ledger.Coordination, io.Closer, error) {
	store, err := newObjectStore(ctx, f)
	if err != nil {
		return nil, nil, nil, &proofs.Error{Reason: proofs.ReasonOpenFailed, Err: fmt.Errorf("--object-store %s: %w", f.objectStore, err)}
	}
	coord, closer, err := newCoordination(ctx, f, logger)
	if errors.Is(err, leader.ErrNodeIDInUse) {
		return nil, nil, nil, &proofs.Error{Reason: proofs.ReasonOpenFailed, Err: fmt.Errorf("--node-id %s: another node of the cluster runs under this id (its etcd registration is alive); node ids are unique: %w", f.nodeID, err)}
	}
	if err != nil {
		return nil, nil, nil, &proofs.Error{Reason: proofs.ReasonOpenFailed, Err: fmt.Errorf("--etcd %s: %w", f.etcd, err)}
	}
	return store, coord, closer, nil
}

// newObjectStore opens --object-store: an S3 bucket prefix at
// --s3-endpoint, with the credentials of --s3-credentials or of the
// environment.
func newObjectStore(ctx context.Context, f *distributedFlags) (ledger.ObjectStore, error) {
	cfg := objstore.S3Config{Bucket: f.bucket, Prefix: f.prefix, Endpoint: f.s3Endpoint}
	var err error
	if f.s3Credentials != "" {
		if cfg.AccessKeyID, cfg.SecretAccessKey, err = objstore.ReadCredentialsFile(f.s3Credentials); err != nil {
			return nil, err
		}
	}
	s3, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return objectStore{s3}, nil
}

// objectStore is an objstore.Store as the ledger takes it: a missing key
// wraps ledger.ErrObjectNotFound, a refused Create ledger.ErrObjectExists,
// a refused Replace ledger.ErrObjectChanged.
type objectStore struct{ s objstore.Store }

func (o objectStore) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := o.s.Get(ctx, key)
	return b, mapStoreErr(err)
}

func (o objectStore) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	b, etag, err := o.s.GetWithETag(ctx, key)
	return b, etag, mapStoreErr(err)
}

func (o objectStore) Put(ctx context.Context, key string, data []byte) error {
	return o.s.Put(ctx, key, data)
}

func (o objectStore) Create(ctx context.Context, key string, data []byte) error {
	return mapStoreErr(o.s.Create(ctx, key, data))
}

func (o objectStore) Replace(ctx context.Context, key string, data []byte, etag string) error {
	return mapStoreErr(o.s.Replace(ctx, key, data, etag))
}

func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return fmt.Errorf("%w: %w", ledger.ErrObjectNotFound, err)
	case errors.Is(err, objstore.ErrExists):
		return fmt.Errorf("%w: %w", ledger.ErrObjectExists, err)
	case errors.Is(err, objstore.ErrChanged):
		return fmt.Errorf("%w: %w", ledger.ErrObjectChanged, err)
	}
	return err
}

// etcdWaitLogEvery is how often a node waiting for etcd says so.
const etcdWaitLogEvery = 5 * time.Second

// newCoordination dials etcd as this node.
//
// Dial waits for etcd as long as ctx lets it (a node started before its
// etcd is up joins when it comes); meanwhile a line every few seconds says
// what the node is waiting for, so an operator who gave the wrong URL sees
// it rather than a silent process.
func newCoordination(ctx context.Context, f *distributedFlags, logger *slog.Logger) (ledger.Coordination, io.Closer, error) {
	where := strings.Join(f.endpoints, ",")
	logger.Info("connecting to etcd", "etcd", where, "node", f.nodeID)
	dialed := make(chan struct{})
	go func() {
		t := time.NewTicker(etcdWaitLogEvery)
		defer t.Stop()
		for {
			select {
			case <-dialed:
				return
			case <-t.C:
				logger.Warn("still waiting for etcd to answer; check --etcd", "etcd", where, "node", f.nodeID)
			}
		}
	}()
	c, err := leader.Dial(ctx, leader.Config{Endpoints: f.endpoints, NodeID: f.nodeID, URL: f.advertise, LeaseTTL: f.leaseTTL, Logger: logger})
	close(dialed)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("etcd at %s did not answer before the node was stopped: %w", where, err)
		}
		return nil, nil, err
	}
	return coordination{c}, c, nil
}

// coordination is a *leader.Coordinator as the ledger takes it.
type coordination struct{ c *leader.Coordinator }

func (a coordination) Campaign(ctx context.Context) (ledger.Term, error) {
	t, err := a.c.Campaign(ctx)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (a coordination) Leader(ctx context.Context) (ledger.Member, error) {
	m, err := a.c.Leader(ctx)
	return ledger.Member{NodeID: m.NodeID, URL: m.URL}, err
}

func (a coordination) Checkpoint(ctx context.Context) ([]byte, error) { return a.c.Checkpoint(ctx) }

func (a coordination) WatchCheckpoint(ctx context.Context) <-chan []byte {
	return a.c.WatchCheckpoint(ctx)
}

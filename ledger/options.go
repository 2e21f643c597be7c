package ledger

// Options: what a Log can be configured with, the defaults a zero field
// selects, and the one check Open runs on them.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// Options configure a Log. One rule holds for every field: the zero value
// selects the field's default (nil Logger, Now, Badger and Metrics too).
// A negative number turns off a limit that can be off, and only those:
// MinFreeBytes, TreeCacheBytes, TablePagesBytes, AgentRate, AgentByteRate, GlobalRate,
// AuthFailureRate, FloodByteRate, WitnessRate and MaxLogTimeAhead, each of which says so. A negative
// value of any other field, a NaN rate or a nil key is a mistake: Open
// refuses it before touching the data directory, naming the field
// (Options.validate: reason options_invalid, or rule_limits_invalid for
// Rules).
type Options struct {
	// Dir is the data directory (Badger files, log key). Required.
	Dir string
	// Origin is the checkpoint origin; on first start it names the generated
	// log key (default "localhost/warrant/<random>"); later it must match.
	Origin string
	// RegistrarKeys may sign key bindings.
	RegistrarKeys []*proofs.PublicKey
	// AdminKeys may sign policies and administrative revocations.
	AdminKeys []*proofs.PublicKey
	// Rules are the chain rules' bounds (zero fields: proofs.DefaultRuleLimits;
	// none can be off).
	Rules proofs.RuleLimits

	// MaxBatchEntries bounds the entries of one batch (default 1024).
	MaxBatchEntries int
	// MaxBatchBytes bounds the envelope bytes of one batch (default 2 MiB),
	// which keeps a batch's transaction well under Badger's limit.
	MaxBatchBytes int
	// MaxBatchAgentBytes bounds one agent's envelope bytes in one batch
	// (default 32 KiB, one largest envelope; an agent's first request
	// always fits), so that a flooding agent's allowed traffic is committed
	// in short group commits that others' requests do not wait long behind:
	// a calm agent's request waits for the commit in progress and then
	// shares its own with at most this much of the flood's bytes.
	MaxBatchAgentBytes int
	// MaxBatchWait is how long the sequencer waits for more requests once a
	// batch has one (default 0: a batch is what queued while the previous one
	// committed, so there is no merge delay).
	MaxBatchWait time.Duration
	// QueueLength bounds the requests waiting for the sequencer (default
	// 8192); beyond it Append sheds load with ReasonQueueFull.
	QueueLength int
	// AgentQueueLength bounds the requests of one agent waiting for the
	// sequencer (default QueueLength/8), so that one agent cannot fill the
	// queue; the sequencer serves agents in turn (fairqueue.go).
	AgentQueueLength int
	// MinFreeBytes is the free space the data directory's file system must
	// keep (default 192 MiB): below it appends are refused with
	// ReasonDiskFull before anything is written. Badger writes its
	// memtables through memory maps, where a full disk would crash the
	// process instead of failing a write; the reserve keeps it from ever
	// getting there. Negative: no reserve.
	MinFreeBytes int64
	// CheckpointRefresh is how often WatchCheckpoints re-sends the latest
	// checkpoint with a fresh timestamp when the log is idle (default 10 s).
	CheckpointRefresh time.Duration
	// MaxWatchStreams bounds the WatchCheckpoints streams open at once
	// (default DefaultMaxWatchStreams), and MaxWatchStreamsPerPeer those of
	// one peer: one IP address, or one SPIFFE ID under mutual TLS (default
	// DefaultMaxWatchStreamsPerPeer). Beyond them a stream is refused
	// ResourceExhausted with ReasonTooManyStreams. See watch.go.
	MaxWatchStreams        int
	MaxWatchStreamsPerPeer int
	// TreeCacheBytes bounds the memory of the tile-subtree cache that
	// inclusion and consistency proofs read interior nodes from (default
	// DefaultTreeCacheBytes, 64 MiB; negative: no cache). A proof that
	// misses it reads the tile again (see tiles.go).
	TreeCacheBytes int
	// TablePagesBytes bounds the file-backed memory the process keeps
	// resident (default DefaultTablePagesBytes, 192 MiB; negative: no
	// bound): past it the pages of Badger's table files are handed back to
	// the kernel (tablepages.go). Badger writes its tables through memory
	// maps, so without the bound the resident set grows with the store.
	TablePagesBytes int64

	// AgentRate bounds each agent's appends per second (default
	// DefaultAgentRate, 500; negative: no per-agent limit), with bursts of
	// up to AgentBurst (default DefaultAgentBurst, 1000). GlobalRate bounds
	// all appends together (default 0, like negative: no global limit),
	// with bursts of up to GlobalBurst (default one second's worth). Over a
	// limit, Append refuses with ReasonRateLimited and writes nothing. See
	// limits.go.
	AgentRate   float64
	AgentBurst  int
	GlobalRate  float64
	GlobalBurst int
	// AgentByteRate bounds each agent's envelope bytes per second (default
	// DefaultAgentByteRate, 1 MiB; negative: no byte limit), with bursts of
	// up to AgentByteBurst (default DefaultAgentByteBurst, 8 MiB; at least
	// one largest envelope).
	AgentByteRate  float64
	AgentByteBurst int
	// MaxTrackedAgents bounds the per-agent limiters held in memory
	// (default DefaultMaxTrackedAgents, 100,000); idle ones are dropped
	// first, then the least recently used.
	MaxTrackedAgents int

	// AuthFailureRate and AuthFailureBurst are each peer's budget of
	// requests refused as not authentic (defaults DefaultAuthFailureRate
	// per second, bursts of DefaultAuthFailureBurst; a negative rate: no
	// budget). A peer over it is refused before its signatures are checked
	// (authguard.go). MaxTrackedPeers bounds the budgets held in memory
	// (default DefaultMaxTrackedPeers).
	AuthFailureRate  float64
	AuthFailureBurst int
	MaxTrackedPeers  int
	// FloodByteRate and FloodByteBurst are each peer's budget of envelope
	// bytes refused over their rate limits or queue share (defaults
	// DefaultFloodByteRate per second, bursts of DefaultFloodByteBurst; a
	// negative rate: no budget). A peer over it is refused before its
	// requests are read (floodguard.go).
	FloodByteRate  float64
	FloodByteBurst int

	// TokenKey signs the access tokens the log issues at /oauth2/token
	// (ES256; see oauth.go and LoadOrCreateTokenKey); nil: the log issues
	// none and serves no OAuth endpoints. Its public key, and those of
	// PreviousTokenKeys (still published in the JWKS), are recorded in the
	// log configuration's token_keys.
	TokenKey          *ecdsa.PrivateKey
	PreviousTokenKeys []*proofs.PublicKey
	// TokenLifetime is an access token's lifetime (default
	// DefaultTokenLifetime, at most proofs.MaxTokenLifetime; a token never
	// outlives its delegation).
	TokenLifetime time.Duration
	// TokenIssuer is the tokens' iss and the metadata's issuer, an https
	// (or http) URL without a trailing slash, and the base of the DPoP
	// htu the endpoints demand. "": derived from each request's scheme and
	// Host, which lets a caller choose them; only for a server reached on
	// loopback alone (`warrant serve` never leaves it empty).
	TokenIssuer string
	// MaxDPoPJTIs bounds the DPoP proof ids remembered against replay
	// by the token endpoint and introspection (default
	// DefaultMaxDPoPJTIs); proofs beyond it are refused,
	// temporarily_unavailable (too_many_requests), until older ones leave
	// the iat window, and are not counted as failed authentications. Only
	// registered agents' proofs are recorded.
	MaxDPoPJTIs int
	// DPoPNonce makes the token and introspection endpoints demand a
	// server-provided nonce in each DPoP proof (RFC 9449 section 8; see
	// dpopnonce.go): a proof without a current one is answered
	// use_dpop_nonce with a DPoP-Nonce header to retry with. The client
	// package retries once; `warrant serve` turns it on by default.
	DPoPNonce bool

	// WitnessPolicy, if not nil, is a tlog-policy file that makes the log a
	// witnessed log (witness.go): every new checkpoint is sent to the
	// policy's witnesses (C2SP tlog-witness) and, once their cosignatures
	// satisfy its quorum, the cosigned checkpoint is what the log serves.
	// Open reads it with ParseWitnessPolicy for the log's key and fails,
	// with proofs.ReasonWitnessPolicyInvalid, on a policy it cannot use.
	WitnessPolicy []byte
	// WitnessMode: WitnessAsync (the default) answers an append with the
	// log-signed checkpoint, and the cosigned one follows; WitnessSync
	// answers only once a checkpoint covering the entry satisfies the
	// quorum, or after WitnessTimeout with ReasonWitnessUnavailable (the
	// entry stays committed: resubmitting the same envelope returns it).
	WitnessMode WitnessMode
	// WitnessTimeout bounds a sync-mode append's wait for the quorum
	// (default DefaultWitnessTimeout).
	WitnessTimeout time.Duration
	// WitnessRate is each witness's request budget, add-checkpoint requests
	// per second (default DefaultWitnessRate; negative: no budget). Requests
	// over it wait; the checkpoint sent is always the newest.
	WitnessRate float64
	// WitnessHTTP sends the requests to the witnesses (default: a client
	// with a 10 s timeout per request).
	WitnessHTTP *http.Client

	// ObjectStore and Coordination, both set or both nil, run the log as
	// one node of a distributed log (distributed.go; docs/distributed.md):
	// the log's tiles, entry bundles and checkpoint are published to the
	// object store, one node at a time sequences under a term of the
	// coordination service, whose checkpoint is the truth every node
	// follows. NodeID names this node (required with them) and NodeURL is
	// the URL other nodes and clients reach it at (GET /cluster, and the
	// not_leader refusals of the followers). Nil: the default, a log on
	// this machine alone.
	ObjectStore  ObjectStore
	Coordination Coordination
	NodeID       string
	NodeURL      string
	// Reconfigure lets this node of a distributed log, when it leads,
	// record its configuration (registrar, admin and token keys, rule
	// limits) as the log's new one. Without it a node whose configuration
	// differs from the one the log records refuses to start or to lead
	// (ErrConfigMismatch): a configuration change is the operator's
	// explicit act, not the side effect of a node restarted with other
	// settings (clusterconfig.go).
	Reconfigure bool

	// UICORSOrigins are the origins (scheme://host[:port]) whose browsers
	// may call the read API and tiles: a copy of the web explorer hosted
	// there (explorer.go). Empty: same origin only, as served at /ui/.
	UICORSOrigins []string

	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for log time (default time.Now).
	Now func() time.Time
	// MaxLogTimeAhead bounds how far log time, which never decreases, may
	// run ahead of Now (default DefaultMaxLogTimeAhead; negative: no
	// bound). After the clock jumped forward and was set back, a signed
	// event would otherwise get a log time pinned in the future until the
	// clock caught up, hours perhaps, with every expiry judged at that
	// future time; instead, appends are refused with ReasonClockBehind,
	// an error is logged and warrant_log_time_ahead_seconds shows the gap,
	// until the clock is within the bound again.
	MaxLogTimeAhead time.Duration
	// Badger adjusts the Badger options (see BadgerOptions) before opening.
	Badger func(badger.Options) badger.Options
	// Metrics, if not nil, receives the ledger's Prometheus metrics (see
	// NewMetrics and metrics.go).
	Metrics *Metrics
}

// setDefaults gives every zero field its default. Open calls it after
// validate, so no field is negative unless it may be (a limit turned off).
func (o *Options) setDefaults() {
	if o.MaxBatchEntries == 0 {
		o.MaxBatchEntries = 1024
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = 2 << 20
	}
	if o.MaxBatchAgentBytes == 0 {
		o.MaxBatchAgentBytes = DefaultMaxBatchAgentBytes
	}
	if o.QueueLength == 0 {
		o.QueueLength = 8192
	}
	if o.AgentQueueLength == 0 {
		o.AgentQueueLength = max(o.QueueLength/8, 1)
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 192 << 20
	}
	if o.TablePagesBytes == 0 {
		o.TablePagesBytes = DefaultTablePagesBytes
	}
	if o.TreeCacheBytes == 0 {
		o.TreeCacheBytes = DefaultTreeCacheBytes
	}
	if o.CheckpointRefresh == 0 {
		o.CheckpointRefresh = 10 * time.Second
	}
	if o.MaxWatchStreams == 0 {
		o.MaxWatchStreams = DefaultMaxWatchStreams
	}
	if o.MaxWatchStreamsPerPeer == 0 {
		o.MaxWatchStreamsPerPeer = DefaultMaxWatchStreamsPerPeer
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WitnessTimeout == 0 {
		o.WitnessTimeout = DefaultWitnessTimeout
	}
	if o.WitnessRate == 0 {
		o.WitnessRate = DefaultWitnessRate
	}
	if o.WitnessHTTP == nil {
		o.WitnessHTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	if o.MaxDPoPJTIs == 0 {
		o.MaxDPoPJTIs = DefaultMaxDPoPJTIs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLogTimeAhead == 0 {
		o.MaxLogTimeAhead = DefaultMaxLogTimeAhead
	}
	def := proofs.DefaultRuleLimits()
	if o.Rules.LifetimeExecuteSeconds == 0 {
		o.Rules.LifetimeExecuteSeconds = def.LifetimeExecuteSeconds
	}
	if o.Rules.LifetimeDraftSeconds == 0 {
		o.Rules.LifetimeDraftSeconds = def.LifetimeDraftSeconds
	}
	if o.Rules.LifetimeRootSeconds == 0 {
		o.Rules.LifetimeRootSeconds = def.LifetimeRootSeconds
	}
	if o.Rules.MaxDepth == 0 {
		o.Rules.MaxDepth = def.MaxDepth
	}
}

// DefaultWitnessTimeout is the default Options.WitnessTimeout, and
// DefaultWitnessRate the default Options.WitnessRate.
const (
	DefaultWitnessTimeout = 5 * time.Second
	DefaultWitnessRate    = 10
)

// DefaultTokenLifetime is the default Options.TokenLifetime.
const DefaultTokenLifetime = 5 * time.Minute

// DefaultMaxBatchAgentBytes is the default Options.MaxBatchAgentBytes.
const DefaultMaxBatchAgentBytes = 32 << 10

// DefaultMaxDPoPJTIs is the default Options.MaxDPoPJTIs.
const DefaultMaxDPoPJTIs = 1 << 17

// DefaultMaxLogTimeAhead is the default Options.MaxLogTimeAhead: small
// steps of the clock back (an NTP correction) only pin log time briefly.
const DefaultMaxLogTimeAhead = time.Minute

// validate is the one check of a configuration, run by Open before the
// defaults are applied and before anything is opened: it returns an error
// naming the first field that is wrong (see the rule on Options).
func (o Options) validate() error {
	if o.Dir == "" {
		return optionError("Dir", "is empty: a data directory is required")
	}
	if o.TokenLifetime < 0 || o.TokenLifetime > proofs.MaxTokenLifetime {
		return optionError("TokenLifetime", fmt.Sprintf("must be between 1s and %v", proofs.MaxTokenLifetime))
	}
	if o.TokenKey != nil && o.TokenKey.Curve != elliptic.P256() {
		return optionError("TokenKey", "must be an ECDSA P-256 key")
	}
	if o.WitnessMode != WitnessAsync && o.WitnessMode != WitnessSync {
		return optionError("WitnessMode", fmt.Sprintf("is %d: it is WitnessAsync or WitnessSync", o.WitnessMode))
	}
	if o.MaxDPoPJTIs < 0 {
		return optionError("MaxDPoPJTIs", "cannot be off")
	}
	if (o.ObjectStore == nil) != (o.Coordination == nil) {
		return optionError("ObjectStore", "and Coordination go together: set both (a distributed log) or neither")
	}
	if o.ObjectStore == nil && (o.NodeID != "" || o.NodeURL != "") {
		return optionError("NodeID", "and NodeURL are for a distributed log (ObjectStore and Coordination)")
	}
	if o.ObjectStore == nil && o.Reconfigure {
		return optionError("Reconfigure", "is for a distributed log (ObjectStore and Coordination)")
	}
	if o.ObjectStore != nil && o.NodeID == "" {
		return optionError("NodeID", "is empty: a node of a distributed log needs a name")
	}
	if o.ObjectStore != nil && o.WitnessPolicy != nil {
		return optionError("WitnessPolicy", "is not supported for a distributed log yet")
	}
	for i, origin := range o.UICORSOrigins {
		if err := CheckOrigin(origin); err != nil {
			return optionError(fmt.Sprintf("UICORSOrigins[%d]", i), err.Error())
		}
	}
	for _, f := range []struct {
		name string
		keys []*proofs.PublicKey
	}{{"RegistrarKeys", o.RegistrarKeys}, {"AdminKeys", o.AdminKeys}} {
		for i, k := range f.keys {
			if k == nil {
				return optionError(fmt.Sprintf("%s[%d]", f.name, i), "is nil")
			}
		}
	}
	for _, f := range []struct {
		name  string
		value float64
	}{{"AgentRate", o.AgentRate}, {"AgentByteRate", o.AgentByteRate}, {"GlobalRate", o.GlobalRate}, {"AuthFailureRate", o.AuthFailureRate}, {"FloodByteRate", o.FloodByteRate}, {"WitnessRate", o.WitnessRate}} {
		if math.IsNaN(f.value) {
			return optionError(f.name, "is NaN: a rate is a number of events per second (zero: the default, negative: no limit)")
		}
	}
	// The limits that cannot be off.
	for _, f := range []struct {
		name     string
		value    any
		negative bool
	}{
		{"MaxBatchEntries", o.MaxBatchEntries, o.MaxBatchEntries < 0},
		{"MaxBatchBytes", o.MaxBatchBytes, o.MaxBatchBytes < 0},
		{"MaxBatchAgentBytes", o.MaxBatchAgentBytes, o.MaxBatchAgentBytes < 0},
		{"MaxBatchWait", o.MaxBatchWait, o.MaxBatchWait < 0},
		{"QueueLength", o.QueueLength, o.QueueLength < 0},
		{"AgentQueueLength", o.AgentQueueLength, o.AgentQueueLength < 0},
		{"CheckpointRefresh", o.CheckpointRefresh, o.CheckpointRefresh < 0},
		{"MaxWatchStreams", o.MaxWatchStreams, o.MaxWatchStreams < 0},
		{"MaxWatchStreamsPerPeer", o.MaxWatchStreamsPerPeer, o.MaxWatchStreamsPerPeer < 0},
		{"AgentBurst", o.AgentBurst, o.AgentBurst < 0},
		{"GlobalBurst", o.GlobalBurst, o.GlobalBurst < 0},
		{"AgentByteBurst", o.AgentByteBurst, o.AgentByteBurst < 0},
		{"MaxTrackedAgents", o.MaxTrackedAgents, o.MaxTrackedAgents < 0},
		{"AuthFailureBurst", o.AuthFailureBurst, o.AuthFailureBurst < 0},
		{"MaxTrackedPeers", o.MaxTrackedPeers, o.MaxTrackedPeers < 0},
		{"FloodByteBurst", o.FloodByteBurst, o.FloodByteBurst < 0},
		{"WitnessTimeout", o.WitnessTimeout, o.WitnessTimeout < 0},
	} {
		if f.negative {
			return optionError(f.name, fmt.Sprintf("is %v: this bound cannot be turned off (zero selects its default)", f.value))
		}
	}
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"LifetimeExecuteSeconds", o.Rules.LifetimeExecuteSeconds},
		{"LifetimeDraftSeconds", o.Rules.LifetimeDraftSeconds},
		{"LifetimeRootSeconds", o.Rules.LifetimeRootSeconds},
		{"MaxDepth", int64(o.Rules.MaxDepth)},
	} {
		if f.value < 0 {
			return proofs.Errorf(proofs.ReasonRuleLimitsInvalid, "ledger: option Rules.%s is %d: a rule limit cannot be turned off (zero selects its default)", f.name, f.value)
		}
	}
	d := o
	d.setDefaults()
	if err := d.Rules.Validate(); err != nil {
		return fmt.Errorf("ledger: option Rules: %w", err)
	}
	return nil
}

func optionError(field, problem string) error {
	return proofs.Errorf(proofs.ReasonOptionsInvalid, "ledger: option %s %s", field, problem)
}

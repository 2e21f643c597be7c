package ledger

// Distributed mode: the interfaces a log needs from an object store and a
// coordination service (defined here, by their consumer, so that this
// package imports neither the S3 client nor etcd's), the node's role, and
// the loop that runs it as a follower or as the leader in turn. See
// docs/distributed.md, "The leader, the bucket and the replicas".
//
// One node at a time leads: it holds a Term (an etcd lease and election
// key) and only it sequences. After a batch commits to its local Badger it
// puts the batch's tiles and entry bundles in the object store
// (publish.go), then compare-and-swaps the checkpoint in the coordination
// service, and only then answers. Every other node follows the swapped
// checkpoint (follow.go), fetching and verifying the entry bundles it
// lacks and applying them to its own store as recorded entries
// (ingest.go). The checkpoint in the coordination service is the truth: a
// node whose store is behind it ingests, one whose store holds entries it
// does not cover (a batch committed by a leader whose swap failed) rebuilds
// its store from the bucket.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// ObjectStore is one bucket prefix of an object store: where a distributed
// log keeps its tiles, entry bundles and latest checkpoint in the C2SP
// tlog-tiles layout, so that the bucket is a static mirror of the log.
//
// The contract (package objstore's Store, which cmd/warrant adapts): a
// write that returned nil is durable and every later Get returns its bytes
// (read-after-write); a write that returned another error than
// ErrObjectExists or ErrObjectChanged may or may not have stored the
// object, and may still be applied later, after other writes. Put
// overwrites unconditionally; Create writes only if the key holds no
// object, else wraps ErrObjectExists; Replace writes only if the key holds
// the object tagged etag (as GetWithETag returned it), else wraps
// ErrObjectChanged. Neither conditional write stores anything when it
// refuses. Get and GetWithETag wrap ErrObjectNotFound for a key that holds
// no object.
//
// The log Puts only the checkpoint object, whose writer the coordination
// service fences; tiles and bundles are Created and, when a deposed
// leader left other bytes at their key, Replaced (publish.go, putObject).
type ObjectStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	GetWithETag(ctx context.Context, key string) (data []byte, etag string, err error)
	Put(ctx context.Context, key string, data []byte) error
	Create(ctx context.Context, key string, data []byte) error
	Replace(ctx context.Context, key string, data []byte, etag string) error
}

// ErrObjectNotFound is wrapped by ObjectStore.Get for a key that holds no
// object (an adapter over another package's store maps its own error).
var ErrObjectNotFound = errors.New("object not found")

// ErrObjectExists is wrapped by ObjectStore.Create for a key that holds an
// object; nothing was written.
var ErrObjectExists = errors.New("object already exists")

// ErrObjectChanged is wrapped by ObjectStore.Replace when the key no
// longer holds the object of the ETag given; nothing was written.
var ErrObjectChanged = errors.New("object changed since it was read")

// Coordination is the service that elects one sequencer at a time and
// holds the latest checkpoint (etcd, in package leader).
type Coordination interface {
	// Campaign blocks until this node leads (or ctx ends) and returns its
	// term.
	Campaign(ctx context.Context) (Term, error)
	// Leader says who leads now; an error if nobody does or it cannot
	// tell.
	Leader(ctx context.Context) (Member, error)
	// Checkpoint returns the latest checkpoint note swapped in, or nil,
	// nil if none was yet.
	Checkpoint(ctx context.Context) ([]byte, error)
	// WatchCheckpoint delivers new checkpoint notes (the latest first)
	// until ctx ends; the channel is closed when the watch stops.
	WatchCheckpoint(ctx context.Context) <-chan []byte
}

// Term is one leadership of one node.
type Term interface {
	// Swap replaces the checkpoint old (nil: none yet) by new, atomically,
	// and only while the term holds (fencing). An error may leave the
	// outcome unknown: the log re-reads the checkpoint after any error.
	Swap(ctx context.Context, old, new []byte) error
	// Done is closed when the term ends, before its lease can have run out
	// by the coordination service's clock.
	Done() <-chan struct{}
	// Resign ends the term at once, so that another node takes over
	// without waiting for the lease to expire.
	Resign(ctx context.Context) error
}

// Member is a node of a cluster: its name and the URL other nodes and
// clients reach it at.
type Member struct {
	NodeID string `json:"node_id"`
	URL    string `json:"url"`
}

// Roles of a node of a distributed log.
const (
	roleFollower int32 = iota
	roleLeader
)

// Timeouts of the remote calls of a distributed log.
const (
	// publishTimeout bounds one publication of a batch (puts and swap).
	publishTimeout = 10 * time.Second
	// leaderLookupTimeout bounds asking who leads, for a refusal or the
	// cluster status.
	leaderLookupTimeout = 2 * time.Second
	// clusterRetry is how often a failed publication, reconciliation or
	// campaign is tried again.
	clusterRetry = time.Second
	// maxCatchUpTries bounds a new leader's attempts to catch up with the
	// swapped checkpoint, clusterRetry apart, before it gives its term up.
	maxCatchUpTries = 3
)

// cluster is the distributed state of a Log; nil in the default mode.
// Fields without a comment about concurrency are owned by the sequencer
// goroutine (runCluster).
type cluster struct {
	store ObjectStore
	coord Coordination
	self  Member

	// role is roleLeader only while the node holds a term, has caught up
	// with the swapped checkpoint and sequences (read by submit and the
	// status, any goroutine).
	role atomic.Int32
	// pending is set while the leader holds committed entries that are
	// not yet swapped in: it sequences nothing new until they are (read by
	// submit, any goroutine).
	pending atomic.Bool

	// swapped is the checkpoint note in the coordination service as this
	// node last saw or swapped it (nil: none), covering swappedSize
	// entries.
	swapped     []byte
	swappedSize uint64
	// term and termCtx are the current term while leading; termCtx ends
	// with the term.
	term    Term
	termCtx context.Context
	// deposed is set when a swap found another leader's checkpoint.
	deposed bool
	// leader is the leader other than this node as last looked up (nil or
	// zero: none known); any goroutine.
	leader atomic.Pointer[Member]
	// unservable is a checkpoint the bucket's entries did not match even
	// after a rebuild: reconcile does not rebuild again for it.
	unservable []byte
	// bucketCheckpoint is a swapped checkpoint whose put to the bucket's
	// "checkpoint" object has not succeeded yet (nil: none).
	bucketCheckpoint []byte
}

func newCluster(o Options) *cluster {
	return &cluster{store: o.Metrics.meterStore(o.ObjectStore), coord: o.Coordination, self: Member{NodeID: o.NodeID, URL: o.NodeURL}}
}

// NotLeaderError is the error inside the sequencer's not_leader and
// no_leader refusals: who leads, if known (a zero Leader otherwise). The
// RPC answer names the leader's URL in LeaderHeader.
type NotLeaderError struct {
	Leader Member
}

func (e *NotLeaderError) Error() string {
	if e.Leader.URL == "" {
		return "this node does not lead and no leader is known right now; retry shortly"
	}
	return fmt.Sprintf("this node does not sequence; the leader is %s at %s", e.Leader.NodeID, e.Leader.URL)
}

// notLeader is the refusal of a write by a node that does not lead:
// not_leader naming the leader, or no_leader if none is known.
func (l *Log) notLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, leaderLookupTimeout)
	defer cancel()
	m := l.lookupLeader(ctx)
	if m.URL == "" {
		return &proofs.Error{Reason: ReasonNoLeader, Err: &NotLeaderError{}}
	}
	return &proofs.Error{Reason: ReasonNotLeader, Err: &NotLeaderError{Leader: m}}
}

// lookupLeader asks who leads, other than this node, and caches the
// answer for ClusterLeader (zero if nobody, or this node, or unknown).
func (l *Log) lookupLeader(ctx context.Context) Member {
	c := l.cluster
	m, err := c.coord.Leader(ctx)
	if err != nil || m.NodeID == c.self.NodeID {
		m = Member{}
	}
	c.leader.Store(&m)
	return m
}

// ClusterLeader says who leads, from what this node last learnt (it asks
// the coordination service about once a second while it follows): the
// leader's URL, and whether that is this node. "" and false: no node is
// known to lead, or this is not a distributed log. It is cheap, for
// ForwardConfig.Leader.
func (l *Log) ClusterLeader() (url string, self bool) {
	c := l.cluster
	if c == nil {
		return "", false
	}
	if c.role.Load() == roleLeader {
		return c.self.URL, true
	}
	if m := c.leader.Load(); m != nil {
		return m.URL, false
	}
	return "", false
}

// errPublishPending refuses new requests while the leader retries
// publishing committed entries.
func errPublishPending() error {
	return proofs.Errorf(ReasonStoreUnavailable, "the leader is publishing entries it has sequenced to the object store, and accepts nothing new until they are in it; an earlier attempt of this request may be among them, so resubmit the same envelope (its answer is then that entry) or look the entry up before signing the request again")
}

// refuseWrite is submit's check in distributed mode: only a leader with
// nothing left to publish takes requests.
func (l *Log) refuseWrite(ctx context.Context) error {
	c := l.cluster
	if c.role.Load() != roleLeader {
		return l.notLeader(ctx)
	}
	if c.pending.Load() {
		return errPublishPending()
	}
	return nil
}

// ClusterStatus is what GET /cluster answers: this node, its role, who
// leads (nil if nobody is known) and the size of the checkpoint it serves.
type ClusterStatus struct {
	NodeID string  `json:"node_id"`
	URL    string  `json:"url"`
	Role   string  `json:"role"`
	Leader *Member `json:"leader"`
	Size   uint64  `json:"size"`
}

// ClusterStatus describes this node of a distributed log (ok false in the
// default mode).
func (l *Log) ClusterStatus(ctx context.Context) (st ClusterStatus, ok bool) {
	c := l.cluster
	if c == nil {
		return st, false
	}
	st = ClusterStatus{NodeID: c.self.NodeID, URL: c.self.URL, Role: "follower", Size: l.Checkpoint().Size}
	if c.role.Load() == roleLeader {
		st.Role = "leader"
		self := c.self
		st.Leader = &self
		return st, true
	}
	ctx, cancel := context.WithTimeout(ctx, leaderLookupTimeout)
	defer cancel()
	if m, err := c.coord.Leader(ctx); err == nil && m.NodeID != "" {
		st.Leader = &m
	}
	return st, true
}

// registerCluster serves GET /cluster in distributed mode.
func registerCluster(mux *http.ServeMux, l *Log) {
	if l.cluster == nil {
		return
	}
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		st, _ := l.ClusterStatus(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(st)
	})
}

// runCluster is the sequencer goroutine of a distributed log: it follows
// until it wins a term, leads until the term ends, and again.
func (l *Log) runCluster() {
	defer close(l.stopped)
	for {
		term := l.follow()
		if term == nil {
			return
		}
		if !l.lead(term) {
			return
		}
	}
}

// lead runs the node as the leader of term: it catches up with the
// swapped checkpoint, then sequences as run does, publishing each batch
// before answering it. It returns false when the log stops (having
// finished the queued requests and resigned), true when the term ended.
func (l *Log) lead(term Term) bool {
	c := l.cluster
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-term.Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	c.term, c.termCtx, c.deposed = term, ctx, false
	defer func() {
		c.role.Store(roleFollower)
		c.term, c.termCtx = nil, nil
	}()
	retry := time.NewTicker(clusterRetry)
	defer retry.Stop()
	// Catch up: the swapped checkpoint is the truth the term starts from.
	// A node that cannot (the object store unreachable from it, a bucket
	// prefix that is not the cluster's) gives its term up after a few
	// tries rather than hold it, and with it every node's appends, for as
	// long as it runs: another node then gets its turn.
	for tries := 1; ; tries++ {
		err := l.reconcile(ctx)
		if err == nil {
			break
		}
		l.log.Warn("leader: catching up with the cluster's checkpoint", "err", err, "try", tries)
		if tries >= maxCatchUpTries {
			l.log.Error("leader: could not catch up with the cluster's checkpoint; giving the term up", "tries", tries, "err", err)
			l.resign(term)
			return true
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			l.log.Warn("leader: the term ended before the node caught up")
			return true
		case <-l.stop:
			l.resign(term)
			return false
		}
	}
	if err := l.checkClusterConfig(); err != nil {
		// Caught up, the log's configuration is known, and it is not this
		// node's: it must not lead, lest it record its own
		// (clusterconfig.go). follow does not campaign again until it is.
		l.log.Error("leader: refusing to lead with a configuration that is not the log's; giving the term up", "err", err)
		l.resign(term)
		return true
	}
	c.pending.Store(false)
	c.role.Store(roleLeader)
	l.log.Info("leading", "node", c.self.NodeID, "size", c.swappedSize)
	go func() {
		// The log's own entries (its configuration, its first policy),
		// through the sequencer like any other; they need the leader.
		if err := l.ensureConfig(ctx); err != nil {
			l.log.Warn("leader: recording the log configuration", "err", err)
			return
		}
		if err := l.ensurePolicy(ctx); err != nil {
			l.log.Warn("leader: recording the default policy", "err", err)
		}
	}()
	for {
		if c.deposed {
			l.stepDown("another node swapped a checkpoint")
			// Give the term up too: its election key would otherwise stay,
			// kept alive with its lease, and no node could lead.
			l.resign(term)
			return true
		}
		select {
		case <-ctx.Done():
			l.stepDown("the term ended")
			return true
		case <-l.stop:
			for r := l.intake.pop(); r != nil && !c.deposed; r = l.intake.pop() {
				l.sequenceOrRefuse(l.collect(r))
			}
			l.refuseQueued(proofs.Errorf(ReasonShuttingDown, "the log is shutting down"))
			l.resign(term)
			return false
		case <-retry.C:
			l.retryPublish()
			continue
		default:
		}
		first := l.intake.pop()
		if first == nil {
			select {
			case <-l.intake.ready:
			case <-retry.C:
				l.retryPublish()
			case <-l.stop:
			case <-ctx.Done():
			}
			continue
		}
		l.sequenceOrRefuse(l.collect(first))
	}
}

// sequenceOrRefuse sequences a batch, or refuses it while earlier entries
// wait to be published.
func (l *Log) sequenceOrRefuse(batch []*request) {
	if l.cluster.pending.Load() {
		for _, r := range batch {
			r.done <- result{err: errPublishPending()}
		}
		return
	}
	l.sequence(batch)
}

// stepDown ends leading: the queued requests are refused, naming no
// leader (the next one is not known yet).
func (l *Log) stepDown(why string) {
	c := l.cluster
	c.role.Store(roleFollower)
	l.log.Warn("no longer leading: following", "node", c.self.NodeID, "why", why, "local_size", l.seq.size, "swapped_size", c.swappedSize)
	l.refuseQueued(&proofs.Error{Reason: ReasonNoLeader, Err: &NotLeaderError{}})
}

// refuseQueued answers every queued request with err.
func (l *Log) refuseQueued(err error) {
	for r := l.intake.pop(); r != nil; r = l.intake.pop() {
		r.done <- result{err: err}
	}
}

func (l *Log) resign(t Term) {
	ctx, cancel := context.WithTimeout(context.Background(), leaderLookupTimeout)
	defer cancel()
	if err := t.Resign(ctx); err != nil {
		l.log.Warn("resigning the term", "err", err)
	}
}

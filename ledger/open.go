package ledger

// Opening a Log (and recording its configuration and first policy) and
// closing it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// Open opens or creates the ledger in opts.Dir, checks the stored tree
// against the last signed checkpoint, signs a checkpoint if the store holds
// entries it does not cover yet, starts the sequencer, and appends a
// log-config entry if the configuration differs from the last one recorded.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	signer, cosigner, vkey, err := loadOrCreateLogKey(opts.Dir, opts.Origin)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log verifier key: %w", err)
	}
	bopts := BadgerOptions(opts.Dir, opts.Logger)
	if opts.Badger != nil {
		bopts = opts.Badger(bopts)
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("opening store in %s: %w", opts.Dir, err)
	}
	l := &Log{
		opts:        opts,
		log:         opts.Logger,
		db:          db,
		signer:      signer,
		cosigner:    cosigner,
		verifier:    verifier,
		vkey:        vkey,
		admins:      make(map[string]*proofs.PublicKey),
		delegations: newDelegationCache(1 << 16),
		trees:       newTreeCache(opts.TreeCacheBytes),
		limits:      newLimiters(opts),
		intake:      newFairQueue(opts.QueueLength, opts.AgentQueueLength),
		watch:       newWatchHub(opts),
		guard:       newAuthGuard(opts),
		flood:       newFloodGuard(opts),
		stop:        make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	maxTxn := bopts.MemTableSize * 15 / 100 // Badger's transaction limit
	l.txnBudget = max(maxTxn*3/4-256<<10, maxTxn/2)
	l.config = proofs.LogConfig{Origin: signer.Name(), Limits: proofs.DefaultLimits()}
	l.config.RegistrarKeys = configKeys(opts.RegistrarKeys)
	l.config.AdminKeys = configKeys(opts.AdminKeys)
	l.config.Rules = opts.Rules
	if opts.TokenKey != nil {
		ti, err := newTokenIssuer(opts)
		if err != nil {
			db.Close()
			return nil, err
		}
		l.tokens = ti
		l.config.TokenKeys = configKeys(append([]*proofs.PublicKey{ti.pub}, ti.previous...))
	}
	for _, k := range opts.AdminKeys {
		l.admins[k.ID] = k
	}
	if opts.ObjectStore != nil {
		l.cluster = newCluster(opts)
	}
	ch := make(chan struct{})
	l.changed.Store(&ch)
	// Bound the table pages from the start: recovery, the payload-index
	// backfill and the key filter below read every table of the store (on a
	// 10M-entry log, 1 GB of pages before the first request). Until the log
	// runs, a failed open stops it here.
	if opts.TablePagesBytes > 0 {
		go pageOutTables(opts.Dir, opts.TablePagesBytes, l.log, l.stop)
	}
	running := false
	defer func() {
		if !running {
			select {
			case <-l.stop:
			default:
				close(l.stop)
			}
		}
	}()
	if err := l.recover(); err != nil {
		db.Close()
		return nil, err
	}
	if err := l.backfillPayloadIndex(); err != nil {
		db.Close()
		return nil, err
	}
	if l.absent, err = l.buildKeyFilter(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.WitnessPolicy != nil {
		if err := l.startWitnessing(); err != nil {
			db.Close()
			return nil, err
		}
	}
	opts.Metrics.attach(l)
	if ahead := time.Duration(l.seq.logTime - opts.Now().UnixNano()); opts.MaxLogTimeAhead > 0 && ahead > opts.MaxLogTimeAhead {
		l.log.Error("the clock is behind the log's last log time: appends are refused until it catches up (was it set back?)",
			"log_time", proofs.FormatLogTime(time.Unix(0, l.seq.logTime)), "ahead", ahead, "bound", opts.MaxLogTimeAhead)
	}
	if l.cluster != nil {
		// The leader records the configuration and policy when it takes
		// its term (lead); a node catches up with the cluster before it
		// serves, or keeps trying in the background (follow).
		if err := l.reconcile(ctx); errors.Is(err, ErrClusterMismatch) {
			db.Close() // the sequencer is not running yet
			return nil, err
		} else if err != nil {
			l.log.Warn("catching up with the cluster's checkpoint; serving the last one verified until it succeeds", "size", l.Checkpoint().Size, "err", err)
		} else if err := l.checkClusterConfig(); err != nil {
			// Caught up: the log's configuration is known, and this
			// node's must be it (clusterconfig.go).
			db.Close()
			return nil, err
		}
		running = true
		go l.runCluster()
		return l, nil
	}
	running = true
	go l.run()
	if err := l.ensureConfig(ctx); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.ensurePolicy(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func configKeys(keys []*proofs.PublicKey) []proofs.ConfigKey {
	var out []proofs.ConfigKey
	for _, k := range keys {
		out = append(out, proofs.ConfigKey{ID: k.ID, PublicKey: k.DER})
	}
	slices.SortFunc(out, func(a, b proofs.ConfigKey) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
	return slices.CompactFunc(out, func(a, b proofs.ConfigKey) bool { return a.ID == b.ID })
}

// ensureConfig appends a log-config entry when none is recorded or the last
// one differs from this Log's configuration.
func (l *Log) ensureConfig(ctx context.Context) error {
	rec, err := l.recordedConfig()
	if err != nil {
		return err
	}
	var current []byte
	if rec != nil {
		if current, err = json.Marshal(rec); err != nil {
			return err
		}
	}
	want, err := json.Marshal(&l.config)
	if err != nil {
		return err
	}
	if bytes.Equal(current, want) {
		return nil
	}
	if l.cluster != nil && current != nil {
		// A distributed log's configuration changes only deliberately
		// (Options.Reconfigure), never as a node's side effect.
		if err := l.checkClusterConfig(); err != nil {
			return err
		}
		l.log.Warn("reconfiguring the log (--reconfigure): recording this node's configuration", "was", string(current), "now", string(want))
	}
	cfg := l.config
	res, err := l.submit(ctx, &request{ev: proofs.Event{Kind: proofs.KindLogConfig, Config: &cfg}})
	if err != nil {
		return fmt.Errorf("appending log-config entry: %w", err)
	}
	l.log.Info("recorded log configuration", "index", res.Index)
	return nil
}

// ensurePolicy appends the shipped default policy as the first policy
// entry of a log that has none.
func (l *Log) ensurePolicy(ctx context.Context) error {
	var has bool
	err := l.db.View(func(txn *badger.Txn) (err error) {
		_, has, err = getIndex(txn, keyPolicy)
		return err
	})
	if err != nil || has {
		return err
	}
	pol, err := proofs.ParsePolicy(defaultPolicy)
	if err != nil {
		return fmt.Errorf("the shipped default policy: %w", err)
	}
	res, err := l.submit(ctx, &request{ev: proofs.Event{Kind: proofs.KindPolicy, Policy: pol}})
	if err != nil {
		return fmt.Errorf("appending the default policy: %w", err)
	}
	l.log.Info("recorded the default policy", "index", res.Index, "digest", pol.Digest)
	return nil
}

// Close stops the sequencer after it finishes the requests already queued,
// then closes the store.
func (l *Log) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.stopped
	if l.witnesses != nil {
		l.witnesses.close()
	}
	if l.seq.unstored != nil {
		if err := l.storeCheckpoint(l.seq.unstored); err != nil {
			l.log.Warn("storing the last checkpoint at close", "err", err)
		}
	}
	return l.backups.closeStore(l.db.Close)
}

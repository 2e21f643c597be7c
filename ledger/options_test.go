package ledger

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// TestOpenRefusesInvalidOptions: every option Open cannot run with is
// refused by the one validation step, with a reason code and the option's
// name, before the data directory is created.
func TestOpenRefusesInvalidOptions(t *testing.T) {
	key := newTestKey(t).pub()
	cases := []struct {
		option string // named in the error
		reason string
		mod    func(*Options)
	}{
		{"Dir", proofs.ReasonOptionsInvalid, func(o *Options) { o.Dir = "" }},
		{"RegistrarKeys[0]", proofs.ReasonOptionsInvalid, func(o *Options) { o.RegistrarKeys = []*proofs.PublicKey{nil} }},
		{"AdminKeys[1]", proofs.ReasonOptionsInvalid, func(o *Options) { o.AdminKeys = []*proofs.PublicKey{key, nil} }},
		{"AgentRate", proofs.ReasonOptionsInvalid, func(o *Options) { o.AgentRate = math.NaN() }},
		{"AgentByteRate", proofs.ReasonOptionsInvalid, func(o *Options) { o.AgentByteRate = math.NaN() }},
		{"GlobalRate", proofs.ReasonOptionsInvalid, func(o *Options) { o.GlobalRate = math.NaN() }},
		{"AuthFailureRate", proofs.ReasonOptionsInvalid, func(o *Options) { o.AuthFailureRate = math.NaN() }},
		// Negative values of bounds that cannot be turned off.
		{"MaxBatchEntries", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxBatchEntries = -1 }},
		{"MaxBatchBytes", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxBatchBytes = -1 }},
		{"MaxBatchWait", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxBatchWait = -time.Millisecond }},
		{"QueueLength", proofs.ReasonOptionsInvalid, func(o *Options) { o.QueueLength = -1 }},
		{"AgentQueueLength", proofs.ReasonOptionsInvalid, func(o *Options) { o.AgentQueueLength = -1 }},
		{"CheckpointRefresh", proofs.ReasonOptionsInvalid, func(o *Options) { o.CheckpointRefresh = -time.Second }},
		{"MaxWatchStreams", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxWatchStreams = -1 }},
		{"MaxWatchStreamsPerPeer", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxWatchStreamsPerPeer = -1 }},
		{"AgentBurst", proofs.ReasonOptionsInvalid, func(o *Options) { o.AgentBurst = -1 }},
		{"GlobalBurst", proofs.ReasonOptionsInvalid, func(o *Options) { o.GlobalRate, o.GlobalBurst = 10, -1 }},
		{"AgentByteBurst", proofs.ReasonOptionsInvalid, func(o *Options) { o.AgentByteBurst = -1 }},
		{"MaxTrackedAgents", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxTrackedAgents = -1 }},
		{"AuthFailureBurst", proofs.ReasonOptionsInvalid, func(o *Options) { o.AuthFailureBurst = -1 }},
		{"MaxTrackedPeers", proofs.ReasonOptionsInvalid, func(o *Options) { o.MaxTrackedPeers = -1 }},
		// Rule limits: none can be off, and the depth is bounded.
		{"Rules.LifetimeExecuteSeconds", proofs.ReasonRuleLimitsInvalid, func(o *Options) { o.Rules.LifetimeExecuteSeconds = -1 }},
		{"Rules.LifetimeDraftSeconds", proofs.ReasonRuleLimitsInvalid, func(o *Options) { o.Rules.LifetimeDraftSeconds = -1 }},
		{"Rules.LifetimeRootSeconds", proofs.ReasonRuleLimitsInvalid, func(o *Options) { o.Rules.LifetimeRootSeconds = -1 }},
		{"Rules.MaxDepth", proofs.ReasonRuleLimitsInvalid, func(o *Options) { o.Rules.MaxDepth = -1 }},
		{"Rules", proofs.ReasonRuleLimitsInvalid, func(o *Options) { o.Rules.MaxDepth = proofs.MaxChainDepth + 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.option, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			opts := Options{Dir: dir, Logger: quietLogger()}
			tc.mod(&opts)
			l, err := Open(context.Background(), opts)
			if err == nil {
				l.Close()
				t.Fatal("Open accepted the options")
			}
			if got := proofs.Reason(err); got != tc.reason {
				t.Errorf("reason %q, want %q (%v)", got, tc.reason, err)
			}
			if !strings.Contains(err.Error(), "option "+tc.option+" ") && !strings.Contains(err.Error(), "option "+tc.option+":") {
				t.Errorf("the error does not name option %s: %v", tc.option, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data directory was touched: %v", err)
			}
		})
	}
}

// TestOptionsZeroAndNegative: zero selects every default, and the limits
// that may be off take a negative value: a log opens with all of them off.
func TestOptionsZeroAndNegative(t *testing.T) {
	var o Options
	o.setDefaults()
	if o.MaxBatchEntries != 1024 || o.MaxBatchBytes != 2<<20 || o.QueueLength != 8192 || o.AgentQueueLength != 1024 ||
		o.MinFreeBytes != 192<<20 || o.TreeCacheBytes != DefaultTreeCacheBytes || o.CheckpointRefresh != 10*time.Second ||
		o.MaxWatchStreams != DefaultMaxWatchStreams || o.MaxWatchStreamsPerPeer != DefaultMaxWatchStreamsPerPeer ||
		o.MaxLogTimeAhead != DefaultMaxLogTimeAhead || o.Rules != proofs.DefaultRuleLimits() || o.Logger == nil || o.Now == nil {
		t.Errorf("defaults of the zero Options: %+v", o)
	}
	off := Options{
		Dir: t.TempDir(), Logger: quietLogger(),
		MinFreeBytes: -1, TreeCacheBytes: -1, AgentRate: -1, AgentByteRate: -1, GlobalRate: -1,
		AuthFailureRate: -1, MaxLogTimeAhead: -1,
	}
	l, err := Open(context.Background(), off)
	if err != nil {
		t.Fatalf("Open with every optional limit off: %v", err)
	}
	defer l.Close()
	if l.trees != nil || l.limits.perAgent() || l.limits.global != nil || l.opts.MinFreeBytes >= 0 || l.opts.MaxLogTimeAhead >= 0 {
		t.Errorf("a limit is on: trees %v, per agent %v, global %v, reserve %d, ahead %v",
			l.trees != nil, l.limits.perAgent(), l.limits.global != nil, l.opts.MinFreeBytes, l.opts.MaxLogTimeAhead)
	}
}

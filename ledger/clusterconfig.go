package ledger

// The configuration of a distributed log: every node runs with the one
// the log records. In the default mode a restart with other settings
// records them (the operator of the one machine changed them); in a
// cluster a node restarts routinely, by a script, and a node started with
// other settings by mistake must not change the log's trust anchors when
// it happens to lead. So a node whose configuration differs from the one
// the log holds refuses to start (Open, once it has caught up), refuses
// to campaign while it follows, and gives a term up without writing; the
// configuration changes only on a node started with Options.Reconfigure,
// the operator's explicit act (docs/distributed.md, "Changing the
// configuration").

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// ErrConfigMismatch is returned by Open, and logged by a running node of
// a distributed log, when this node's configuration differs from the one
// the log records and Options.Reconfigure is not set. The error names the
// settings that differ.
var ErrConfigMismatch = errors.New("this node's configuration differs from the log's")

// recordedConfig returns the log's last configuration entry in the local
// store (nil if the log has none yet).
func (l *Log) recordedConfig() (*proofs.LogConfig, error) {
	var cfg *proofs.LogConfig
	err := l.db.View(func(txn *badger.Txn) error {
		idx, ok, err := getIndex(txn, keyConfig)
		if err != nil || !ok {
			return err
		}
		raw, err := getValue(txn, leafKey(idx))
		if err != nil {
			return err
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil || p.Config == nil {
			return fmt.Errorf("%w: config entry %d: %v", ErrStoreMismatch, idx, err)
		}
		cfg = p.Config
		return nil
	})
	return cfg, err
}

// checkClusterConfig says whether this node of a distributed log may lead
// with its configuration: nil if the log records none yet, records this
// one, or the node was started to reconfigure it; an error wrapping
// ErrConfigMismatch naming what differs otherwise.
func (l *Log) checkClusterConfig() error {
	rec, err := l.recordedConfig()
	if err != nil || rec == nil {
		return err
	}
	diff := configDiff(rec, &l.config)
	if len(diff) == 0 || l.opts.Reconfigure {
		return nil
	}
	return fmt.Errorf("%w: %s. Start this node with the log's settings, or change them deliberately with --reconfigure (docs/distributed.md)", ErrConfigMismatch, strings.Join(diff, "; "))
}

// configDiff names the settings in which mine differs from the recorded
// configuration rec, each with the flag that sets it and both values
// (key ids for keys).
func configDiff(rec, mine *proofs.LogConfig) []string {
	var diff []string
	keys := func(what string, a, b []proofs.ConfigKey) {
		if !slices.EqualFunc(a, b, func(x, y proofs.ConfigKey) bool { return x.ID == y.ID && bytes.Equal(x.PublicKey, y.PublicKey) }) {
			diff = append(diff, fmt.Sprintf("%s: the log has %s, this node %s", what, keyIDs(a), keyIDs(b)))
		}
	}
	if rec.Origin != mine.Origin {
		diff = append(diff, fmt.Sprintf("origin (the log key's name in DATA/log.key): the log has %q, this node %q", rec.Origin, mine.Origin))
	}
	keys("registrar keys (--registrar-key)", rec.RegistrarKeys, mine.RegistrarKeys)
	keys("admin keys (--admin-key)", rec.AdminKeys, mine.AdminKeys)
	keys("token keys (--tokens: DATA/token.key and its predecessors)", rec.TokenKeys, mine.TokenKeys)
	if rec.Rules != mine.Rules {
		diff = append(diff, fmt.Sprintf("rule limits (--lifetime-execute, --lifetime-draft, --lifetime-root, --max-depth): the log has %s, this node %s", jsonText(rec.Rules), jsonText(mine.Rules)))
	}
	if rec.Limits != mine.Limits {
		diff = append(diff, fmt.Sprintf("limits (fixed by the warrant version): the log has %s, this node %s", jsonText(rec.Limits), jsonText(mine.Limits)))
	}
	if len(diff) == 0 {
		// A field this function does not know yet: compare the encodings.
		a, _ := json.Marshal(rec)
		b, _ := json.Marshal(mine)
		if !bytes.Equal(a, b) {
			diff = append(diff, fmt.Sprintf("the recorded configuration %s, this node's %s", a, b))
		}
	}
	return diff
}

func keyIDs(ks []proofs.ConfigKey) string {
	if len(ks) == 0 {
		return "none"
	}
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.ID
	}
	return "[" + strings.Join(ids, " ") + "]"
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

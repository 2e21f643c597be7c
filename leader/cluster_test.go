package leader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrantlog/warrant/internal/etcdtest"
)

// swapUntil swaps old for new through node c, campaigning again whenever
// its term ends and re-reading the checkpoint after an unknown outcome,
// until the swap is known to have been applied. It returns the term that
// made it.
func swapUntil(t *testing.T, c *Coordinator, term *Term, old, new string) *Term {
	t.Helper()
	ctx := ctxWait(t)
	for ctx.Err() == nil {
		if term == nil || closed(term.Done()) {
			tctx, cancel := context.WithTimeout(ctx, 3*testTTL)
			nt, err := c.Campaign(tctx)
			cancel()
			if err != nil {
				t.Logf("campaign: %v", err)
				continue
			}
			term = nt
		}
		err := term.Swap(ctx, []byte(old), []byte(new))
		switch {
		case err == nil:
			return term
		case errors.Is(err, ErrDeposed) && !errors.Is(err, ErrUnknown):
			t.Logf("swap: %v", err)
		case errors.Is(err, ErrUnknown):
			t.Logf("swap: %v", err)
			rctx, cancel := context.WithTimeout(ctx, testTTL)
			cp, rerr := c.Checkpoint(rctx)
			cancel()
			if rerr == nil && string(cp) == new {
				return term
			}
		default:
			t.Fatalf("swap %q -> %q: %v", old, new, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("swap %q -> %q not applied within %v", old, new, wait)
	return nil
}

// With a three-member etcd cluster behind them, the nodes ride out the
// loss of etcd's raft leader (the client moves to another member), stop when
// etcd loses its quorum, and go on when the quorum is back.
func TestEtcdClusterFailover(t *testing.T) {
	ss := etcdtest.StartCluster(t, 3)
	var eps []string
	for _, s := range ss {
		eps = append(eps, s.Endpoint())
	}
	a := dial(t, eps[0], "a", func(c *Config) { c.Endpoints = eps })
	b := dial(t, eps[0], "b", func(c *Config) { c.Endpoints = eps })
	raw := rawClient(t, eps[0])
	raw.SetEndpoints(eps...)
	ctx := ctxWait(t)

	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}

	// Stop etcd's raft leader. Its lease (and so the term) may survive the
	// election of a new raft leader, or end by its deadline; either way the
	// log goes on.
	leader := -1
	for i, s := range ss {
		st, err := raw.Status(ctx, s.Endpoint())
		if err == nil && st.Leader == st.Header.MemberId {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no etcd member says it leads")
	}
	ss[leader].Stop()
	ta = swapUntil(t, a, ta, "cp1", "cp2")
	if got, err := b.Leader(ctx); err != nil || got.NodeID != "a" {
		t.Errorf("Leader after etcd's leader stopped = %v, %v; want a", got, err)
	}

	// Stop a second member: no quorum. The term ends by its deadline;
	// nobody is elected; linearizable reads fail.
	other := (leader + 1) % 3
	ss[other].Stop()
	waitClosed(t, ta.Done(), "Done without etcd quorum")
	short, cancel := context.WithTimeout(ctx, 3*testTTL)
	if _, err := b.Campaign(short); err == nil {
		t.Fatal("Campaign succeeded without etcd quorum")
	}
	cancel()
	short, cancel = context.WithTimeout(ctx, testTTL)
	if _, err := b.Checkpoint(short); err == nil {
		t.Error("Checkpoint answered without etcd quorum")
	}
	cancel()

	// The quorum is back: the log goes on from cp2.
	ss[other].Restart()
	swapUntil(t, b, nil, "cp2", "cp3")
	if cp, err := a.Checkpoint(ctx); string(cp) != "cp3" || err != nil {
		t.Errorf("Checkpoint = %q, %v; want cp3", cp, err)
	}
}

package ledger

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// TestAudit100k builds a log of 100,000 delegations through the real
// sequencer and audits all of it over the tlog-tiles API: every signature,
// rule and policy decision replayed, the tree recomputed.
func TestAudit100k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100k-entry log")
	}
	const n = 100_000
	f := newFixture(t, nil)
	ctx := context.Background()
	start := time.Now()
	envs := make([][]byte, n)
	parallel(n, func(i int) {
		d := delegation(fmt.Sprintf("dlg_%06d", i), humanID, agentID, fmt.Sprintf("nonce-%06d", i))
		if i%10 == 9 {
			d.Scopes = []string{"tickets:delete"} // high impact, approved: the issuer is human
		}
		envs[i] = signDelegation(t, f.human, d)
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < 64*runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				if _, err := f.log.Append(ctx, envs[i]); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d appends failed", failed.Load())
	}
	built := time.Since(start)
	start = time.Now()
	rep := auditServer(t, f)
	audited := time.Since(start)
	if !rep.Verified || rep.Entries[proofs.KindDelegation] != n || rep.Accepted != n+2 {
		t.Fatalf("audit of %d entries: verified %v, %+v, first discrepancies %v", rep.Size, rep.Verified, rep.Entries, rep.Discrepancies[:min(3, len(rep.Discrepancies))])
	}
	t.Logf("built %d entries in %v (%.0f/s); audited in %v (%.0f entries/s)", rep.Size, built, float64(n)/built.Seconds(), audited, float64(rep.Size)/audited.Seconds())
}

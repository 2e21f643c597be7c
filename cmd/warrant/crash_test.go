package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestCrashSafety is the kill -9 harness: several client processes append
// delegations concurrently while the server is killed with SIGKILL at
// random moments and restarted, round after round. Afterwards every
// acknowledged append is present at its index with the same leaf, every
// checkpoint any client was handed is consistent with the final tree, and
// every client's trusted state still verifies. The server restarts each
// time without manual repair.
//
// WARRANT_CRASH_ROUNDS sets the number of kills (default 3; scripts/crash.sh
// runs many more).
func TestCrashSafety(t *testing.T) {
	rounds := 3
	if v := os.Getenv("WARRANT_CRASH_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		rounds = 1
	}
	e := newE2E(t)
	type ack struct {
		Index      uint64 `json:"index"`
		ID         string `json:"id"`
		LeafHash   string `json:"leaf_hash"`
		Checkpoint struct {
			Size uint64 `json:"size"`
			Root string `json:"root"`
		} `json:"checkpoint"`
	}
	var mu sync.Mutex
	var acks []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 4
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			state := filepath.Join(e.dir, fmt.Sprintf("crash-state-%d", c))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cmd := exec.Command(warrantBin, "delegate", "--key", "alice.key", "--issuer", alice, "--to", planner,
					"--task", "/tickets", "--ttl", "1h", "--json", "--state", state, "--id", fmt.Sprintf("dlg_c%d_%d", c, i))
				cmd.Dir, cmd.Env = e.dir, e.env
				out, err := cmd.Output()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the server is down: try the next one
					continue
				}
				var a ack
				if err := json.Unmarshal(out, &a); err != nil {
					t.Errorf("acknowledged output %q: %v", out, err)
					continue
				}
				mu.Lock()
				acks = append(acks, a)
				mu.Unlock()
			}
		}()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for r := 0; r < rounds; r++ {
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		e.srv.kill(syscall.SIGKILL)
		e.start() // must come up on its own: no manual repair
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(acks) == 0 {
		t.Fatal("no append was acknowledged")
	}

	// Check everything against the final log, fetched and verified.
	v, _ := proofs.ParseVerifierKey(e.vkey)
	c := client.New(e.url(), v)
	ctx := context.Background()
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	for next := uint64(0); next < cp.Size; {
		page, _, err := c.Entries(ctx, next, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range page {
			leaves = append(leaves, l.Raw)
		}
		next += uint64(len(page))
	}
	roots := map[uint64]string{}
	rng2 := proofs.NewEmptyRange(0)
	for i, l := range leaves {
		rng2.Append(proofs.LeafHash(l), nil)
		root, _ := rng2.GetRootHash(nil)
		roots[uint64(i+1)] = hex.EncodeToString(root)
	}
	for _, a := range acks {
		if a.Index >= uint64(len(leaves)) {
			t.Fatalf("acknowledged entry %d (%s) is missing: the log has %d entries", a.Index, a.ID, len(leaves))
		}
		if got := hex.EncodeToString(proofs.LeafHash(leaves[a.Index])); got != a.LeafHash {
			t.Fatalf("acknowledged entry %d (%s) changed", a.Index, a.ID)
		}
		if roots[a.Checkpoint.Size] != a.Checkpoint.Root {
			t.Fatalf("a checkpoint handed out (size %d) is not consistent with the final tree", a.Checkpoint.Size)
		}
	}
	for i := 0; i < clients; i++ {
		mustWarrant(t, e.dir, e.env, "checkpoint", "--state", filepath.Join(e.dir, fmt.Sprintf("crash-state-%d", i)))
	}
	t.Logf("%d kill -9 rounds survived; %d acknowledged appends all intact; log size %d", rounds, len(acks), cp.Size)
}

package explorertest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkExplorerEndpoints times each request the explorer's pages make,
// over HTTP in the Connect JSON encoding as the browser sends them, on a
// log of about 2,000 entries: four trees like TestBlastRadius500's. Each
// sub-benchmark reports the p50, p99 and largest time of its requests
// (run with -benchtime 200x for 200 of each). It measures; it asserts no
// time.
func BenchmarkExplorerEndpoints(b *testing.B) {
	const agents, perAgent = 20, 24
	w := newWideLog(b, agents, perAgent, "w-root", "x-root", "y-root", "z-root")
	size := w.l.Checkpoint().Size
	b.Logf("a log of %d entries", size)
	level2 := make([]string, agents)
	for i := range level2 {
		level2[i] = fmt.Sprintf(`"w-root-%d"`, i)
	}
	var leaves []string
	for i := 0; len(leaves) < 100; i++ {
		leaves = append(leaves, fmt.Sprintf(`"w-root-%d-%d"`, i/perAgent, i%perAgent))
	}
	rpc := func(method, body string) func() *http.Request {
		return func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/warrant.v1.LedgerService/"+method, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Connect-Protocol-Version", "1")
			return r
		}
	}
	get := func(path string) func() *http.Request {
		return func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, w.srv.URL+path, nil)
			return r
		}
	}
	for _, c := range []struct {
		name string
		req  func() *http.Request
	}{
		{"GetCheckpoint", rpc("GetCheckpoint", `{}`)},
		{"GET_checkpoint", get("/checkpoint")},
		{"GetEntry_by_id", rpc("GetEntry", `{"delegationId":"w-root-3-5"}`)},
		{"GetEntry_by_index", rpc("GetEntry", fmt.Sprintf(`{"index":"%d"}`, size/2))},
		{"ListChildren_24", rpc("ListChildren", `{"delegationId":"w-root-3","pageSize":100}`)},
		{"ListChildrenBatch_20_parents_of_480", rpc("ListChildrenBatch", `{"delegationIds":[`+strings.Join(level2, ",")+`]}`)},
		{"ListChildrenBatch_100_parents_0_entries", rpc("ListChildrenBatch", `{"delegationIds":[`+strings.Join(leaves, ",")+`]}`)},
		{"ListAgentEntries_100", rpc("ListAgentEntries", `{"agent":"spiffe://example.org/agent/w01","pageSize":100}`)},
		{"GetConsistencyProof", rpc("GetConsistencyProof", fmt.Sprintf(`{"fromSize":"%d","toSize":"%d"}`, size/2, size))},
		{"GetChainBundle", rpc("GetChainBundle", `{"delegationId":"w-root-3-5"}`)},
		{"GetEntries_100", rpc("GetEntries", fmt.Sprintf(`{"start":"%d","count":100}`, size-100))},
		{"GetEntries_1000", rpc("GetEntries", fmt.Sprintf(`{"start":"%d","count":1000}`, size-1000))},
		{"GET_tile_0", get("/tile/0/000")},
		{"GET_tile_entries", get("/tile/entries/000")},
	} {
		b.Run(c.name, func(b *testing.B) {
			do := func() int {
				resp, err := http.DefaultClient.Do(c.req())
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: HTTP %d", c.name, resp.StatusCode)
				}
				return int(n)
			}
			n := do() // warm
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				do()
				times = append(times, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(times)
			q := func(p float64) float64 { return float64(times[int(p*float64(len(times)-1))]) / 1e6 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(1), "max-ms")
			b.ReportMetric(float64(n), "resp-bytes")
			b.ReportMetric(0, "ns/op")
		})
	}
}

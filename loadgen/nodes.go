package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/warrantlog/warrant/client"
)

// What the servers themselves say about a run: each node's Prometheus
// metrics (GET /metrics) read before and after it, and the difference. On
// a distributed log this is where the leader's object store requests come
// from (warrant_object_store_requests_total, counted by the leader as it
// publishes each batch), and, on any server, the CPU time it spent
// (process_cpu_seconds_total): the cost of an operation on the server,
// which the rate measured on a shared machine hides.

// NodeLoad is what one server's metrics counted during a run.
type NodeLoad struct {
	// Metrics is the URL read (a node's /metrics).
	Metrics string `json:"metrics"`
	// Error says why the node could not be read, before or after the run;
	// the other fields are then zero.
	Error string `json:"error,omitempty"`
	// CPUSeconds is the CPU time the server process used
	// (process_cpu_seconds_total). The summary divides it by all the
	// run's operations, whichever node served them, so that the sum over
	// the nodes is the cluster's CPU cost of one operation.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Entries are the entries it sequenced (warrant_appends_total, not
	// counting duplicates), in Batches group commits
	// (warrant_batch_size_count). Zero on a follower.
	Entries float64 `json:"entries"`
	Batches float64 `json:"batches"`
	// CommitMillis is the mean duration of a group commit's synced
	// Badger transaction (warrant_commit_latency_seconds).
	CommitMillis float64 `json:"commit_mean_ms,omitempty"`
	// Puts and Gets are its object store requests
	// (warrant_object_store_requests_total by kind), StoreErrors those
	// that failed; PutMillis is the mean duration of a put.
	Puts        float64 `json:"object_puts"`
	Gets        float64 `json:"object_gets"`
	StoreErrors float64 `json:"object_errors"`
	PutMillis   float64 `json:"object_put_mean_ms,omitempty"`
	// Swaps are its checkpoint compare-and-swaps in etcd, SwapMillis
	// their mean duration.
	Swaps      float64 `json:"checkpoint_swaps"`
	SwapMillis float64 `json:"checkpoint_swap_mean_ms,omitempty"`
}

// metricsSample is the series a NodeLoad is made of, as read at one time.
type metricsSample map[string]float64

// sampleKeys name the sums NodeLoad needs.
const (
	keyCPU        = "cpu"
	keyEntries    = "entries"
	keyBatches    = "batches"
	keyPuts       = "puts"
	keyGets       = "gets"
	keyStoreErr   = "store_errors"
	keyPutSeconds = "put_seconds"
	keySwaps      = "swaps"
	keySwapSecs   = "swap_seconds"
	keySwapCount  = "swap_count"
	keyPutCount   = "put_count"
	keyCommitSecs = "commit_seconds"
	keyCommits    = "commits"
)

// parseMetrics sums the series NodeLoad needs from a Prometheus text
// exposition. Only the few names below are read; a missing one counts 0
// (a log in the default mode has no object store).
func parseMetrics(text string) metricsSample {
	s := metricsSample{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, rest := line, "", ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		has := func(l string) bool { return strings.Contains(","+labels+",", ","+l+",") }
		switch name {
		case "process_cpu_seconds_total":
			s[keyCPU] += v
		case "warrant_appends_total":
			if !has(`outcome="duplicate"`) {
				s[keyEntries] += v
			}
		case "warrant_batch_size_count":
			s[keyBatches] += v
		case "warrant_commit_latency_seconds_sum":
			s[keyCommitSecs] += v
		case "warrant_commit_latency_seconds_count":
			s[keyCommits] += v
		case "warrant_object_store_requests_total":
			switch {
			case has(`kind="put"`):
				s[keyPuts] += v
			case has(`kind="get"`):
				s[keyGets] += v
			}
			if has(`outcome="errored"`) {
				s[keyStoreErr] += v
			}
		case "warrant_object_store_request_seconds_sum":
			if has(`kind="put"`) {
				s[keyPutSeconds] += v
			}
		case "warrant_object_store_request_seconds_count":
			if has(`kind="put"`) {
				s[keyPutCount] += v
			}
		case "warrant_checkpoint_swaps_total":
			s[keySwaps] += v
		case "warrant_checkpoint_swap_seconds_sum":
			s[keySwapSecs] += v
		case "warrant_checkpoint_swap_seconds_count":
			s[keySwapCount] += v
		}
	}
	return s
}

// nodeLoad is the difference between two samples of one node.
func nodeLoad(url string, before, after metricsSample) NodeLoad {
	d := func(k string) float64 { return after[k] - before[k] }
	n := NodeLoad{Metrics: url, CPUSeconds: d(keyCPU), Entries: d(keyEntries), Batches: d(keyBatches),
		Puts: d(keyPuts), Gets: d(keyGets), StoreErrors: d(keyStoreErr), Swaps: d(keySwaps)}
	if c := d(keyPutCount); c > 0 {
		n.PutMillis = d(keyPutSeconds) / c * 1000
	}
	if c := d(keyCommits); c > 0 {
		n.CommitMillis = d(keyCommitSecs) / c * 1000
	}
	if c := d(keySwapCount); c > 0 {
		n.SwapMillis = d(keySwapSecs) / c * 1000
	}
	return n
}

// scrapeMetrics reads one /metrics URL.
func scrapeMetrics(ctx context.Context, hc *http.Client, url string) (metricsSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(string(body)), nil
}

// scrapeAll reads every URL; a failure is kept per URL.
func scrapeAll(ctx context.Context, hc *http.Client, urls []string) ([]metricsSample, []error) {
	samples := make([]metricsSample, len(urls))
	errs := make([]error, len(urls))
	for i, u := range urls {
		samples[i], errs[i] = scrapeMetrics(ctx, hc, u)
	}
	return samples, errs
}

// DiscoverMetrics lists the /metrics URLs worth reading for a run against
// servers (a list as client.SplitServers reads it): each server's, and
// the cluster leader's if a server names one at GET /cluster and it is
// not among them (a run against followers then still counts the leader's
// object store requests). A log in the default mode answers no /cluster:
// its servers' own URLs are returned.
func DiscoverMetrics(ctx context.Context, hc *http.Client, servers string) []string {
	list := client.SplitServers(servers)
	var out []string
	for _, s := range list {
		out = append(out, s+"/metrics")
	}
	for _, s := range list {
		leader, ok := clusterLeader(ctx, hc, s)
		if !ok {
			continue
		}
		if u := strings.TrimSuffix(leader, "/") + "/metrics"; !slices.Contains(out, u) {
			out = append(out, u)
		}
		break
	}
	return out
}

// clusterLeader asks server who leads (GET /cluster).
func clusterLeader(ctx context.Context, hc *http.Client, server string) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/cluster", nil)
	if err != nil {
		return "", false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", false
	}
	var st struct {
		URL    string `json:"url"`
		Role   string `json:"role"`
		Leader *struct {
			URL string `json:"url"`
		} `json:"leader"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return "", false
	}
	switch {
	case st.Role == "leader" && st.URL != "":
		return st.URL, true
	case st.Leader != nil && st.Leader.URL != "":
		return st.Leader.URL, true
	}
	return "", false
}

// nodesSummary is the human-readable form of a run's NodeLoads; ops is
// the run's successful operations (entries, for appends), seconds its
// length.
func nodesSummary(nodes []NodeLoad, ops int, seconds float64) string {
	var b strings.Builder
	for _, n := range nodes {
		if n.Error != "" {
			fmt.Fprintf(&b, "node %s: not read (%s)\n", n.Metrics, n.Error)
			continue
		}
		fmt.Fprintf(&b, "node %s: cpu %.2f s", n.Metrics, n.CPUSeconds)
		if ops > 0 {
			// Over the whole run's operations, whichever node served
			// them: summed over the nodes, the cost of one.
			fmt.Fprintf(&b, " (%.3f ms per op of the run)", n.CPUSeconds/float64(ops)*1000)
		}
		b.WriteString("\n")
		if n.Entries > 0 {
			fmt.Fprintf(&b, "  sequenced %.0f entries in %.0f batches (%.1f per batch), mean commit %.1f ms\n", n.Entries, n.Batches, n.Entries/max(n.Batches, 1), n.CommitMillis)
		}
		if n.Puts+n.Gets+n.Swaps > 0 {
			fmt.Fprintf(&b, "  object store: %.0f puts (%.1f/s", n.Puts, n.Puts/seconds)
			if n.Entries > 0 {
				fmt.Fprintf(&b, ", %.2f per entry", n.Puts/n.Entries)
			}
			if n.Swaps > 0 {
				fmt.Fprintf(&b, ", %.2f per published batch", n.Puts/n.Swaps)
			}
			fmt.Fprintf(&b, ", mean %.1f ms), %.0f gets (%.1f/s), %.0f errors\n", n.PutMillis, n.Gets, n.Gets/seconds, n.StoreErrors)
		}
		if n.Swaps > 0 {
			fmt.Fprintf(&b, "  checkpoint swaps: %.0f (%.1f/s, mean %.1f ms)\n", n.Swaps, n.Swaps/seconds, n.SwapMillis)
		}
	}
	return b.String()
}

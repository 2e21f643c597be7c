package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// ModeFairness measures what one agent flooding the log at its limits does
// to an unrelated agent: see RunFairness.
const ModeFairness = "fairness"

// FairnessResult is the outcome of RunFairness.
type FairnessResult struct {
	Mode string `json:"mode"`
	// The calm agent's append latency (to a verified answer), in ms,
	// before the flood (Quiet) and during it (Flood).
	QuietP50 float64 `json:"quiet_p50_ms"`
	QuietP99 float64 `json:"quiet_p99_ms"`
	FloodP50 float64 `json:"flood_p50_ms"`
	FloodP99 float64 `json:"flood_p99_ms"`
	// Ratio is FloodP99 / QuietP99.
	Ratio       float64 `json:"p99_ratio"`
	CalmAppends int     `json:"calm_appends"`
	CalmErrors  int     `json:"calm_errors"`
	// The flooding agent's envelopes: sent, appended (as denials), and
	// refused by its rate limits or its share of the queue.
	FloodSent     int     `json:"flood_sent"`
	FloodAppended int     `json:"flood_appended"`
	FloodRefused  int     `json:"flood_refused"`
	FloodBytes    int     `json:"flood_envelope_bytes"`
	Seconds       float64 `json:"seconds"`
}

func (r *FairnessResult) String() string {
	return fmt.Sprintf("fairness: calm agent p50/p99 %.1f/%.1f ms quiet, %.1f/%.1f ms during the flood (p99 ratio %.2f); %d calm appends, %d errors\n"+
		"flood: %d envelopes of %d bytes sent in batches, %d appended (denied), %d refused (rate limits, queue share); %.1f s\n",
		r.QuietP50, r.QuietP99, r.FloodP50, r.FloodP99, r.Ratio, r.CalmAppends, r.CalmErrors,
		r.FloodSent, r.FloodBytes, r.FloodAppended, r.FloodRefused, r.Seconds)
}

// fairness tuning: the calm agent appends at calmRate, one request at a
// time; the flood runs floodClients AppendBatch loops of floodBatch
// envelopes of about floodEnvelopeBytes, incompressible and denied (their
// delegate is not registered), cycling through floodPool presigned
// envelopes (resubmissions cost the server as much to refuse). The flood
// is posted as raw Connect requests marshalled once.
const (
	calmRate           = 20
	floodClients       = 16
	floodBatch         = 256
	floodPool          = 1024
	floodEnvelopeBytes = 30 << 10
)

// RunFairness measures an unrelated agent's append latency while one
// agent floods the log at its maximum, the benchmark behind issue 11's
// fairness target: the first third of cfg.Duration is quiet, the rest
// flooded. cfg.Registrar registers the agents; cfg.Server, cfg.LogKey and
// cfg.HTTPClient are used as by Run.
func RunFairness(ctx context.Context, cfg Config) (*FairnessResult, error) {
	cfg.Mode = ModeFairness
	cfg.defaults()
	if cfg.Registrar == nil {
		return nil, errors.New("the fairness mode needs a registrar key to register its agents")
	}
	setup := client.New(cfg.Server, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient))
	run := randomSuffix()
	register := func(id string, human bool) (*client.Signer, error) {
		return registerAgent(ctx, setup, cfg.Registrar, id, human)
	}
	delegate := "spiffe://bench.example/agent/worker-" + run
	calmID := "spiffe://bench.example/human/calm-" + run
	floodID := "spiffe://bench.example/human/flood-" + run
	if _, err := register(delegate, false); err != nil {
		return nil, err
	}
	calmKey, err := register(calmID, true)
	if err != nil {
		return nil, err
	}
	floodKey, err := register(floodID, true)
	if err != nil {
		return nil, err
	}
	calmEnvs, err := Presign(calmKey, calmID, delegate, int(calmRate*cfg.Duration.Seconds())+calmRate, cfg.EntryBytes, run+"c")
	if err != nil {
		return nil, err
	}
	floodEnvs, err := presignFlood(floodKey, floodID, "spiffe://bench.example/agent/nobody-"+run, run)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	floodAt := start.Add(cfg.Duration / 3)
	end := start.Add(cfg.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	res := &FairnessResult{Mode: ModeFairness, FloodBytes: len(floodEnvs[0])}
	var sent, appended, refused atomic.Int64
	bodies, err := floodBodies(floodEnvs)
	if err != nil {
		return nil, err
	}
	url := strings.TrimSuffix(cfg.Server, "/") + warrantv1connect.LedgerServiceAppendBatchProcedure
	floodHTTP := floodClient(cfg.Server, cfg.HTTPClient)
	var wg sync.WaitGroup
	for w := range floodClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Until(floodAt)):
			case <-runCtx.Done():
				return
			}
			for i := w; runCtx.Err() == nil; i++ {
				ok, bad, err := floodOnce(runCtx, floodHTTP, url, bodies[i%len(bodies)])
				sent.Add(int64(floodBatch))
				appended.Add(int64(ok))
				refused.Add(int64(bad))
				if err != nil && runCtx.Err() == nil {
					refused.Add(int64(floodBatch - ok - bad))
				}
			}
		}()
	}

	c := client.New(cfg.Server, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient), client.WithRetry(1, 0))
	var quiet, flood []time.Duration
	tick := time.NewTicker(time.Second / calmRate)
	for i := 0; i < len(calmEnvs); i++ {
		select {
		case <-tick.C:
		case <-runCtx.Done():
		}
		if runCtx.Err() != nil {
			break
		}
		t0 := time.Now()
		_, err := c.Append(runCtx, calmEnvs[i])
		d := time.Since(t0)
		switch {
		case runCtx.Err() != nil:
		case err != nil:
			res.CalmErrors++
		case t0.Before(floodAt):
			quiet = append(quiet, d)
		default:
			flood = append(flood, d)
		}
	}
	tick.Stop()
	cancel()
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.CalmAppends = len(quiet) + len(flood)
	res.QuietP50, res.QuietP99 = quantileMS(quiet, 0.5), quantileMS(quiet, 0.99)
	res.FloodP50, res.FloodP99 = quantileMS(flood, 0.5), quantileMS(flood, 0.99)
	if res.QuietP99 > 0 {
		res.Ratio = res.FloodP99 / res.QuietP99
	}
	res.FloodSent, res.FloodAppended, res.FloodRefused = int(sent.Load()), int(appended.Load()), int(refused.Load())
	return res, nil
}

// presignFlood signs floodPool root grants of about floodEnvelopeBytes
// each, padded with random (incompressible) scopes, to an unregistered
// delegate, so each is appended as a denial.
func presignFlood(s *client.Signer, issuer, delegate, run string) ([][]byte, error) {
	now := time.Now()
	envs := make([][]byte, floodPool)
	for i := range envs {
		d := &proofs.Delegation{
			ID: fmt.Sprintf("dlg_flood_%s_%06d", run, i), Issuer: issuer, Delegate: delegate, RootSubject: issuer,
			Task: "/bench/flood", NotBefore: proofs.FormatTime(now), ExpiresAt: proofs.FormatTime(now.Add(time.Hour)),
			Nonce: fmt.Sprintf("nflood%s%06d", run, i),
		}
		for len(d.Scopes) < 64 && 4*(len(strings.Join(d.Scopes, ""))+len(d.Scopes)*4)/3 < floodEnvelopeBytes-1500 {
			b := make([]byte, 120)
			rand.Read(b)
			d.Scopes = append(d.Scopes, "flood:"+hex.EncodeToString(b))
		}
		payload, err := proofs.MarshalPayload(d)
		if err != nil {
			return nil, err
		}
		if envs[i], err = s.SignEnvelope(proofs.PayloadTypeDelegation, payload); err != nil {
			return nil, err
		}
	}
	return envs, nil
}

// floodClient is the flooding agent's HTTP client. Against a server on
// loopback it connects from 127.0.0.2, so that the flood comes from an
// address of its own, as it would from another machine: the server's
// per-address budgets (connections, failed authentications, refusals over
// the rate limits) then see two peers, not one.
func floodClient(server string, hc *http.Client) *http.Client {
	u, err := url.Parse(server)
	if err != nil || u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" {
		return hc
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = floodClients
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	t.DialContext = d.DialContext
	return &http.Client{Transport: t}
}

// floodBodies marshals the flood's AppendBatch requests once: the flooding
// client spends no CPU per request beyond sending it, as a flooder on a
// machine of its own would not slow the server's machine.
func floodBodies(envs [][]byte) ([][]byte, error) {
	var bodies [][]byte
	for i := 0; i+floodBatch <= len(envs); i += floodBatch {
		b, err := proto.Marshal(&warrantv1.AppendBatchRequest{Envelopes: envs[i : i+floodBatch]})
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, b)
	}
	return bodies, nil
}

// floodOnce posts one batch (Connect, binary protobuf) and counts its
// entries appended and refused; it verifies nothing, as a flooder would not.
func floodOnce(ctx context.Context, hc *http.Client, url string, body []byte) (ok, refused int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/proto")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("flood batch: %s %v", resp.Status, err)
	}
	var m warrantv1.AppendBatchResponse
	if err := proto.Unmarshal(raw, &m); err != nil {
		return 0, 0, err
	}
	for _, r := range m.GetResults() {
		if r.GetEntry() != nil {
			ok++
		} else {
			refused++
		}
	}
	return ok, refused, nil
}

func quantileMS(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[min(int(q*float64(len(ds))), len(ds)-1)].Microseconds()) / 1000
}

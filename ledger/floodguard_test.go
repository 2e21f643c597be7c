package ledger

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
)

// rpcFrom is a Connect client of srv whose connections come from the
// loopback address ip, so that a test can play two peers.
func rpcFrom(srv *httptest.Server, ip string) warrantv1connect.LedgerServiceClient {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	t.DialContext = d.DialContext
	return warrantv1connect.NewLedgerServiceClient(&http.Client{Transport: t}, srv.URL)
}

// TestFloodGuardRefusesUnread: a peer that keeps posting appends over its
// agent's limits spends its flood budget and is then refused before its
// requests are read, Append and AppendBatch alike, while another peer is
// served; nothing is written.
func TestFloodGuardRefusesUnread(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.AgentRate, o.AgentBurst = 1e-6, 3 // the registrar's two bindings, then one grant
		o.FloodByteRate, o.FloodByteBurst = 1e-6, 64<<10
	})
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	ctx := context.Background()
	flooder, calm := rpcFrom(srv, "127.0.0.2"), rpcFrom(srv, "127.0.0.1")

	envs := rootGrants(t, f.human, humanID, "flood", 200)
	batch := func(from int) *connect.Request[warrantv1.AppendBatchRequest] {
		return connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: envs[from : from+60]})
	}
	// The first batch is read: one grant fits the agent's burst, the rest
	// are refused rate_limited and spend the peer's budget.
	resp, err := flooder.AppendBatch(ctx, batch(0))
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for _, r := range resp.Msg.Results {
		if r.Reason == ReasonRateLimited {
			limited++
		}
	}
	if limited != 57 {
		t.Fatalf("%d of 60 refused rate_limited, want 57 (the agent's burst is 3)", limited)
	}
	size := f.log.Checkpoint().Size
	// The next batch is refused unread, and so is a single append.
	_, err = flooder.AppendBatch(ctx, batch(60))
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "refused unread") {
		t.Fatalf("a batch after the budget is spent: %v, want ResourceExhausted refused unread", err)
	}
	// Single appends are read while what is left of the budget covers
	// them; each refusal spends its envelope's bytes, until none is read.
	for i := 120; ; i++ {
		_, err = flooder.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: envs[i]}))
		if strings.Contains(err.Error(), "refused unread") {
			break
		}
		if rpcReason(err) != ReasonRateLimited || i == len(envs)-1 {
			t.Fatalf("append %d: %v, want rate_limited, then refused unread", i, err)
		}
	}
	// Another peer is served as before.
	if _, err := calm.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := calm.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: signDelegation(t, f.agent, delegation("dlg_calm", agentID, humanID, "nonce-calm-0001"))})); rpcReason(err) == ReasonRateLimited && strings.Contains(err.Error(), "refused unread") {
		t.Fatalf("the other peer was refused by the flooder's budget: %v", err)
	}
	if got := f.log.Checkpoint().Size; got > size+1 {
		t.Fatalf("the log grew from %d to %d on refused requests", size, got)
	}
}

// TestFloodGuardGivesBackHonestBatches: an AppendBatch reserves its size
// from the peer's budget before it is read and gets it back when nothing
// in it was over the limits, so an honest peer may send any number of
// batches larger than the budget.
func TestFloodGuardGivesBackHonestBatches(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.FloodByteRate, o.FloodByteBurst = 1e-6, 64<<10 })
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	c := rpcFrom(srv, "127.0.0.3")
	envs := rootGrants(t, f.human, humanID, "honest", 300)
	for i := 0; i < len(envs); i += 60 { // 5 batches of about 40 KB: 200 KB through a 64 KiB budget
		resp, err := c.AppendBatch(context.Background(), connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: envs[i : i+60]}))
		if err != nil {
			t.Fatalf("honest batch %d: %v", i/60, err)
		}
		for j, r := range resp.Msg.Results {
			if r.Entry == nil {
				t.Fatalf("honest batch %d, envelope %d: %s %s", i/60, j, r.Reason, r.Message)
			}
		}
	}
}

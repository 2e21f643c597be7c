package client_test

// Benchmark of what a client does with every GetEntry answer: verify the
// checkpoint's signature, the entry's inclusion in it, and the leaf.
//
//	go test ./client -run '^$' -bench . -benchtime 2s

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// BenchmarkClientVerifyEntry fetches and verifies an accepted delegation
// (a child under a root grant) by index:
//
//   - end_to_end: client.Entry against a real ledger served on httptest
//     (Connect over HTTP/1.1 loopback, the server's reads included);
//   - canned_server: client.Entry against a server that answers every
//     GetEntry with the same recorded response, so only the client's work
//     and the transport remain;
//   - verify_only: the client's checks of that response alone, for a
//     checkpoint seen for the first time: the checkpoint's signature, the
//     entry's inclusion, the leaf's parse and id;
//   - verify_only_known_checkpoint: the same checks once the checkpoint is
//     known to verify (the client keeps the last few verified notes, so
//     this is its steady state): inclusion, leaf parse and id.
func BenchmarkClientVerifyEntry(b *testing.B) {
	ctx := context.Background()
	e := openLog(b, envOptions{})
	url := e.serve(b)
	c := client.New(url, e.verifier)
	alice, planner, worker := newAgent(b, "human/alice", false), newAgent(b, "agent/planner", false), newAgent(b, "agent/worker", true)
	mustAppend(b, c, e.bindingEnvelope(b, alice, true))
	mustAppend(b, c, e.bindingEnvelope(b, planner, false))
	mustAppend(b, c, e.bindingEnvelope(b, worker, false))
	root := e.rootGrant(b, "dlg_root", alice, planner)
	mustAppend(b, c, sign(b, alice, root))
	entry := mustAppend(b, c, sign(b, planner, child(b, "dlg_child", root, planner, worker)))
	idx := entry.Index
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("end_to_end", func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Entry(ctx, idx); err != nil {
				b.Fatal(err)
			}
		}
	})

	// One real answer, recorded, for a client that trusts its checkpoint.
	resp, err := getEntry(ctx, rpcClient(url), idx, cp.Size)
	if err != nil {
		b.Fatal(err)
	}
	if len(resp.GetConsistencyProof()) != 0 || resp.GetEntry().GetIndex() != idx {
		b.Fatalf("recorded answer: %v", resp)
	}

	b.Run("canned_server", func(b *testing.B) {
		// Compressed like the ledger's handler: only answers of 16 KiB or
		// more (this one is about 2 KiB).
		mux := http.NewServeMux()
		mux.Handle(warrantv1connect.NewLedgerServiceHandler(cannedEntry{resp: resp}, connect.WithCompressMinBytes(16<<10)))
		cc := client.New(serve(b, mux).URL, e.verifier)
		if _, err := cc.Entry(ctx, idx); err != nil { // trust on first use
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := cc.Entry(ctx, idx); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("verify_only", func(b *testing.B) {
		pe := resp.GetEntry()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cp, err := proofs.OpenCheckpoint(pe.GetCheckpoint(), e.verifier)
			if err != nil {
				b.Fatal(err)
			}
			if err := proofs.VerifyInclusion(pe.GetIndex(), cp.Size, proofs.LeafHash(pe.GetLeaf()), pe.GetInclusionProof(), cp.Root); err != nil {
				b.Fatal(err)
			}
			leaf, err := proofs.ParseLeaf(pe.GetLeaf())
			if err != nil {
				b.Fatal(err)
			}
			if leaf.ID() != pe.GetId() {
				b.Fatalf("id %q, leaf says %q", pe.GetId(), leaf.ID())
			}
		}
	})

	b.Run("verify_only_known_checkpoint", func(b *testing.B) {
		pe := resp.GetEntry()
		cp, err := proofs.OpenCheckpoint(pe.GetCheckpoint(), e.verifier)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := proofs.VerifyInclusion(pe.GetIndex(), cp.Size, proofs.LeafHash(pe.GetLeaf()), pe.GetInclusionProof(), cp.Root); err != nil {
				b.Fatal(err)
			}
			leaf, err := proofs.ParseLeaf(pe.GetLeaf())
			if err != nil {
				b.Fatal(err)
			}
			if leaf.ID() != pe.GetId() {
				b.Fatalf("id %q, leaf says %q", pe.GetId(), leaf.ID())
			}
		}
	})
}

// cannedEntry answers every GetEntry with the same response.
type cannedEntry struct {
	warrantv1connect.UnimplementedLedgerServiceHandler
	resp *warrantv1.GetEntryResponse
}

func (c cannedEntry) GetEntry(context.Context, *connect.Request[warrantv1.GetEntryRequest]) (*connect.Response[warrantv1.GetEntryResponse], error) {
	return connect.NewResponse(c.resp), nil
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// TestListChildrenBatch checks that ListChildrenBatch answers each
// delegation with exactly the first page ListChildren answers, in the
// order asked, stops adding delegations at MaxBatchEntries, and refuses
// empty and oversized requests with their reason codes.
func TestListChildrenBatch(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	appendOK := func(env []byte) {
		t.Helper()
		if _, err := f.log.Append(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		appendOK(signDelegation(t, f.human, delegation(fmt.Sprintf("dlg-r%d", i), humanID, agentID, fmt.Sprintf("nonce-root-%04d", i))))
	}
	child := func(parent string, i int) []byte {
		d := delegation(fmt.Sprintf("%s-c%d", parent, i), agentID, humanID, fmt.Sprintf("nonce-%s-%04d", parent, i))
		d.RootSubject, d.Parent = humanID, parent
		return signDelegation(t, f.agent, d)
	}
	for i := range 150 {
		appendOK(child("dlg-r0", i))
	}
	for i := range 2 {
		appendOK(child("dlg-r1", i))
	}
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	rpc := warrantv1connect.NewLedgerServiceClient(srv.Client(), srv.URL)

	ids := []string{"dlg-r1", "dlg-r0", "dlg-r2", "dlg-none"}
	resp, err := rpc.ListChildrenBatch(ctx, connect.NewRequest(&warrantv1.ListChildrenBatchRequest{DelegationIds: ids}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Msg.Pages) != len(ids) {
		t.Fatalf("%d pages, want %d", len(resp.Msg.Pages), len(ids))
	}
	for i, p := range resp.Msg.Pages {
		if p.DelegationId != ids[i] {
			t.Errorf("page %d is %q, want %q", i, p.DelegationId, ids[i])
		}
		one, err := rpc.ListChildren(ctx, connect.NewRequest(&warrantv1.ListChildrenRequest{DelegationId: ids[i], PageSize: MaxListPage}))
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(p, &warrantv1.ChildrenPage{DelegationId: ids[i], Entries: one.Msg.Entries, NextStartIndex: one.Msg.NextStartIndex}) {
			t.Errorf("%s: the batch's page differs from ListChildren's", ids[i])
		}
	}
	if n, next := len(resp.Msg.Pages[1].Entries), resp.Msg.Pages[1].NextStartIndex; n != MaxListPage || next == 0 {
		t.Errorf("dlg-r0: %d entries, next %d; want a full page and where the rest starts", n, next)
	}
	if len(resp.Msg.Pages[0].Entries) != 2 || len(resp.Msg.Pages[2].Entries) != 0 {
		t.Errorf("dlg-r1 has %d children (want 2), dlg-r2 %d (want 0)", len(resp.Msg.Pages[0].Entries), len(resp.Msg.Pages[2].Entries))
	}

	// Full pages of 100 reach the bound of 500 after five delegations.
	six := []string{"dlg-r0", "dlg-r0", "dlg-r0", "dlg-r0", "dlg-r0", "dlg-r1"}
	resp, err = rpc.ListChildrenBatch(ctx, connect.NewRequest(&warrantv1.ListChildrenBatchRequest{DelegationIds: six}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Msg.Pages) != MaxBatchEntries/MaxListPage {
		t.Errorf("%d delegations answered, want %d (the answer holds %d entries)", len(resp.Msg.Pages), MaxBatchEntries/MaxListPage, MaxBatchEntries)
	}
	cp := resp.Msg.Pages[0].Entries[0].Checkpoint
	for _, p := range resp.Msg.Pages {
		for _, e := range p.Entries {
			if string(e.Checkpoint) != string(cp) {
				t.Fatalf("entry %d is proven against another checkpoint", e.Index)
			}
		}
	}

	for _, c := range []struct {
		name   string
		ids    []string
		reason string
	}{
		{"none", nil, proofs.ReasonFieldMissing},
		{"101", make([]string, MaxBatchParents+1), proofs.ReasonListTooLong},
	} {
		_, err := rpc.ListChildrenBatch(ctx, connect.NewRequest(&warrantv1.ListChildrenBatchRequest{DelegationIds: c.ids}))
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || reasonOf(ce) != c.reason {
			t.Errorf("%s: %v, want InvalidArgument %s", c.name, err, c.reason)
		}
	}
}

package client

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// TestRefusalReason: the reason code of an Unavailable answer is read in
// each protocol connect-go writes (Connect's JSON, gRPC's and gRPC-Web's
// status details), and decides whether an append fails over.
func TestRefusalReason(t *testing.T) {
	for _, ct := range []string{"application/json", "application/proto", "application/grpc", "application/grpc+proto", "application/grpc-web+proto"} {
		for _, reason := range []string{proofs.ReasonWitnessUnavailable, proofs.ReasonNotLeader} {
			cerr := connect.NewError(connect.CodeUnavailable, errors.New("refused"))
			d, err := connect.NewErrorDetail(&warrantv1.ErrorDetail{Reason: reason})
			if err != nil {
				t.Fatal(err)
			}
			cerr.AddDetail(d)
			req := httptest.NewRequest(http.MethodPost, warrantv1connect.LedgerServiceAppendProcedure, nil)
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			if err := connect.NewErrorWriter().Write(rec, req, cerr); err != nil {
				t.Fatalf("%s: %v", ct, err)
			}
			resp := rec.Result()
			_, refused := refusal(resp, warrantv1connect.LedgerServiceAppendProcedure)
			if want := reason != proofs.ReasonWitnessUnavailable; refused != want {
				t.Errorf("%s, %s: an append fails over: %v, want %v (status %d, headers %v)", ct, reason, refused, want, resp.StatusCode, resp.Header)
			}
			if _, refused := refusal(rec.Result(), warrantv1connect.LedgerServiceGetCheckpointProcedure); !refused {
				t.Errorf("%s, %s: a read does not fail over", ct, reason)
			}
		}
	}
}

package ledger

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/proofs"
)

// TestReasonStatuses checks that the server answers every reason code of
// the catalogue (proofs/reasons.go) with the catalogue's status and the
// code in an ErrorDetail, and that the catalogue's numbers are Connect's
// codes of the names it gives them.
func TestReasonStatuses(t *testing.T) {
	upper := regexp.MustCompile(`([a-z])([A-Z])`)
	for _, r := range proofs.Reasons() {
		want := connect.CodeInvalidArgument // the answer to a code no refusal carries
		if r.Kind == proofs.Refusal {
			want = connect.Code(r.RPC)
			if name := strings.ToLower(upper.ReplaceAllString(r.RPC.String(), "${1}_${2}")); want.String() != name {
				t.Errorf("%s: catalogue status %v is Connect's %v", r.Code, r.RPC, want)
			}
		}
		var ce *connect.Error
		if !errors.As(connectError(proofs.Errorf(r.Code, "test")), &ce) {
			t.Fatalf("%s: not a Connect error", r.Code)
		}
		if ce.Code() != want {
			t.Errorf("%s (%v): answered %v, want %v", r.Code, r.Kind, ce.Code(), want)
		}
		if got := detailReason(ce); got != r.Code {
			t.Errorf("%s: ErrorDetail reason %q", r.Code, got)
		}
	}
	var ce *connect.Error
	if !errors.As(connectError(errors.New("no reason")), &ce) || ce.Code() != connect.CodeInternal || detailReason(ce) != proofs.ReasonInternal {
		t.Errorf("an error without a reason code: %v", ce)
	}
}

func detailReason(ce *connect.Error) string {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ed, ok := v.(*warrantv1.ErrorDetail); ok {
				return ed.GetReason()
			}
		}
	}
	return ""
}

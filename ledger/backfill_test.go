package ledger

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"github.com/dgraph-io/badger/v4"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// TestPayloadIndexBackfilledForOlderLogs: an entry of a log written before
// deduplication moved to the signed payload is indexed by its canonical
// envelope only. Without the payload index, a variant of that envelope with
// other valid signatures (a co-signature stripped, by anyone; added, by any
// registered agent) would make a new entry under the issuer's name; the log
// indexes the signed payloads of such a store once, when it is opened (found
// by the security review of issue 11).
func TestPayloadIndexBackfilledForOlderLogs(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	approverID := "spiffe://example.org/human/bob"
	approver := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, approverID, approver, proofs.TierDraft, true)); err != nil {
		t.Fatal(err)
	}
	env, err := approver.signer.Cosign(signDelegation(t, f.human, delegation("dlg_review_old", humanID, agentID, "nonce-review-old")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.log.Append(ctx, env)
	if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("co-signed root grant: %v %+v", err, a)
	}

	// Make the entry look as a log written before payload deduplication
	// holds it: indexed by the hash of its canonical envelope only.
	p, err := proofs.ParseLeaf(a.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	envHash := proofs.EnvelopeHash(p.Envelope)
	payloadHash := proofs.PayloadHash(p.Env.PayloadType, p.Env.Payload)
	if err := f.log.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(hashKey(tPayload, payloadHash[:])); err != nil {
			return err
		}
		if err := txn.Delete(keyPayloadIndex); err != nil { // an older version wrote no marker
			return err
		}
		return txn.Set(hashKey(tEnvelope, envHash[:]), u64(a.Index))
	}); err != nil {
		t.Fatal(err)
	}

	// The upgrade: the log is opened again by this version.
	f.log.Close()
	f.log = openTestLog(t, f.dir, f.registrar, f.withAdmin)
	t.Cleanup(func() { f.log.Close() })

	// The attacker, without any key, strips the approval.
	var e struct {
		PayloadType string            `json:"payloadType"`
		Payload     string            `json:"payload"`
		Signatures  []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(p.Envelope, &e); err != nil {
		t.Fatal(err)
	}
	var stripped []byte
	for _, s := range e.Signatures {
		var sig struct {
			KeyID string `json:"keyid"`
		}
		if err := json.Unmarshal(s, &sig); err != nil {
			t.Fatal(err)
		}
		if sig.KeyID == f.human.signer.KeyID() {
			e.Signatures = []json.RawMessage{s}
			if stripped, err = json.Marshal(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv := httptest.NewServer(NewHandler(f.log))
	t.Cleanup(srv.Close)
	attacker := warrantv1connect.NewLedgerServiceClient(httpClientFrom("127.0.0.2"), srv.URL)
	before := f.log.Checkpoint().Size
	_, err = attacker.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: stripped}))
	if after := f.log.Checkpoint().Size; after != before {
		t.Errorf("stripping the approval of an entry of an older log wrote %d new entries (answer: %v); want none: the same signed payload is the same request", after-before, err)
	}
}

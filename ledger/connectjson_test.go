package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/proofs"
)

// The vector files this test reads (testdata/vectors/README.md).
type rawVecKeys struct {
	Keys []struct {
		Name      string `json:"name"`
		PublicPEM string `json:"public_pem"`
	} `json:"keys"`
	LogKey struct {
		Origin      string `json:"origin"`
		SignerKey   string `json:"note_signer_key"`
		VerifierKey string `json:"note_verifier_key"`
	} `json:"log_key"`
}

type rawVecEnvelopes struct {
	Envelopes []struct {
		Name     string `json:"name"`
		Envelope string `json:"envelope"`
	} `json:"envelopes"`
}

type rawVecLog struct {
	Entries []struct {
		Index    uint64 `json:"index"`
		ID       string `json:"id"`
		Envelope string `json:"envelope_name"`
		Leaf     string `json:"leaf"`
	} `json:"entries"`
	Checkpoints []struct {
		Size uint64 `json:"size"`
		Note string `json:"note"`
	} `json:"checkpoints"`
	Tiles []struct {
		Path    string `json:"path"`
		Content []byte `json:"content_b64"`
	} `json:"tiles"`
}

func readVector(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// Connect's JSON encoding of the messages this test reads: field names in
// lowerCamelCase, uint64 as decimal strings, bytes as standard base64, and
// fields at their zero value left out.
type jsonProvenEntry struct {
	Index          string   `json:"index"`
	Leaf           []byte   `json:"leaf"`
	ID             string   `json:"id"`
	Checkpoint     []byte   `json:"checkpoint"`
	InclusionProof [][]byte `json:"inclusionProof"`
}

type jsonAppendResponse struct {
	Entry            jsonProvenEntry `json:"entry"`
	Duplicate        bool            `json:"duplicate"`
	ConsistencyProof [][]byte        `json:"consistencyProof"`
}

// jsonConnectError is a Connect error body; each detail's value is the
// unpadded standard base64 of the detail message's protobuf encoding, and
// debug its JSON form.
type jsonConnectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string          `json:"type"`
		Value string          `json:"value"`
		Debug json.RawMessage `json:"debug"`
	} `json:"details"`
}

// TestConnectJSONRawHTTP speaks the Connect protocol's JSON form with plain
// net/http, as a client in any language would (docs/formats.md, "Calling
// the API over raw HTTP"), against a real server on loopback started with
// the vector log's key, trust anchors and log times. It appends the
// vectors' envelopes and requires the server to answer with exactly the
// vectors' leaves and final checkpoint, and a denial to arrive as a
// permission_denied error carrying its AppendResponse.
func TestConnectJSONRawHTTP(t *testing.T) {
	var keys rawVecKeys
	var envs rawVecEnvelopes
	var vlog rawVecLog
	readVector(t, "keys.json", &keys)
	readVector(t, "envelopes.json", &envs)
	readVector(t, "log.json", &vlog)
	pub := map[string]*proofs.PublicKey{}
	for _, k := range keys.Keys {
		pk, err := proofs.ParsePublicKeyPEM([]byte(k.PublicPEM))
		if err != nil {
			t.Fatal(err)
		}
		pub[k.Name] = pk
	}
	envelope := map[string]string{}
	for _, e := range envs.Envelopes {
		envelope[e.Name] = e.Envelope
	}
	logKey, err := proofs.ParseVerifierKey(keys.LogKey.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}

	// The log's clock reads whatever the test sets: each entry's log time.
	var now atomic.Int64
	setTime := func(leaf string) {
		p, err := proofs.ParseLeaf([]byte(leaf))
		if err != nil {
			t.Fatal(err)
		}
		now.Store(p.Time.UnixNano())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LogKeyFile), []byte(keys.LogKey.SignerKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setTime(vlog.Entries[0].Leaf)
	l, err := Open(context.Background(), Options{
		Dir: dir, Origin: keys.LogKey.Origin, Logger: quietLogger(), AgentRate: -1,
		RegistrarKeys: []*proofs.PublicKey{pub["registrar"]}, AdminKeys: []*proofs.PublicKey{pub["admin"]},
		Now: func() time.Time { return time.Unix(0, now.Load()).UTC() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(NewHandler(l)) // a real listener on 127.0.0.1
	defer srv.Close()
	ctx := context.Background()
	for i := range 2 { // written by the server itself when it starts
		leaf, err := l.Entry(ctx, uint64(i))
		if err != nil || string(leaf) != vlog.Entries[i].Leaf {
			t.Fatalf("entry %d: %v\n got %s\nwant %s", i, err, leaf, vlog.Entries[i].Leaf)
		}
	}

	call := func(method, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/warrant.v1.LedgerService/"+method, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		return resp.StatusCode, b
	}
	post := func(body string) (int, []byte) { t.Helper(); return call("Append", body) }
	// checkEntry verifies a returned entry as a client must: the checkpoint
	// under the log key, then the leaf's inclusion in it.
	checkEntry := func(e jsonProvenEntry, want string, wantIndex uint64, wantID string) {
		t.Helper()
		if string(e.Leaf) != want || e.Index != strconv.FormatUint(wantIndex, 10) || e.ID != wantID {
			t.Fatalf("entry %s (%s):\n got %s\nwant %s", e.Index, e.ID, e.Leaf, want)
		}
		cp, err := proofs.OpenCheckpoint(e.Checkpoint, logKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := proofs.VerifyInclusion(wantIndex, cp.Size, proofs.LeafHash(e.Leaf), e.InclusionProof, cp.Root); err != nil {
			t.Fatal(err)
		}
	}

	var last []byte
	for _, ve := range vlog.Entries[2:] {
		setTime(ve.Leaf)
		body := `{"envelope":"` + base64.StdEncoding.EncodeToString([]byte(envelope[ve.Envelope])) + `","trustedSize":"2"}`
		status, b := post(body)
		if ve.Envelope != "delegation_denied" {
			if status != http.StatusOK {
				t.Fatalf("%s: HTTP %d: %s", ve.Envelope, status, b)
			}
			var r jsonAppendResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			checkEntry(r.Entry, ve.Leaf, ve.Index, ve.ID)
			last = r.Entry.Checkpoint
			continue
		}
		// The denial: HTTP 403, code permission_denied, an ErrorDetail with
		// the first reason, then the AppendResponse of the recorded entry.
		if status != http.StatusForbidden {
			t.Fatalf("denial: HTTP %d: %s", status, b)
		}
		var ce jsonConnectError
		if err := json.Unmarshal(b, &ce); err != nil {
			t.Fatal(err)
		}
		if ce.Code != "permission_denied" || len(ce.Details) != 2 ||
			ce.Details[0].Type != "warrant.v1.ErrorDetail" || ce.Details[1].Type != "warrant.v1.AppendResponse" {
			t.Fatalf("denial body: %s", b)
		}
		var detail warrantv1.ErrorDetail
		if raw, err := base64.RawStdEncoding.DecodeString(ce.Details[0].Value); err != nil || proto.Unmarshal(raw, &detail) != nil || detail.GetReason() != "scope_widened" {
			t.Fatalf("ErrorDetail %q: %v", ce.Details[0].Value, err)
		}
		if string(ce.Details[0].Debug) != `{"reason":"scope_widened"}` {
			t.Errorf("ErrorDetail debug %s", ce.Details[0].Debug)
		}
		raw, err := base64.RawStdEncoding.DecodeString(ce.Details[1].Value)
		if err != nil {
			t.Fatal(err)
		}
		var ar warrantv1.AppendResponse
		if err := proto.Unmarshal(raw, &ar); err != nil {
			t.Fatal(err)
		}
		pe := ar.GetEntry()
		checkEntry(jsonProvenEntry{Index: strconv.FormatUint(pe.GetIndex(), 10), Leaf: pe.GetLeaf(), ID: pe.GetId(), Checkpoint: pe.GetCheckpoint(), InclusionProof: pe.GetInclusionProof()}, ve.Leaf, ve.Index, ve.ID)
		// debug is the same message as Connect JSON.
		var dbg jsonAppendResponse
		if err := json.Unmarshal(ce.Details[1].Debug, &dbg); err != nil {
			t.Fatal(err)
		}
		checkEntry(dbg.Entry, ve.Leaf, ve.Index, ve.ID)
	}
	want := vlog.Checkpoints[len(vlog.Checkpoints)-1]
	if string(last) != want.Note {
		t.Errorf("final checkpoint:\n got %s\nwant %s", last, want.Note)
	}

	// A resubmission is answered with the original entry, duplicate true.
	status, b := post(`{"envelope":"` + base64.StdEncoding.EncodeToString([]byte(envelope["delegation_root"])) + `"}`)
	var dup jsonAppendResponse
	if status != http.StatusOK || json.Unmarshal(b, &dup) != nil || !dup.Duplicate || dup.Entry.Index != "5" {
		t.Errorf("resubmission: HTTP %d %s", status, b)
	}
	// A refusal writes nothing: HTTP 401, unauthenticated, reason
	// signature_invalid (a bit of the signature flipped).
	env, err := proofs.ParseEnvelope([]byte(envelope["delegation_triage"]))
	if err != nil {
		t.Fatal(err)
	}
	env.Signatures[0].Sig[5] ^= 1
	status, b = post(`{"envelope":"` + base64.StdEncoding.EncodeToString(env.Canonical()) + `"}`)
	var ce jsonConnectError
	if status != http.StatusUnauthorized || json.Unmarshal(b, &ce) != nil || ce.Code != "unauthenticated" ||
		len(ce.Details) != 1 || string(ce.Details[0].Debug) != `{"reason":"signature_invalid"}` {
		t.Errorf("bad signature: HTTP %d %s", status, b)
	}
	if got := l.Checkpoint().Size; got != uint64(len(vlog.Entries)) {
		t.Errorf("log size %d after the refusals, want %d", got, len(vlog.Entries))
	}

	// Reads: GetEntry by delegation id (a oneof member), GetCheckpoint.
	status, b = call("GetEntry", `{"delegationId":"dlg_triage"}`)
	var ge struct {
		Entry  jsonProvenEntry `json:"entry"`
		Status struct {
			State      string `json:"state"`
			RevokedVia string `json:"revokedVia"`
		} `json:"status"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &ge) != nil {
		t.Fatalf("GetEntry: HTTP %d %s", status, b)
	}
	checkEntry(ge.Entry, vlog.Entries[6].Leaf, 6, "dlg_triage")
	if ge.Status.State != "revoked" || ge.Status.RevokedVia != "dlg_triage" {
		t.Errorf("GetEntry status: %s", b)
	}
	status, b = call("GetInclusionProof", `{"index":"6","treeSize":"10"}`)
	var gi struct {
		Index    string   `json:"index"`
		TreeSize string   `json:"treeSize"`
		Hashes   [][]byte `json:"hashes"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &gi) != nil || gi.Index != "6" || gi.TreeSize != "10" ||
		proofs.VerifyInclusion(6, 10, proofs.LeafHash([]byte(vlog.Entries[6].Leaf)), gi.Hashes, mustRoot(t, want.Note, logKey)) != nil {
		t.Errorf("GetInclusionProof: HTTP %d %s", status, b)
	}
	status, b = call("GetConsistencyProof", `{"fromSize":"7","toSize":"10"}`)
	var gcp struct {
		FromSize string   `json:"fromSize"`
		ToSize   string   `json:"toSize"`
		Hashes   [][]byte `json:"hashes"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &gcp) != nil || gcp.FromSize != "7" || gcp.ToSize != "10" ||
		proofs.VerifyConsistency(7, 10, gcp.Hashes, mustRoot(t, vlog.Checkpoints[1].Note, logKey), mustRoot(t, want.Note, logKey)) != nil {
		t.Errorf("GetConsistencyProof: HTTP %d %s", status, b)
	}
	status, b = call("GetCheckpoint", `{}`)
	var gc struct {
		Checkpoint []byte `json:"checkpoint"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &gc) != nil || string(gc.Checkpoint) != want.Note {
		t.Errorf("GetCheckpoint: HTTP %d %s", status, b)
	}
	// The same tree as C2SP tlog-tiles.
	for _, tv := range vlog.Tiles {
		resp, err := srv.Client().Get(srv.URL + "/" + tv.Path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, tv.Content) {
			t.Errorf("GET /%s: HTTP %d, %d bytes, want the vector's %d bytes (%v)", tv.Path, resp.StatusCode, len(body), len(tv.Content), err)
		}
	}
}

func mustRoot(t *testing.T, signed string, v note.Verifier) []byte {
	t.Helper()
	cp, err := proofs.OpenCheckpoint([]byte(signed), v)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Root
}

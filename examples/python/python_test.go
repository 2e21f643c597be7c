// Package python_test checks the standard-library Python signer in this
// directory: written from docs/formats.md alone, it must reproduce the
// test vectors byte for byte and get its delegations decided by a real
// server over raw HTTP. The tests skip when python3 is not installed.
package python_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

const vectors = "../../testdata/vectors"

func python(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	return py
}

// run runs the signer with args and returns its stdout and exit code.
func run(t *testing.T, py string, args ...string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"warrant_sign.py"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("python3 %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out, code
}

type vecKeys struct {
	Keys []struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		PrivatePEM string `json:"private_pkcs8_pem"`
		PublicPEM  string `json:"public_pem"`
		KeyID      string `json:"key_id"`
	} `json:"keys"`
}

type vecEnvelopes struct {
	Envelopes []struct {
		Name          string `json:"name"`
		PayloadType   string `json:"payload_type"`
		PayloadText   string `json:"payload_text"`
		Deterministic bool   `json:"deterministic"`
		Envelope      string `json:"envelope"`
	} `json:"envelopes"`
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestPythonReproducesVectors: the Python encoder and signer give exactly
// the vectors' key ids, canonical strings and Ed25519 delegation envelopes.
func TestPythonReproducesVectors(t *testing.T) {
	py := python(t)
	out, code := run(t, py, "--check", vectors)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got struct {
		KeyIDs    map[string]string `json:"key_ids"`
		Envelopes map[string]string `json:"envelopes"`
		Strings   []string          `json:"strings"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var keys vecKeys
	var envs vecEnvelopes
	var canon struct {
		Strings []struct {
			Name    string `json:"name"`
			Encoded string `json:"encoded"`
		} `json:"strings"`
	}
	readJSON(t, "keys.json", &keys)
	readJSON(t, "envelopes.json", &envs)
	readJSON(t, "canonical_json.json", &canon)
	for _, k := range keys.Keys {
		if k.Type == "ed25519" && got.KeyIDs[k.Name] != k.KeyID {
			t.Errorf("key id of %s: %q, want %q", k.Name, got.KeyIDs[k.Name], k.KeyID)
		}
	}
	if len(got.Strings) != len(canon.Strings) {
		t.Fatalf("%d strings, want %d", len(got.Strings), len(canon.Strings))
	}
	for i, c := range canon.Strings {
		if got.Strings[i] != c.Encoded {
			t.Errorf("%s: %q, want %q", c.Name, got.Strings[i], c.Encoded)
		}
	}
	n := 0
	for _, e := range envs.Envelopes {
		if e.PayloadType != proofs.PayloadTypeDelegation || !e.Deterministic {
			continue
		}
		n++
		if got.Envelopes[e.Name] != e.Envelope {
			t.Errorf("%s:\n got %s\nwant %s", e.Name, got.Envelopes[e.Name], e.Envelope)
		}
	}
	if n < 3 || len(got.Envelopes) != n {
		t.Errorf("Python signed %d delegations, the vectors have %d", len(got.Envelopes), n)
	}
}

// TestPythonAgainstServer: delegations signed by the Python example and
// sent with its raw-HTTP Append are accepted, or denied with the reason in
// the error details, by a real server on loopback.
func TestPythonAgainstServer(t *testing.T) {
	py := python(t)
	var keys vecKeys
	var envs vecEnvelopes
	readJSON(t, "keys.json", &keys)
	readJSON(t, "envelopes.json", &envs)
	dir := t.TempDir()
	pub := map[string]*proofs.PublicKey{}
	for _, k := range keys.Keys {
		p, err := proofs.ParsePublicKeyPEM([]byte(k.PublicPEM))
		if err != nil {
			t.Fatal(err)
		}
		pub[k.Name] = p
		if err := os.WriteFile(filepath.Join(dir, k.Name+".key"), []byte(k.PrivatePEM), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	for _, e := range envs.Envelopes {
		env[e.Name] = e.Envelope
		if e.PayloadType == proofs.PayloadTypeDelegation {
			if err := os.WriteFile(filepath.Join(dir, e.Name+".json"), []byte(e.PayloadText), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The vectors' payload times are around 2026-01-02T15:04:05Z: the
	// log's clock stays there.
	at := time.Date(2026, 1, 2, 15, 4, 30, 0, time.UTC)
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir: filepath.Join(dir, "log"), Origin: "test.example/python", AgentRate: -1,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		RegistrarKeys: []*proofs.PublicKey{pub["registrar"]},
		Now:           func() time.Time { return at },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, b := range []string{"binding_alice", "binding_planner", "binding_executor"} {
		if _, err := l.Append(context.Background(), []byte(env[b])); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	srv := httptest.NewServer(ledger.NewHandler(l))
	defer srv.Close()

	type answer struct {
		Status int `json:"status"`
		Answer struct {
			Entry struct {
				Index string `json:"index"`
				ID    string `json:"id"`
				Leaf  []byte `json:"leaf"`
			} `json:"entry"`
			Code    string `json:"code"`
			Details []struct {
				Type  string          `json:"type"`
				Debug json.RawMessage `json:"debug"`
			} `json:"details"`
		} `json:"answer"`
	}
	send := func(key, payload string) (answer, int) {
		out, code := run(t, py, "--key", filepath.Join(dir, key+".key"), "--payload", filepath.Join(dir, payload+".json"), "--server", srv.URL)
		var a answer
		if err := json.Unmarshal(out, &a); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return a, code
	}
	a, code := send("alice", "delegation_root")
	if code != 0 || a.Status != 200 || a.Answer.Entry.ID != "dlg_root" {
		t.Fatalf("root grant: exit %d, %+v", code, a)
	}
	// The leaf holds exactly the envelope the vectors hold.
	p, err := proofs.ParseLeaf(a.Answer.Entry.Leaf)
	if err != nil || string(p.Envelope) != env["delegation_root"] || p.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("leaf %s: %v", a.Answer.Entry.Leaf, err)
	}
	a, code = send("planner", "delegation_denied")
	if code != 1 || a.Status != 403 || a.Answer.Code != "permission_denied" || len(a.Answer.Details) != 2 {
		t.Fatalf("wider delegation: exit %d, %+v", code, a)
	}
	var detail struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(a.Answer.Details[0].Debug, &detail); err != nil || detail.Reason != "scope_widened" {
		t.Errorf("denial detail %s: %v", a.Answer.Details[0].Debug, err)
	}
}

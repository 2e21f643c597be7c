package main

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// TestMCPExample runs examples/mcp-tickets/README.md's block verbatim with
// bash, as a user would, against the built warrant, mcp-tickets and
// mcp-agent: Alice → planner → executor; the executor reads tickets, its
// write is refused insufficient_scope; after Alice revokes the planner's
// grant a token issued before is inactive for introspection at once and
// the next exchange is refused invalid_grant. Then, with the same
// processes still running, it tries what an attacker would: a token
// presented with a proof of another key, a replayed proof, no DPoP; and a
// write whose token's chain is revoked, stopped by the server's
// introspection while the token has minutes to live.
func TestMCPExample(t *testing.T) {
	script := markedBlock(t, "../../examples/mcp-tickets/README.md", "mcp")
	binDir := filepath.Dir(warrantBin)
	if out, err := exec.Command("go", "build", "-o", binDir+"/", "../../examples/mcp-tickets", "../../examples/mcp-agent").CombinedOutput(); err != nil {
		t.Fatalf("building the examples: %v\n%s", err, out)
	}
	dir := t.TempDir()
	addr, mcpAddr := freeAddr(t), freeAddr(t)
	env := append(userEnv(t, dir, addr), "MCP_LISTEN="+mcpAddr)
	outFile, err := os.Create(filepath.Join(dir, "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	// A file, not a pipe: the servers the script leaves running keep it
	// open, and the test goes on using them.
	cmd.Stdout, cmd.Stderr = outFile, outFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		err = errTimeout
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(dir, "tickets.log"))
		t.Fatalf("the README block failed: %v\n%s\nmcp-tickets log:\n%s", err, out, logs)
	}
	for _, want := range []string{
		`{"tickets":[{`, `"title":"printer on floor 3 is out of toner"`,
		"error: insufficient_scope: the token lacks scope tickets:write\nwrite refused, as the delegation says\n",
		"in force: NO (inactive, from introspection)",
		"(invalid_grant)\nexchange refused: the chain is revoked\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the README block's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "reset the VPN") {
		t.Errorf("the refused write went through:\n%s", out)
	}
	if t.Failed() {
		return
	}

	// The same processes, from the outside.
	env = append(env, "WARRANT_LOG_KEY=@"+filepath.Join(dir, "warrant-data", "log.vkey"))
	issuer := "http://" + addr
	mcpURL := "http://" + mcpAddr + "/mcp"

	// The README's audit line in its default environment (no
	// WARRANT_SERVER; $WARRANT as the block sets it), where a bare
	// `warrant audit` is a usage error: it must name its source.
	auditLine := regexp.MustCompile(`(?m)^warrant audit\b.*$`).FindString(script)
	auditCmd := exec.Command("bash", "-euo", "pipefail", "-c", auditLine)
	auditCmd.Dir, auditCmd.Env = dir, append(slices.Clone(env), "WARRANT_SERVER=", "WARRANT="+issuer)
	if out, err := auditCmd.CombinedOutput(); auditLine == "" || err != nil {
		t.Fatalf("the README's %q without WARRANT_SERVER: %v\n%s", auditLine, err, out)
	}
	mustWarrant(t, dir, env, "delegate", "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/planner",
		"--task", "/tickets", "--dest", mcpURL, "--scope", "tickets:read", "--scope", "tickets:write", "--ttl", "1h", "--id", "dlg_root2")
	mustWarrant(t, dir, env, "delegate", "--key", "planner.key", "--issuer", "spiffe://example.org/agent/planner", "--to", "spiffe://example.org/agent/executor",
		"--task", "/tickets", "--dest", mcpURL, "--scope", "tickets:read", "--ttl", "10m", "--parent", "dlg_root2", "--id", "dlg_exec2")
	execTok := strings.TrimSpace(mustWarrant(t, dir, env, "token", "--key", "executor.key", "--delegation", "dlg_exec2", "--resource", mcpURL))
	plannerTok := strings.TrimSpace(mustWarrant(t, dir, env, "token", "--key", "planner.key", "--delegation", "dlg_root2", "--resource", mcpURL))
	execKey, plannerKey := readKey(t, filepath.Join(dir, "executor.key")), readKey(t, filepath.Join(dir, "planner.key"))
	read := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.read","arguments":{}}}`
	write := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tickets.write","arguments":{"title":"rotate the keys"}}}`
	proof := func(key crypto.Signer, tok string) string {
		p, err := dpop.NewProof(key, "POST", mcpURL, time.Now(), dpop.ProofOptions{AccessToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// No token: the challenge names the resource metadata, which names
	// warrant.
	st, hdr, _ := mcpPost(t, mcpURL, read, "", "")
	meta := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(hdr.Get("WWW-Authenticate"))
	if st != http.StatusUnauthorized || meta == nil {
		t.Fatalf("no token: %d %q", st, hdr.Get("WWW-Authenticate"))
	}
	var md struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	resp, err := http.Get(meta[1])
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md.Resource != mcpURL || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != issuer {
		t.Fatalf("protected resource metadata %+v", md)
	}

	p := proof(execKey, execTok)
	if st, _, body := mcpPost(t, mcpURL, read, "DPoP "+execTok, p); st != http.StatusOK || !strings.Contains(body, "printer on floor 3") {
		t.Fatalf("the executor's own call: %d %s", st, body)
	}
	for _, c := range []struct {
		name, auth, proof, code string
	}{
		{"the same proof replayed", "DPoP " + execTok, p, "invalid_dpop_proof"},
		{"a proof of another key (the planner's)", "DPoP " + execTok, proof(plannerKey, execTok), "invalid_token"},
		{"no DPoP proof", "DPoP " + execTok, "", "invalid_dpop_proof"},
		{"as a Bearer token", "Bearer " + execTok, "", "invalid_token"},
		{"as a Bearer token with a proof", "Bearer " + execTok, proof(execKey, execTok), "invalid_token"},
	} {
		st, hdr, _ := mcpPost(t, mcpURL, read, c.auth, c.proof)
		if ch := hdr.Get("WWW-Authenticate"); st != http.StatusUnauthorized || !strings.Contains(ch, `error="`+c.code+`"`) {
			t.Errorf("%s: %d %q, want 401 %s", c.name, st, ch, c.code)
		}
	}

	// Bodies the SDK reads as a tickets.write but encoding/json would not
	// (trailing data; a key beside one differing only in case), and a
	// batch: refused before the SDK sees them, with a read-only token
	// here and with a revoked one below; no ticket is written.
	sneaky := []string{
		strings.Replace(write, "rotate the keys", "sneaked", 1) + " x",
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"tickets.write","Name":"tickets.read","arguments":{"title":"sneaked"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","Method":"x","params":{"name":"tickets.write","arguments":{"title":"sneaked"}}}`,
		`[{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"tickets.write","arguments":{"title":"sneaked"}}}]`,
	}
	trySneaky := func(who string, key crypto.Signer, tok string) {
		t.Helper()
		for _, msg := range sneaky {
			if st, _, body := mcpPost(t, mcpURL, msg, "DPoP "+tok, proof(key, tok)); st != http.StatusBadRequest || strings.Contains(body, "sneaked") {
				t.Errorf("%s: %s answered %d %s, want 400", who, msg, st, body)
			}
		}
	}
	trySneaky("a read-only token", execKey, execTok)

	// The planner may write; once Alice revokes its grant, its token,
	// minutes from expiry, writes no more (introspection), though reads,
	// which do not ask, take it until it expires.
	if st, _, body := mcpPost(t, mcpURL, write, "DPoP "+plannerTok, proof(plannerKey, plannerTok)); st != http.StatusOK || !strings.Contains(body, "rotate the keys") {
		t.Fatalf("the planner's write: %d %s", st, body)
	}
	mustWarrant(t, dir, env, "revoke", "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--id", "dlg_root2", "--reason", "done")
	st, hdr, body := mcpPost(t, mcpURL, write, "DPoP "+plannerTok, proof(plannerKey, plannerTok))
	if ch := hdr.Get("WWW-Authenticate"); st != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("a write right after the revocation: %d %q %s", st, ch, body)
	}
	if st, _, body := mcpPost(t, mcpURL, read, "DPoP "+plannerTok, proof(plannerKey, plannerTok)); st != http.StatusOK {
		t.Fatalf("a read with the same token: %d %s", st, body)
	}
	trySneaky("a token whose chain is revoked", plannerKey, plannerTok)
	if st, _, body := mcpPost(t, mcpURL, read, "DPoP "+plannerTok, proof(plannerKey, plannerTok)); st != http.StatusOK || strings.Contains(body, "sneaked") {
		t.Fatalf("the tickets after the refused writes: %d %s", st, body)
	}
	r := warrant(t, dir, env, "token", "--key", "executor.key", "--delegation", "dlg_exec2", "--resource", mcpURL)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, "invalid_grant") {
		t.Fatalf("an exchange under the revoked grant: exit %d %q", r.code, r.stderr)
	}

	// Every issuance and refusal is in the log, which audits clean.
	audit := mustWarrant(t, dir, env, "audit", "--server", issuer, "--json")
	var rep struct {
		Verified      bool           `json:"verified"`
		Entries       map[string]int `json:"entries"`
		Discrepancies []any          `json:"discrepancies"`
	}
	if err := json.Unmarshal([]byte(audit), &rep); err != nil || !rep.Verified || len(rep.Discrepancies) != 0 || rep.Entries["token"] < 6 {
		t.Fatalf("audit: %s", audit)
	}
}

var errTimeout = os.ErrDeadlineExceeded

// markedBlock is the sh block of a Markdown file between <!-- NAME:begin
// --> and <!-- NAME:end -->.
func markedBlock(t *testing.T, path, name string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- " + name + ":begin -->\\s*```sh\\n(.*?)```\\s*<!-- " + name + ":end -->").FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no %s block", path, name)
	}
	return string(m[1])
}

// mcpPost sends one JSON-RPC message to the MCP endpoint with the given
// Authorization and DPoP headers (empty: none).
func mcpPost(t *testing.T, url, msg, auth, proof string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// readKey reads a PKCS #8 PEM private key as `warrant keygen` writes it.
func readKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

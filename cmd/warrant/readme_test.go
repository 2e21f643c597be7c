package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestREADMEQuickstart runs the README's quickstart block verbatim with
// bash, as a new user would, against the built binary.
func TestREADMEQuickstart(t *testing.T) {
	script := quickstartScript(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = userEnv(t, dir, addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the background server, if the script failed early
	if err != nil {
		serveLog, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Fatalf("quickstart failed: %v\n%s\nserver log:\n%s", err, out, serveLog)
	}
	for _, want := range []string{
		"registered spiffe://example.org/human/alice",
		`"id":"dlg_triage"`,
		"entry 6: delegation dlg_triage",
		"inclusion proof verified",
		"verified: entry 6 (delegation dlg_triage)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, out)
		}
	}
}

// quickstartScript is the README's quickstart block.
func quickstartScript(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- quickstart:begin -->\\s*```sh\\n(.*?)```\\s*<!-- quickstart:end -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no quickstart block")
	}
	return string(m[1])
}

package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConfigFilePrecedence: command-line flags beat environment variables,
// which beat the config file, which beats the defaults; repeatable flags
// collect the file's lines unless given on the command line.
func TestConfigFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "warrant.conf")
	os.WriteFile(path, []byte(`# a comment

data = /from/file
listen = 10.0.0.1:1
registrar-key = a.pub
registrar-key = "b with space.pub"
admin-key = admin.pub
batch-max-entries = 7
log-format = json
`), 0o644)
	type flags struct {
		data, listen, logFormat, logLevel *string
		batch                             *int
		registrars, admins                *stringList
	}
	parse := func(t *testing.T, environ map[string]string, args ...string) (flags, error) {
		env := &cmdEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return environ[k] }}
		fs := newFlagSet(env, "serve", "")
		f := flags{
			data:       fs.String("data", envOr(env, "WARRANT_DATA", defaultData), ""),
			listen:     fs.String("listen", envOr(env, "WARRANT_LISTEN", defaultListen), ""),
			logFormat:  fs.String("log-format", "text", ""),
			logLevel:   fs.String("log-level", "info", ""),
			batch:      fs.Int("batch-max-entries", 1024, ""),
			registrars: &stringList{}, admins: &stringList{},
		}
		fs.Var(f.registrars, "registrar-key", "")
		fs.Var(f.admins, "admin-key", "")
		config := fs.String("config", "", "")
		if _, err := parseArgs(fs, args); err != nil {
			return f, err
		}
		return f, applyConfigFile(fs, *config, env, serveFlagEnv)
	}

	// The file alone.
	f, err := parse(t, nil, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if *f.data != "/from/file" || *f.listen != "10.0.0.1:1" || *f.batch != 7 || *f.logFormat != "json" || *f.logLevel != "info" ||
		strings.Join(*f.registrars, "|") != "a.pub|b with space.pub" || strings.Join(*f.admins, "|") != "admin.pub" {
		t.Fatalf("from the file: %q %q %d %q %q %q %q", *f.data, *f.listen, *f.batch, *f.logFormat, *f.logLevel, *f.registrars, *f.admins)
	}
	// Flags (before or after --config) and the environment override it; a
	// repeatable flag on the command line replaces the file's list.
	f, err = parse(t, map[string]string{"WARRANT_DATA": "/from/env"},
		"--listen", "127.0.0.1:9", "--config", path, "--registrar-key", "cli.pub", "--batch-max-entries", "3")
	if err != nil {
		t.Fatal(err)
	}
	if *f.data != "/from/env" || *f.listen != "127.0.0.1:9" || *f.batch != 3 || *f.logFormat != "json" ||
		strings.Join(*f.registrars, "|") != "cli.pub" || strings.Join(*f.admins, "|") != "admin.pub" {
		t.Fatalf("overridden: %q %q %d %q %q %q", *f.data, *f.listen, *f.batch, *f.logFormat, *f.registrars, *f.admins)
	}
	// An explicit flag beats the environment too.
	f, err = parse(t, map[string]string{"WARRANT_DATA": "/from/env"}, "--config", path, "--data", "/from/flag")
	if err != nil || *f.data != "/from/flag" {
		t.Fatalf("flag over env: %q %v", *f.data, err)
	}

	// Mistakes are usage errors naming the line.
	for name, body := range map[string]string{
		"unknown":  "data = x\nnot-a-flag = 1\n",
		"no equal": "data\n",
		"twice":    "data = x\ndata = y\n",
		"bad int":  "batch-max-entries = many\n",
		"config":   "config = other.conf\n",
		"quote":    "data = \"unterminated\n",
	} {
		p := filepath.Join(dir, name+".conf")
		os.WriteFile(p, []byte(body), 0o644)
		_, err := parse(t, nil, "--config", p)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.msg, p+":") {
			t.Errorf("%s: %v, want a usage error naming %s:LINE", name, err, p)
		}
	}
	if _, err := parse(t, nil, "--config", filepath.Join(dir, "missing.conf")); err == nil {
		t.Error("a missing config file was accepted")
	}
}

// fetch GETs url and returns the status and body.
func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sample returns the value of the exposed series (exact name and labels),
// or -1.
func sample(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestOperateE2E runs warrant as an operator would: serve from a config
// file with an operations listener and JSON logs; load from `warrant bench`;
// a denial; an online `warrant backup` taken under that load; the metrics;
// `warrant restore` into a new directory; `warrant serve` on it; `warrant
// audit` of the restored server; and the restored checkpoint checked
// against the live log.
func TestOperateE2E(t *testing.T) {
	dir := t.TempDir()
	addr, opsAddr := freeAddr(t), freeAddr(t)
	env := userEnv(t, dir, addr)
	mustWarrant(t, dir, env, "keygen", "--out", "registrar")
	mustWarrant(t, dir, env, "keygen", "--out", "alice")
	// listen in the file loses to WARRANT_LISTEN in the environment.
	conf := "# warrant serve --config\nregistrar-key = registrar.pub\nops-listen = " + opsAddr + "\nlog-format = json\nlisten = 127.0.0.1:1\n"
	if err := os.WriteFile(filepath.Join(dir, "warrant.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, env, addr, "--config", "warrant.conf")
	env = append(env, "WARRANT_LOG_KEY=@"+filepath.Join(dir, "warrant-data", "log.vkey"))
	mustWarrant(t, dir, env, "register", "--registrar-key", "registrar.key", "--agent", alice, "--pub", "alice.pub", "--human")
	r := warrant(t, dir, env, "delegate", "--key", "alice.key", "--issuer", alice, "--to", "spiffe://example.org/agent/nobody",
		"--task", "/tickets", "--ttl", "1h")
	if r.code != 1 || !strings.Contains(r.stderr, "delegate_unknown") {
		t.Fatalf("want a delegate_unknown denial: %+v", r)
	}
	ops := "http://" + opsAddr

	// Load.
	bench := exec.Command(warrantBin, "bench", "--duration", "10m", "--presign", "1200", "--concurrency", "4", "--rate", "400", "--registrar-key", "registrar.key", "--json")
	bench.Dir, bench.Env = dir, env
	bench.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var benchOut strings.Builder
	bench.Stdout = &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if bench.ProcessState == nil {
			bench.Process.Kill()
			bench.Wait()
		}
	})
	start := time.Now()
	var before float64
	for {
		_, text := fetch(t, ops+"/metrics")
		before = sample(text, "warrant_tree_size")
		if before > 200 {
			break
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("the load did not get going: tree size %v", before)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An online backup, under load, from the operations listener.
	out := mustWarrant(t, dir, env, "backup", "--ops", ops, "--out", "live.backup", "--state", "backup.state", "--json")
	var b struct {
		Out        string `json:"out"`
		Checkpoint struct {
			Size uint64 `json:"size"`
			Root string `json:"root"`
		} `json:"checkpoint"`
		Records uint64 `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Checkpoint.Size < uint64(before) || b.Records == 0 {
		t.Fatalf("backup --json: %q: %v (tree size before: %v)", out, err, before)
	}
	if err := bench.Wait(); err != nil {
		t.Fatalf("bench: %v\n%s", err, benchOut.String())
	}

	// Metrics: on the operations listener only.
	if code, _ := fetch(t, "http://"+addr+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the main listener with --ops-listen: %d", code)
	}
	_, text := fetch(t, ops+"/metrics")
	after := sample(text, "warrant_tree_size")
	for series, ok := range map[string]bool{
		`warrant_appends_total{kind="delegation",outcome="accepted"}`: sample(text, `warrant_appends_total{kind="delegation",outcome="accepted"}`) > 100,
		`warrant_appends_total{kind="delegation",outcome="denied"}`:   sample(text, `warrant_appends_total{kind="delegation",outcome="denied"}`) == 1,
		`warrant_denials_total{reason="delegate_unknown"}`:            sample(text, `warrant_denials_total{reason="delegate_unknown"}`) == 1,
		`warrant_tree_size`:                     after >= float64(b.Checkpoint.Size) && after > 1000,
		`warrant_batch_size_count`:              sample(text, "warrant_batch_size_count") > 0,
		`warrant_append_latency_seconds_count`:  sample(text, "warrant_append_latency_seconds_count") > 100,
		`warrant_commit_latency_seconds_count`:  sample(text, "warrant_commit_latency_seconds_count") > 0,
		`warrant_queue_depth`:                   sample(text, "warrant_queue_depth") >= 0,
		`go_goroutines`:                         sample(text, "go_goroutines") > 0,
		`process_resident_memory_bytes (linux)`: sample(text, "process_resident_memory_bytes") > 0,
		`warrant_badger_lsm_bytes (exposed)`:    sample(text, "warrant_badger_lsm_bytes") >= 0,
		`warrant_badger_vlog_bytes (exposed)`:   sample(text, "warrant_badger_vlog_bytes") >= 0,
	} {
		if !ok {
			t.Errorf("metric %s: unexpected value", series)
		}
	}
	if t.Failed() {
		t.Fatalf("exposition:\n%s", text)
	}

	// Restore into a new directory, with the log key kept separately.
	out = mustWarrant(t, dir, env, "restore", "--from", "live.backup", "--data", "restored", "--log-key-file", filepath.Join("warrant-data", "log.key"), "--json")
	var rs struct {
		Audit struct {
			Verified      bool   `json:"verified"`
			Size          uint64 `json:"size"`
			Discrepancies []any  `json:"discrepancies"`
		} `json:"audit"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil || !rs.Audit.Verified || rs.Audit.Size != b.Checkpoint.Size || len(rs.Audit.Discrepancies) != 0 {
		t.Fatalf("restore --json: %q: %v", out, err)
	}
	if r := warrant(t, dir, env, "restore", "--from", "live.backup", "--data", "restored", "--log-key-file", filepath.Join("warrant-data", "log.key")); r.code != 1 || !strings.Contains(r.stderr, "restore_target_not_empty") {
		t.Fatalf("restore over a restored directory: %+v", r)
	}

	// Serve the restored directory and audit it through its API.
	addr2 := freeAddr(t)
	env2 := append(userEnv(t, dir, addr2), "WARRANT_LOG_KEY=@"+filepath.Join(dir, "restored", "log.vkey"))
	startServer(t, dir, env2, addr2, "--data", "restored", "--registrar-key", "registrar.pub")
	out = mustWarrant(t, dir, env2, "audit", "--state", "restored.state", "--json")
	var audit struct {
		Verified bool   `json:"verified"`
		Size     uint64 `json:"size"`
	}
	if err := json.Unmarshal([]byte(out), &audit); err != nil || !audit.Verified || audit.Size != b.Checkpoint.Size {
		t.Fatalf("audit of the restored server: %q: %v (backup size %d)", out, err, b.Checkpoint.Size)
	}
	// The restored log's checkpoint, now trusted in restored.state, is
	// consistent with the live log's (a consistency proof from the live
	// server).
	out = mustWarrant(t, dir, env, "checkpoint", "--state", "restored.state", "--json")
	if !strings.Contains(out, `"size":`) {
		t.Fatalf("checkpoint: %q", out)
	}

	// The live server's logs are JSON lines.
	srv.kill(syscall.SIGTERM)
	lines := strings.Split(strings.TrimSpace(srv.logs.String()), "\n")
	sawOps := false
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		sawOps = sawOps || rec["msg"] == "operations"
	}
	if !sawOps {
		t.Fatalf("no operations log line in:\n%s", srv.logs.String())
	}
}

// TestServeDefaultMemoryLimit: without GOMEMLIMIT, serve sets a soft memory
// limit of 336 MiB plus its tile cache; GOMEMLIMIT, a size or "off", wins.
func TestServeDefaultMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		want string
	}{
		{"GOMEMLIMIT=", nil, "gomemlimit_bytes=419430400"},
		{"GOMEMLIMIT=", []string{"--tree-cache-mb", "16"}, "gomemlimit_bytes=369098752"},
		{"GOMEMLIMIT=1GiB", nil, "gomemlimit_bytes=1073741824"},
		{"GOMEMLIMIT=off", nil, "gomemlimit=unset"},
	} {
		dir, addr := t.TempDir(), freeAddr(t)
		s := startServer(t, dir, append(userEnv(t, dir, addr), c.env), addr, c.args...)
		s.kill(syscall.SIGTERM)
		if logs := s.logs.String(); !strings.Contains(logs, c.want) {
			t.Errorf("%s %v: want %q in the logs:\n%s", c.env, c.args, c.want, logs)
		}
	}
}

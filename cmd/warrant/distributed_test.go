package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeDistributedFlagsUsage checks that serve's distributed-mode flags
// are checked all together, as usage errors (one line, exit 2), before
// anything is bound or opened.
func TestServeDistributedFlagsUsage(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "s3.creds")
	if err := os.WriteFile(creds, []byte("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	full := []string{"--object-store", "s3://bucket/log", "--etcd", "http://127.0.0.1:2379", "--node-id", "n1"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--object-store", "s3://bucket/log"}, "distributed mode needs --object-store, --etcd and --node-id together: --object-store given, --etcd, --node-id missing"},
		{[]string{"--etcd", "http://127.0.0.1:2379", "--node-id", "n1"}, "--object-store missing"},
		{[]string{"--s3-endpoint", "http://127.0.0.1:7070"}, "--s3-endpoint is for distributed mode"},
		{[]string{"--lease-ttl", "10s"}, "--lease-ttl is for distributed mode"},
		{[]string{"--object-store", "bucket/log", "--etcd", "http://e:2379", "--node-id", "n1"}, "want s3://BUCKET/PREFIX"},
		{append(full, "--s3-endpoint", "127.0.0.1:7070"), "--s3-endpoint \"127.0.0.1:7070\""},
		{append(full, "--s3-credentials", filepath.Join(t.TempDir(), "missing")), "--s3-credentials"},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://e:2379,", "--node-id", "n1"}, "an empty URL in the list"},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://e:2379", "--node-id", "-bad"}, "--node-id \"-bad\""},
		{append(full, "--lease-ttl", "1s"), "--lease-ttl 1s: whole seconds from 2s to 1m0s"},
		{append(full, "--lease-ttl", "2500ms"), "--lease-ttl 2.5s"},
		{append(full, "--listen", "0.0.0.0:0"), "needs --advertise URL"},
		{append(full, "--advertise", "node1:8750"), "--advertise \"node1:8750\""},
		{append(full, "--s3-credentials", creds, "--witness-policy", creds), "--witness-policy is not supported in distributed mode"},
	} {
		dir := t.TempDir()
		args := append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, c.args...)
		stdout, stderr, code := runHere(args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "error: usage: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("warrant %v: exit %d, stderr %q; want exit 2 and one line saying %q", args, code, stderr, c.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("warrant %v wrote to the data directory", args)
		}
	}
	// Valid flags without the cluster's log key: refused before the data
	// directory is opened.
	dir := t.TempDir()
	_, stderr, code := runHere(append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--s3-credentials", creds}, full...)...)
	if code != 1 || !strings.HasPrefix(stderr, "error: open_failed: distributed mode: ") || !strings.Contains(stderr, "log.key") {
		t.Errorf("distributed serve without a log key: exit %d, stderr %q", code, stderr)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/warrantlog/warrant/internal/etcdtest"
	"github.com/warrantlog/warrant/internal/s3test"
	"github.com/warrantlog/warrant/ledger"
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
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "127.0.0.1:2379", "--node-id", "n1"}, "--etcd \"127.0.0.1:2379\": want absolute http:// URLs"},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "https://e:2379", "--node-id", "n1"}, "TLS to etcd is not supported yet"},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://e:99999", "--node-id", "n1"}, "the port must be a number from 1 to 65535"},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://e:0", "--node-id", "n1"}, "the port must be a number from 1 to 65535"},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://e", "--node-id", "n1"}, "--etcd \"http://e\""},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://e:2379,e2:2379", "--node-id", "n1"}, "--etcd \"e2:2379\""},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "unix:///run/etcd.sock", "--node-id", "n1"}, "--etcd \"unix:///run/etcd.sock\""},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http://", "--node-id", "n1"}, "--etcd \"http://\""},
		{[]string{"--object-store", "s3://bucket/p", "--etcd", "http//e:2379", "--node-id", "n1"}, "--etcd \"http//e:2379\""},
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

// TestDistributedServe runs `warrant serve` in distributed mode on the real
// engines (etcd, and versitygw as the S3 server; skipped without them
// unless CI is set): two nodes share one log key; an append through the
// follower is sequenced by the leader; the leader is killed (SIGKILL) and
// the other node takes over, with every acknowledged entry at its index; a
// third node started on an empty data directory rebuilds the log from the
// bucket; the bucket holds what GET /tile serves.
func TestDistributedServe(t *testing.T) {
	s3 := s3test.Start(t)
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	mustWarrant(t, dir, env, "keygen", "--type", "log", "--origin", "example.test/cluster", "--out", "logkey")
	mustWarrant(t, dir, env, "keygen", "--out", "registrar")
	skey, err := os.ReadFile(filepath.Join(dir, "logkey.key"))
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "s3.creds")
	if err := os.WriteFile(creds, []byte("AWS_ACCESS_KEY_ID="+s3.AccessKeyID+"\nAWS_SECRET_ACCESS_KEY="+s3.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "AWS_REGION="+s3.Region)
	start := func(name string) *server {
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, "log.key"), skey, 0o600); err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		return startServer(t, dir, env, addr, "--data", data, "--listen", addr, "--registrar-key", "registrar.pub",
			"--object-store", "s3://"+s3.Bucket+"/log", "--s3-endpoint", s3.Endpoint, "--s3-credentials", creds,
			"--etcd", etcd.Endpoint(), "--node-id", name, "--lease-ttl", "2s")
	}
	status := func(s *server) ledger.ClusterStatus {
		var st ledger.ClusterStatus
		resp, err := http.Get("http://" + s.addr + "/cluster")
		if err != nil {
			return st
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		return st
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	n1 := start("n1")
	wait("n1 to lead", func() bool { return status(n1).Role == "leader" && status(n1).Size >= 2 })
	n2 := start("n2")
	wait("n2 to follow", func() bool { return status(n2).Role == "follower" && status(n2).Size == status(n1).Size })

	type ack struct {
		Index    uint64 `json:"index"`
		LeafHash string `json:"leaf_hash"`
	}
	servers := "http://" + n2.addr + ",http://" + n1.addr
	register := func(agent string) ack {
		t.Helper()
		mustWarrant(t, dir, env, "keygen", "--out", agent)
		out := mustWarrant(t, dir, env, "register", "--server", servers, "--log-key", "@logkey.vkey",
			"--registrar-key", "registrar.key", "--agent", "spiffe://example.org/agent/"+agent, "--pub", agent+".pub", "--json")
		var a ack
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	acks := []ack{register("a1"), register("a2")} // through the follower first
	n1.kill(syscall.SIGKILL)
	wait("n2 to take over", func() bool { return status(n2).Role == "leader" })
	acks = append(acks, register("a3"))

	n3 := start("n3") // an empty data directory: rebuilt from the bucket
	wait("n3 to catch up", func() bool { return status(n3).Size == status(n2).Size })
	for _, a := range acks {
		for _, s := range []*server{n2, n3} {
			out := mustWarrant(t, dir, env, "get", "--server", "http://"+s.addr, "--log-key", "@logkey.vkey", "--json", fmt.Sprint(a.Index))
			if !strings.Contains(out, `"leaf_hash":"`+a.LeafHash+`"`) {
				t.Errorf("entry %d at %s: %s; want leaf hash %s", a.Index, s.addr, out, a.LeafHash)
			}
		}
	}
	// The bucket is a tlog-tiles mirror: its checkpoint and bundle are what
	// the nodes serve.
	get := func(url string) []byte {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	cp := get("http://" + n3.addr + "/checkpoint")
	size := status(n3).Size
	bundle := fmt.Sprintf("tile/entries/000.p/%d", size)
	obj, err := s3.Client().GetObject(t.Context(), &awss3.GetObjectInput{Bucket: &s3.Bucket, Key: aws.String("log/" + bundle)})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	fromBucket, _ := io.ReadAll(obj.Body)
	if served := get("http://" + n3.addr + "/" + bundle); len(served) == 0 || !bytes.Equal(fromBucket, served) {
		t.Errorf("bucket %s (%d bytes) differs from GET /%s (%d bytes)", bundle, len(fromBucket), bundle, len(served))
	}
	if !bytes.Equal(cp, get("http://"+n2.addr+"/checkpoint")) {
		t.Error("the nodes serve different checkpoints")
	}
}

// TestDefaultAdvertise: without --advertise, a node is advertised at the
// listen address's host as written and the port the listener was bound to.
func TestDefaultAdvertise(t *testing.T) {
	for _, c := range []struct{ listen, bound, given, want string }{
		{"localhost:0", "127.0.0.1:41234", "", "http://localhost:41234"},
		{"127.0.0.1:8750", "127.0.0.1:8750", "", "http://127.0.0.1:8750"},
		{"[::1]:0", "[::1]:5000", "", "http://[::1]:5000"},
		{"127.0.0.1:0", "127.0.0.1:5000", "https://node1.example:8750", "https://node1.example:8750"},
	} {
		f := distributedFlags{advertise: c.given}
		addr, err := net.ResolveTCPAddr("tcp", c.bound)
		if err != nil {
			t.Fatal(err)
		}
		f.defaultAdvertise("http", c.listen, addr)
		if f.advertise != c.want {
			t.Errorf("listen %s bound %s advertise %q: %q, want %q", c.listen, c.bound, c.given, f.advertise, c.want)
		}
	}
}

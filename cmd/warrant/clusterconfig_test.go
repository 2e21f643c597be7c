package main

import (
	"fmt"
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

// clusterFixture is a log on the real engines (etcd, versitygw) that
// `warrant serve` nodes join: the log key, two registrar key pairs
// (registrar, registrar2) and the S3 credentials in dir.
type clusterFixture struct {
	t    *testing.T
	s3   *s3test.Server
	dir  string
	env  []string
	args func(name, addr string) []string
}

func newClusterFixture(t *testing.T) *clusterFixture {
	s3 := s3test.Start(t)
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	mustWarrant(t, dir, env, "keygen", "--type", "log", "--origin", "example.test/cluster", "--out", "logkey")
	mustWarrant(t, dir, env, "keygen", "--out", "registrar")
	mustWarrant(t, dir, env, "keygen", "--out", "registrar2")
	creds := filepath.Join(dir, "s3.creds")
	if err := os.WriteFile(creds, []byte("AWS_ACCESS_KEY_ID="+s3.AccessKeyID+"\nAWS_SECRET_ACCESS_KEY="+s3.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &clusterFixture{t: t, s3: s3, dir: dir, env: append(env, "AWS_REGION="+s3.Region)}
	f.args = func(name, addr string) []string {
		return []string{"--data", f.data(name), "--listen", addr,
			"--object-store", "s3://" + s3.Bucket + "/log", "--s3-endpoint", s3.Endpoint, "--s3-credentials", creds,
			"--etcd", etcd.Endpoint(), "--node-id", name, "--lease-ttl", "2s"}
	}
	return f
}

// data is node name's data directory, with the cluster's log key in it.
func (f *clusterFixture) data(name string) string {
	data := filepath.Join(f.dir, "data-"+name)
	if _, err := os.Stat(filepath.Join(data, "log.key")); err == nil {
		return data
	}
	skey, err := os.ReadFile(filepath.Join(f.dir, "logkey.key"))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "log.key"), skey, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return data
}

// start runs node name (on data directory dataName) until it answers.
func (f *clusterFixture) start(name, dataName string, extra ...string) *server {
	f.t.Helper()
	addr := freeAddr(f.t)
	args := f.args(name, addr)
	args[1] = f.data(dataName)
	return startServer(f.t, f.dir, f.env, addr, append(args, extra...)...)
}

// refused runs node name (on data directory dataName), which must exit 1
// with one line `error: open_failed: ...` containing each of want.
func (f *clusterFixture) refused(name, dataName string, extra []string, want ...string) {
	f.t.Helper()
	args := f.args(name, freeAddr(f.t))
	args[1] = f.data(dataName)
	r := warrant(f.t, f.dir, f.env, append([]string{"serve"}, append(args, extra...)...)...)
	line := r.stderr[strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1:]
	ok := r.code == 1 && strings.HasPrefix(line, "error: open_failed: ") && strings.Count(line, "\n") == 1
	for _, w := range want {
		ok = ok && strings.Contains(line, w)
	}
	if !ok {
		f.t.Errorf("serve --node-id %s %v: exit %d, last stderr line %q; want exit 1 and error: open_failed: ... %q", name, extra, r.code, line, want)
	}
}

func nodeStatus(s *server) ledger.ClusterStatus {
	st, _ := clusterStatus("http://" + s.addr)
	return st
}

func waitNode(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestClusterNodeIDUnique: a second node under the id of a live node
// exits 1 naming --node-id, and the live node keeps leading; once that
// node died (SIGKILL, its lease left to run out) a node under its id
// starts.
func TestClusterNodeIDUnique(t *testing.T) {
	f := newClusterFixture(t)
	n1 := f.start("n1", "n1", "--registrar-key", "registrar.pub")
	waitNode(t, "n1 to lead", func() bool { return nodeStatus(n1).Role == "leader" })
	f.refused("n1", "n1-bis", []string{"--registrar-key", "registrar.pub"}, "--node-id n1: another node of the cluster runs under this id", "http://"+n1.addr)
	if st := nodeStatus(n1); st.Role != "leader" || st.NodeID != "n1" {
		t.Errorf("the live n1 after the refused duplicate: %+v", st)
	}
	n1.kill(syscall.SIGKILL)
	again := f.start("n1", "n1-bis", "--registrar-key", "registrar.pub")
	waitNode(t, "the restarted n1 to lead", func() bool { return nodeStatus(again).Role == "leader" })
}

// TestClusterConfigMismatch: a node whose configuration (here its
// registrar key) differs from the one the log records refuses to start,
// naming the setting, and never records its own; a node started with
// --reconfigure records it when it leads, and then a node with the old
// configuration is refused.
func TestClusterConfigMismatch(t *testing.T) {
	f := newClusterFixture(t)
	n1 := f.start("n1", "n1", "--registrar-key", "registrar.pub")
	waitNode(t, "n1 to lead with the log's configuration and policy", func() bool {
		st := nodeStatus(n1)
		return st.Role == "leader" && st.Size >= 2
	})
	f.refused("n2", "n2", []string{"--registrar-key", "registrar2.pub"}, "registrar keys (--registrar-key): the log has [", "--reconfigure")
	f.refused("n2", "n2", []string{"--registrar-key", "registrar.pub", "--max-depth", "3"}, "rule limits (--lifetime-execute, --lifetime-draft, --lifetime-root, --max-depth)")
	if st := nodeStatus(n1); st.Size != 2 {
		t.Errorf("the log after the refused nodes: %d entries, want 2 (config and policy)", st.Size)
	}

	register := func(s *server, registrar, agent string) result {
		mustWarrant(t, f.dir, f.env, "keygen", "--out", agent)
		return warrant(t, f.dir, f.env, "register", "--server", "http://"+s.addr, "--log-key", "@logkey.vkey",
			"--registrar-key", registrar, "--agent", "spiffe://example.org/agent/"+agent, "--pub", agent+".pub", "--json")
	}
	// A deliberate change: n2 with the new registrar key and --reconfigure
	// starts, follows, and records it once it leads.
	n2 := f.start("n2", "n2", "--registrar-key", "registrar2.pub", "--reconfigure")
	waitNode(t, "n2 to follow", func() bool { return nodeStatus(n2).Role == "follower" })
	if r := register(n1, "registrar.key", "a1"); r.code != 0 {
		t.Fatalf("register under the log's registrar: exit %d, %s", r.code, r.stderr)
	}
	n1.kill(syscall.SIGKILL)
	waitNode(t, "n2 to lead and record its configuration", func() bool {
		st := nodeStatus(n2)
		return st.Role == "leader" && st.Size >= 4
	})
	if r := register(n2, "registrar2.key", "a2"); r.code != 0 {
		t.Fatalf("register under the new registrar: exit %d, %s", r.code, r.stderr)
	}
	// n1 restarted with the old configuration is now the odd one out.
	f.refused("n1", "n1", []string{"--registrar-key", "registrar.pub"}, "registrar keys (--registrar-key)")
	f.start("n1", "n1", "--registrar-key", "registrar2.pub")
}

// TestClusterBadBundleBlamesObjectStore: a node catching up from a bucket
// whose entry bundle was damaged refuses to start with an error that
// names the object store key at fault, not its local store.
func TestClusterBadBundleBlamesObjectStore(t *testing.T) {
	f := newClusterFixture(t)
	n1 := f.start("n1", "n1", "--registrar-key", "registrar.pub")
	waitNode(t, "n1 to lead with the log's configuration and policy", func() bool {
		st := nodeStatus(n1)
		return st.Role == "leader" && st.Size >= 2
	})
	key := fmt.Sprintf("tile/entries/000.p/%d", nodeStatus(n1).Size)
	if _, err := f.s3.Client().PutObject(t.Context(), &awss3.PutObjectInput{Bucket: &f.s3.Bucket, Key: aws.String("log/" + key), Body: strings.NewReader("\x00\x09not a bundle")}); err != nil {
		t.Fatal(err)
	}
	f.refused("n2", "n2", []string{"--registrar-key", "registrar.pub"}, "object store key "+key+": not an entry bundle", "--object-store s3://")
	args := f.args("n2", freeAddr(t))
	r := warrant(t, f.dir, f.env, append([]string{"serve"}, append(args, "--registrar-key", "registrar.pub")...)...)
	if strings.Contains(r.stderr, "local store diverges") || strings.Contains(r.stderr, "store_mismatch") {
		t.Errorf("a bad bundle in the bucket blamed on the local store: %s", r.stderr)
	}
}

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/internal/etcdtest"
	"github.com/warrantlog/warrant/internal/s3test"
)

// TestChaosPartition cuts the network between the leader and etcd (a TCP
// proxy in front of etcd for each node, dropping traffic both ways while
// the node itself stays up and reachable by clients and the other nodes),
// with appending clients running. The leader must stop sequencing before
// its lease can have run out, so before another node is elected: the order
// is read from the nodes' own logs (one machine, one clock), not from
// timings. The cluster goes on under the new leader; once the partition
// heals the old leader follows, and every acknowledged append is at its
// index.
func TestChaosPartition(t *testing.T) {
	s3 := s3test.Start(t)
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	mustWarrant(t, dir, env, "keygen", "--type", "log", "--origin", "example.test/partition", "--out", "logkey")
	mustWarrant(t, dir, env, "keygen", "--out", "registrar")
	skey, err := os.ReadFile(filepath.Join(dir, "logkey.key"))
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := os.ReadFile(filepath.Join(dir, "logkey.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "s3.creds")
	if err := os.WriteFile(creds, []byte("AWS_ACCESS_KEY_ID="+s3.AccessKeyID+"\nAWS_SECRET_ACCESS_KEY="+s3.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "AWS_REGION="+s3.Region)

	type pnode struct {
		name, url, log string
		proxy          *etcdtest.Proxy
	}
	var nodes []*pnode
	for _, name := range []string{"n1", "n2", "n3"} {
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, "log.key"), skey, 0o600); err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		n := &pnode{name: name, url: "http://" + addr, log: filepath.Join(dir, name+".log"), proxy: etcdtest.NewProxy(t, etcd.Addr())}
		logf, err := os.Create(n.log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(warrantBin, "serve", "--data", data, "--listen", addr, "--registrar-key", "registrar.pub",
			"--object-store", "s3://"+s3.Bucket+"/log", "--s3-endpoint", s3.Endpoint, "--s3-credentials", creds,
			"--etcd", n.proxy.Endpoint(), "--node-id", name, "--lease-ttl", chaosLeaseTTL)
		cmd.Dir, cmd.Env, cmd.Stderr = dir, env, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(n.log)
				t.Logf("---- tail of %s's log ----\n%s", name, tail(string(b), 40))
			}
		})
		waitFor(t, name+" to answer", 2*time.Minute, func() bool { return answers(addr) })
		nodes = append(nodes, n)
	}
	servers := nodes[0].url + "," + nodes[1].url + "," + nodes[2].url
	leaderNode := func(except *pnode) *pnode {
		for _, n := range nodes {
			if st, ok := clusterStatus(n.url); ok && st.Role == "leader" && n != except {
				return n
			}
		}
		return nil
	}
	var old *pnode
	waitFor(t, "a leader", 2*time.Minute, func() bool { old = leaderNode(nil); return old != nil })

	o := newObserved()
	app := startAppenders(t, 3, servers, logKey, filepath.Join(dir, "registrar.key"), o)
	defer func() {
		select {
		case <-app.stop:
		default:
			close(app.stop)
		}
	}()
	waitFor(t, "the first appends", 3*time.Minute, func() bool { o.failFast(t); return o.ackCount() >= 3 })

	old.proxy.Cut()
	cut := time.Now()
	var next *pnode
	waitFor(t, "another node to lead", 2*time.Minute, func() bool { next = leaderNode(old); return next != nil })
	t.Logf("partition of %s from etcd: %s leads after %v", old.name, next.name, time.Since(cut).Round(time.Millisecond))
	before := o.ackCount()
	waitFor(t, "appends under the new leader", 2*time.Minute, func() bool { o.failFast(t); return o.ackCount() > before+3 })

	// The order, from the logs: the old leader stopped sequencing (its
	// term's local deadline passed, and it stepped down) before the new
	// one was elected.
	stopped := logTime(t, old.log, `msg="no longer leading: following"`, cut)
	elected := logTime(t, next.log, `msg="leader: elected"`, cut)
	switch {
	case stopped.IsZero():
		t.Errorf("%s never logged that it stopped leading after the cut", old.name)
	case elected.IsZero():
		t.Errorf("%s never logged its election after the cut", next.name)
	case !stopped.Before(elected):
		t.Errorf("%s stopped leading at %v, not before %s was elected at %v", old.name, stopped, next.name, elected)
	default:
		t.Logf("%s stopped leading %v after the cut, %v before %s was elected", old.name, stopped.Sub(cut).Round(time.Millisecond), elected.Sub(stopped).Round(time.Millisecond), next.name)
	}
	if st, ok := clusterStatus(old.url); !ok || st.Role == "leader" {
		t.Errorf("the partitioned node: %+v (answered %v); want it not leading", st, ok)
	}

	old.proxy.Heal()
	waitFor(t, "the healed node to catch up", 2*time.Minute, func() bool {
		a, ok1 := clusterStatus(old.url)
		b, ok2 := clusterStatus(next.url)
		return ok1 && ok2 && a.Role == "follower" && a.Size == b.Size && a.Size > 0
	})
	app.finish()
	checkLog(t, servers, logKey, o)
}

// logTime returns the time of the first line of a node's log (slog text)
// after since that holds msg, or zero.
func logTime(t *testing.T, path, msg string, since time.Time) time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, msg) || !strings.HasPrefix(line, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("%s: a log line without a time: %q", path, line)
		}
		if !at.Before(since.Truncate(time.Millisecond)) {
			return at
		}
	}
	return time.Time{}
}

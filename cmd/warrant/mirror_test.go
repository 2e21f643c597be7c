package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// appendMany appends n accepted root grants alice -> planner through the
// SDK, in batches: enough entries for several bundles and a level-1 tile.
func appendMany(t *testing.T, dir, url, vkey string, n int) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.LoadSigner(pem)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := proofs.ParseVerifierKey(vkey)
	c := client.New(url, v)
	now := time.Now()
	for done := 0; done < n; {
		k := min(200, n-done)
		envs := make([][]byte, 0, k)
		for i := done; i < done+k; i++ {
			payload, err := proofs.MarshalPayload(&proofs.Delegation{
				ID: fmt.Sprintf("dlg_bulk_%d_%d", now.UnixNano(), i), Issuer: id("alice"), Delegate: id("planner"),
				RootSubject: id("alice"), Task: "/tickets", Scopes: []string{"tickets:read"},
				NotBefore: proofs.FormatTime(now), ExpiresAt: proofs.FormatTime(now.Add(time.Hour)),
				Nonce: fmt.Sprintf("bulk-%d-%d", now.UnixNano(), i),
			})
			if err != nil {
				t.Fatal(err)
			}
			env, err := s.SignEnvelope(proofs.PayloadTypeDelegation, payload)
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, env)
		}
		res, err := c.AppendBatch(context.Background(), envs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil || r.Denied {
				t.Fatalf("bulk envelope %d: err %v, denied %v", i, r.Err, r.Denied)
			}
		}
		done += k
	}
}

// copyMirror copies a log's tlog-tiles resources into dir as a mirror
// would: GET /checkpoint, then every entry bundle and hash tile the
// checkpoint covers, at the widths its tree has. It returns the size.
func copyMirror(t *testing.T, src, vkey, dir string) uint64 {
	t.Helper()
	get := func(path string) []byte {
		resp, err := http.Get(src + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return b
	}
	put := func(path string, b []byte) {
		p := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	signed := get("checkpoint")
	v, _ := proofs.ParseVerifierKey(vkey)
	cp, err := proofs.OpenCheckpoint(signed, v)
	if err != nil {
		t.Fatal(err)
	}
	tiles := func(prefix string, count uint64) {
		for n := uint64(0); n*256 < count; n++ {
			p := prefix + client.TilePath(n)
			if w := min(count-n*256, 256); w < 256 {
				p += fmt.Sprintf(".p/%d", w)
			}
			put(p, get(p))
		}
	}
	tiles("tile/entries/", cp.Size)
	for l := 0; cp.Size>>(8*l) > 0; l++ {
		tiles(fmt.Sprintf("tile/%d/", l), cp.Size>>(8*l))
	}
	put("checkpoint", signed) // last, as a mirror publishes it
	return cp.Size
}

// staticMirror serves dir with http.FileServer, recording the methods and
// paths asked for.
type staticMirror struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func serveMirror(t *testing.T, dir string) *staticMirror {
	return serveMirrorPOST(t, dir, 0)
}

// serveMirrorPOST is serveMirror answering other methods than GET with
// status post, as CDNs do (0: whatever http.FileServer says, 404).
func serveMirrorPOST(t *testing.T, dir string, post int) *staticMirror {
	m := &staticMirror{}
	fs := http.FileServer(http.Dir(dir))
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.reqs = append(m.reqs, r.Method+" "+r.URL.Path)
		m.mu.Unlock()
		if post != 0 && r.Method != http.MethodGet {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(post)
			fmt.Fprintf(w, "<html><body>%d %s</body></html>\n", post, http.StatusText(post))
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(m.Close)
	return m
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func auditJSON(t *testing.T, out string) proofs.AuditReport {
	t.Helper()
	var rep proofs.AuditReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit --json: %q: %v", out, err)
	}
	return rep
}

// TestStaticMirror audits and follows a log through a static tlog-tiles
// mirror (http.FileServer over a directory holding only checkpoint and
// tile/...), as it grows; then tampered mirrors are caught: a changed entry
// bundle, a changed hash tile, a stale checkpoint and a forked log.
func TestStaticMirror(t *testing.T) {
	g := newGovernance(t)
	buildTree(t, g)
	// A checkpoint of the small log, trusted by an auditor from before.
	smallState := filepath.Join(g.dir, "small.state")
	resp, err := http.Get(g.url() + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	small, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := os.WriteFile(smallState, small, 0o600); err != nil {
		t.Fatal(err)
	}
	appendMany(t, g.dir, g.url(), g.vkey, 600)
	mirror := filepath.Join(g.dir, "mirror")
	size := copyMirror(t, g.url(), g.vkey, mirror)
	m := serveMirror(t, mirror)
	origin := strings.SplitN(g.vkey, "+", 2)[0]

	// The whole log, audited from the mirror alone, reads as it does from
	// the server.
	auditState := filepath.Join(g.dir, "audit.state")
	rep := auditJSON(t, mustWarrant(t, g.dir, g.env, "audit", "--server", m.URL, "--state", auditState, "--json"))
	live := auditJSON(t, mustWarrant(t, g.dir, g.env, "audit", "--json"))
	if !rep.Verified || rep.Size != size || rep.Root != live.Root || rep.Denied != 1 || rep.Entries["delegation"] != live.Entries["delegation"] {
		t.Fatalf("audit of the mirror: %+v\nlive: %+v", rep, live)
	}
	// checkpoint and export read the mirror too.
	if out := mustWarrant(t, g.dir, g.env, "checkpoint", "--server", m.URL, "--state", filepath.Join(g.dir, "cp.state"), "--json"); !strings.Contains(out, fmt.Sprintf(`"size":%d`, size)) {
		t.Fatalf("checkpoint from the mirror: %s", out)
	}
	exported := filepath.Join(g.dir, "mirror.export")
	mustWarrant(t, g.dir, g.env, "export", "--server", m.URL, "--state", filepath.Join(g.dir, "cp.state"), "--out", exported)
	if rep := auditJSON(t, mustWarrant(t, g.dir, g.env, "audit", "--export", exported, "--json")); !rep.Verified || rep.Root != live.Root {
		t.Fatalf("audit of the mirror's export: %+v", rep)
	}
	// CDNs refuse the Connect POST in other ways.
	for _, status := range []int{http.StatusNotImplemented, http.StatusMethodNotAllowed, http.StatusForbidden, http.StatusBadRequest} {
		cdn := serveMirrorPOST(t, mirror, status)
		if rep := auditJSON(t, mustWarrant(t, g.dir, g.env, "audit", "--server", cdn.URL, "--state", filepath.Join(g.dir, fmt.Sprint(status)+".state"), "--json")); !rep.Verified || rep.Root != live.Root {
			t.Fatalf("audit of a mirror answering POST %d: %+v", status, rep)
		}
	}
	siemState, events := filepath.Join(g.dir, "siem.state"), filepath.Join(g.dir, "events.jsonl")
	mustWarrant(t, g.dir, g.env, "siem", "--server", m.URL, "--state", siemState, "--once", "--out", events)
	wantExactlyOnce(t, ocsfIDs(t, events), origin, int(size), false)
	for _, r := range m.reqs {
		if !strings.HasPrefix(r, "GET /checkpoint") && !strings.HasPrefix(r, "GET /tile/") && !strings.HasPrefix(r, "POST /warrant.v1.LedgerService/") {
			t.Fatalf("the mirror was asked for %q", r)
		}
	}
	oldMirror := filepath.Join(g.dir, "mirror-old")
	copyDir(t, mirror, oldMirror)
	copyFile(t, siemState, siemState+".old")
	copyFile(t, auditState, auditState+".old")

	// Fork the log here: a copy of its store, which will grow apart.
	g.srv.kill(syscall.SIGTERM)
	forkData := filepath.Join(g.dir, "fork-data")
	copyDir(t, filepath.Join(g.dir, "warrant-data"), forkData)
	g.srv = startServer(t, g.dir, g.env, g.addr, "--registrar-key", "registrar.pub", "--admin-key", "admin.pub")

	// The log grows past a bundle boundary and the mirror is refreshed:
	// the follower and the auditor catch up, proving consistency from
	// their stored checkpoints through the mirror's hash tiles.
	appendMany(t, g.dir, g.url(), g.vkey, 300)
	size2 := copyMirror(t, g.url(), g.vkey, mirror)
	mustWarrant(t, g.dir, g.env, "siem", "--server", m.URL, "--state", siemState, "--once", "--out", events)
	wantExactlyOnce(t, ocsfIDs(t, events), origin, int(size2), false)
	rep = auditJSON(t, mustWarrant(t, g.dir, g.env, "audit", "--server", m.URL, "--state", auditState, "--json"))
	if !rep.Verified || rep.Size != size2 {
		t.Fatalf("audit of the grown mirror: %+v", rep)
	}

	// Following (not --once) a mirror: no checkpoint stream, so it polls,
	// says so once, and does not raise a stall alert it cannot justify.
	followState, followEvents := filepath.Join(g.dir, "follow.state"), filepath.Join(g.dir, "follow.jsonl")
	cmd := exec.Command(warrantBin, "siem", "--server", m.URL, "--state", followState, "--out", followEvents, "--poll", "100ms", "--stall-after", "1s")
	cmd.Dir, cmd.Env = g.dir, g.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for n := 0; n < int(size2); {
		select {
		case err := <-exited:
			t.Fatalf("siem following the mirror exited: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("siem following the mirror emitted %d of %d events", n, size2)
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := os.Stat(followEvents); err == nil {
			n = len(ocsfIDs(t, followEvents))
		}
	}
	select {
	case err := <-exited: // a stall alert would come after 1 s
		t.Fatalf("siem following the mirror exited: %v\n%s", err, stderr.String())
	case <-time.After(3 * time.Second):
	}
	cmd.Process.Kill()
	<-exited
	wantExactlyOnce(t, ocsfIDs(t, followEvents), origin, int(size2), false)
	if s := stderr.String(); strings.Count(s, "serves no checkpoint stream") != 1 || strings.Contains(s, "error:") {
		t.Fatalf("siem following the mirror said:\n%s", s)
	}

	// A mirror whose tiles moved on (full tiles, partial ones deleted as
	// the spec allows) while its checkpoint is still the old one: the
	// client reads the full tiles' prefixes.
	pruned := filepath.Join(g.dir, "mirror-pruned")
	copyDir(t, mirror, pruned)
	copyFile(t, filepath.Join(oldMirror, "checkpoint"), filepath.Join(pruned, "checkpoint"))
	for _, dir := range []string{"entries", "0"} {
		p := filepath.Join(pruned, "tile", dir, fmt.Sprintf("%03d.p", size/256))
		if _, err := os.Stat(filepath.Join(pruned, "tile", dir, fmt.Sprintf("%03d", size/256))); err != nil {
			t.Fatalf("no full tile to stand in for %s: %v", p, err)
		}
		os.RemoveAll(p)
	}
	pm := serveMirror(t, pruned)
	mustWarrant(t, g.dir, g.env, "siem", "--server", pm.URL, "--state", filepath.Join(g.dir, "pruned.state"), "--once", "--out", filepath.Join(g.dir, "pruned.jsonl"))
	wantExactlyOnce(t, ocsfIDs(t, filepath.Join(g.dir, "pruned.jsonl")), origin, int(size), false)
	// The auditor of the small log proves consistency from the tiles.
	copyFile(t, smallState, filepath.Join(g.dir, "pruned.audit"))
	rep = auditJSON(t, mustWarrant(t, g.dir, g.env, "audit", "--server", pm.URL, "--state", filepath.Join(g.dir, "pruned.audit"), "--json"))
	if !rep.Verified || rep.Size != size {
		t.Fatalf("audit of the pruned mirror: %+v", rep)
	}
	for _, full := range []string{"GET /tile/entries/", "GET /tile/0/"} {
		full += fmt.Sprintf("%03d", size/256)
		if !slices.Contains(pm.reqs, full) {
			t.Fatalf("%s was not read: %v", full, pm.reqs)
		}
	}

	// wantRefused runs siem --once and audit with copies of the given
	// states against a mirror and wants both to fail with reason.
	wantRefused := func(name, url, siemFrom, auditFrom, reason string) {
		t.Helper()
		st := filepath.Join(g.dir, name+".siem.state")
		if siemFrom != "" {
			copyFile(t, siemFrom, st)
		}
		before, _ := os.ReadFile(st)
		r := warrant(t, g.dir, g.env, "siem", "--server", url, "--state", st, "--once", "--out", filepath.Join(g.dir, name+".events"))
		if r.code != 1 || !strings.Contains(r.stderr, "error: "+reason+": ") {
			t.Errorf("%s: siem: exit %d, want error %s\n%s", name, r.code, reason, r.stderr)
		}
		if after, _ := os.ReadFile(st); string(before) != string(after) {
			t.Errorf("%s: the follower's state changed after the alert", name)
		}
		ast := filepath.Join(g.dir, name+".audit.state")
		if auditFrom != "" {
			copyFile(t, auditFrom, ast)
		}
		r = warrant(t, g.dir, g.env, "audit", "--server", url, "--state", ast)
		if r.code != 1 || !strings.Contains(r.stderr, "error: ") {
			t.Errorf("%s: audit: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
		}
		t.Logf("%s: audit: %s", name, strings.TrimSpace(r.stderr))
	}

	// A changed entry: the leaves no longer hash to the signed root.
	bad := filepath.Join(g.dir, "mirror-bundle")
	copyDir(t, mirror, bad)
	flipLeafByte(t, filepath.Join(bad, "tile", "entries", "001"), true)
	wantRefused("bundle", serveMirror(t, bad).URL, "", "", client.ReasonEntriesMismatch)
	r := warrant(t, g.dir, g.env, "audit", "--server", serveMirror(t, bad).URL, "--state", filepath.Join(g.dir, "bundle2.state"), "--json")
	if rep := auditJSON(t, r.stdout); r.code != 1 || rep.Verified || rep.Discrepancies[len(rep.Discrepancies)-1].Reason != proofs.ReasonAuditTreeMismatch {
		t.Fatalf("audit of a changed bundle: exit %d %+v", r.code, rep)
	}

	// A changed hash tile: the consistency proof from the stored
	// checkpoint cannot be built from tiles that hash to the signed root.
	bad = filepath.Join(g.dir, "mirror-tile")
	copyDir(t, mirror, bad)
	flipLeafByte(t, filepath.Join(bad, "tile", "1", "000.p", fmt.Sprint(size2>>8)), false)
	wantRefused("tile", serveMirror(t, bad).URL, siemState+".old", auditState+".old", client.ReasonMismatch)

	// A stale checkpoint: the mirror stopped at the old size.
	wantRefused("stale", serveMirror(t, oldMirror).URL, siemState, auditState, client.ReasonRollback)

	// A fork: the same key signed another history, which a mirror copied.
	env2 := append(append([]string{}, g.env...), "WARRANT_LISTEN="+freeAddr(t))
	forkAddr := strings.TrimPrefix(env2[len(env2)-1], "WARRANT_LISTEN=")
	startServer(t, g.dir, env2, forkAddr, "--data", forkData, "--registrar-key", "registrar.pub", "--admin-key", "admin.pub")
	appendMany(t, g.dir, "http://"+forkAddr, g.vkey, 400)
	forkMirror := filepath.Join(g.dir, "mirror-fork")
	copyMirror(t, "http://"+forkAddr, g.vkey, forkMirror)
	wantRefused("fork", serveMirror(t, forkMirror).URL, siemState, auditState, client.ReasonFork)
}

// flipLeafByte changes one byte of a mirrored file: in the middle of the
// first leaf of an entry bundle (keeping its framing), or, for a hash
// tile (leaf false), its first byte.
func flipLeafByte(t *testing.T, path string, leaf bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	if leaf {
		i = 2 + (int(b[0])<<8|int(b[1]))/2
	}
	b[i] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

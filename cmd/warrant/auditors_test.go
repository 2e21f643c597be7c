package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// buildTree appends a branching delegation tree across several agents:
//
//	alice -> planner  dlg_root
//	  planner -> executor  dlg_a
//	    executor -> a3  dlg_a1   (later revoked by planner)
//	    executor -> a4  dlg_a2
//	      a4 -> a5  denied (scope widened)
//	  planner -> drafter  dlg_b
//	alice -> a6  dlg_other   (unrelated)
func buildTree(t *testing.T, g *governance) {
	t.Helper()
	g.mustAccept("alice", "planner", "--task", "/tickets", "--scope", "tickets:read", "--scope", "tickets:write", "--ttl", "1h", "--id", "dlg_root")
	g.mustAccept("planner", "executor", "--parent", "dlg_root", "--task", "/tickets", "--scope", "tickets:read", "--scope", "tickets:write", "--ttl", "14m", "--id", "dlg_a")
	g.mustAccept("executor", "a3", "--parent", "dlg_a", "--task", "/tickets/triage", "--scope", "tickets:read", "--ttl", "10m", "--id", "dlg_a1")
	g.mustAccept("executor", "a4", "--parent", "dlg_a", "--task", "/tickets/close", "--scope", "tickets:write", "--ttl", "10m", "--id", "dlg_a2")
	g.mustDeny("scope_widened", "a4", "a5", "--parent", "dlg_a2", "--task", "/tickets/close", "--scope", "tickets:read", "--ttl", "5m")
	g.mustAccept("planner", "drafter", "--parent", "dlg_root", "--task", "/tickets", "--scope", "tickets:read", "--ttl", "30m", "--id", "dlg_b")
	g.mustAccept("alice", "a6", "--task", "/billing", "--ttl", "1h", "--id", "dlg_other")
	mustWarrant(t, g.dir, g.env, "revoke", "--key", "planner.key", "--issuer", id("planner"), "--id", "dlg_a1", "--reason", "compromised")
}

func TestTraceAndVerifyBundle(t *testing.T) {
	g := newGovernance(t)
	buildTree(t, g)
	bundlePath := filepath.Join(g.dir, "a2.bundle")
	out := mustWarrant(t, g.dir, g.env, "trace", "dlg_a2", "--out", bundlePath)
	if !strings.Contains(out, "3 links") {
		t.Fatalf("trace output: %s", out)
	}
	out = mustWarrant(t, g.dir, g.env, "verify", bundlePath)
	for _, want := range []string{"verified: the chain of dlg_a2, 3 links", "dlg_root", "dlg_a:", "not shown: that no link was revoked"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	out = mustWarrant(t, g.dir, g.env, "verify", bundlePath, "--json")
	var v struct {
		ID       string `json:"id"`
		Index    uint64 `json:"index"`
		Links    int    `json:"links"`
		Verified bool   `json:"verified"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ID != "dlg_a2" || v.Links != 3 || !v.Verified {
		t.Fatalf("verify --json: %s", out)
	}
	// A flipped byte is caught and named, with a non-zero exit.
	data, _ := os.ReadFile(bundlePath)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	os.WriteFile(bundlePath+".bad", bad, 0o644)
	r := warrant(t, g.dir, g.env, "verify", bundlePath+".bad")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: ") {
		t.Fatalf("tampered bundle: exit %d %q", r.code, r.stderr)
	}
	// A denied or unknown delegation has no chain.
	if r := warrant(t, g.dir, g.env, "trace", "dlg_nope"); r.code != 1 || !strings.HasPrefix(r.stderr, "error: not_found: ") {
		t.Fatalf("trace of nothing: %+v", r)
	}
	vkey, _ := proofs.ParseVerifierKey(g.vkey)
	if _, err := proofs.VerifyBundle(data, vkey, proofs.BundleOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestBlastRadius(t *testing.T) {
	g := newGovernance(t)
	buildTree(t, g)
	out := mustWarrant(t, g.dir, g.env, "blast-radius", id("executor"), "--json")
	var r struct {
		Agent string `json:"agent"`
		Count int    `json:"count"`
		Roots []node `json:"roots"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// executor received dlg_a and issued dlg_a1, dlg_a2 (under dlg_a): one
	// root, dlg_a, with everything under it, the denial and the revocation.
	if len(r.Roots) != 1 || r.Roots[0].ID != "dlg_a" {
		t.Fatalf("roots %+v", r.Roots)
	}
	got := flatten(r.Roots[0])
	want := []string{"dlg_a", "dlg_a1", "dlg_a2", "revocation", "denied:scope_widened"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("blast radius of executor: %v, want %v\n%s", got, want, out)
	}
	for _, n := range r.Roots {
		if len(n.Proof) == 0 && n.Index > 0 {
			t.Fatalf("node %s has no inclusion proof", n.ID)
		}
	}
	tree := mustWarrant(t, g.dir, g.env, "blast-radius", id("planner"))
	if !strings.Contains(tree, "dlg_b") || strings.Contains(tree, "dlg_other") || !strings.Contains(tree, "REVOCATION of dlg_a1") || !strings.Contains(tree, "DENIED (scope_widened)") {
		t.Fatalf("tree for planner:\n%s", tree)
	}
	dot := mustWarrant(t, g.dir, g.env, "blast-radius", id("planner"), "--format", "dot")
	if !strings.HasPrefix(dot, "digraph blast_radius {") || strings.Count(dot, "->") < 5 {
		t.Fatalf("dot:\n%s", dot)
	}
}

type node struct {
	ID       string   `json:"id"`
	Index    uint64   `json:"index"`
	Kind     string   `json:"kind"`
	Decision string   `json:"decision"`
	Reasons  []string `json:"reasons"`
	Proof    []string `json:"inclusion_proof"`
	Children []node   `json:"children"`
}

func flatten(n node) []string {
	name := n.ID
	switch {
	case n.Kind == "revocation":
		name = "revocation"
	case n.Decision == "denied":
		name = "denied:" + strings.Join(n.Reasons, ",")
	}
	out := []string{name}
	for _, c := range n.Children {
		out = append(out, flatten(c)...)
	}
	return out
}

func TestExportAndAudit(t *testing.T) {
	g := newGovernance(t)
	buildTree(t, g)
	exportPath := filepath.Join(g.dir, "log.export")
	mustWarrant(t, g.dir, g.env, "export", "--out", exportPath)
	out := mustWarrant(t, g.dir, g.env, "audit", "--export", exportPath)
	if !strings.Contains(out, "verified: the entries hash to the signed checkpoint") || !strings.Contains(out, "denied scope_widened") {
		t.Fatalf("audit --export:\n%s", out)
	}
	out = mustWarrant(t, g.dir, g.env, "audit", "--json")
	var rep proofs.AuditReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Verified || rep.Denied != 1 || rep.Entries["delegation"] != 7 {
		t.Fatalf("audit --server --json: %s", out)
	}
	// A truncated export is caught, named and exits 1.
	data, _ := os.ReadFile(exportPath)
	os.WriteFile(exportPath+".cut", data[:len(data)-10], 0o644)
	r := warrant(t, g.dir, g.env, "audit", "--export", exportPath+".cut")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: export_malformed: ") {
		t.Fatalf("truncated export: exit %d %q\n%s", r.code, r.stderr, r.stdout)
	}
}

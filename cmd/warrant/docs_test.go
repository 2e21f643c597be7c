package main

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrantlog/warrant/ledger"
)

// The design documents name files, packages and reason codes of this
// repository. These tests keep them from rotting silently: a file renamed,
// an import added, or a reason code added without its documentation fails
// here.

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

// checkedDocs are the documents whose backticked paths and links must
// resolve inside the repository.
var checkedDocs = []string{"ARCHITECTURE.md", "docs/rules.md", "docs/operating.md", "docs/formats.md", "docs/security-model.md", "docs/auditing.md", "docs/witnesses.md", "docs/resource-servers.md", "docs/distributed.md", "examples/mcp-tickets/README.md", "examples/mcp-agent/README.md"}

var (
	fencedBlock = regexp.MustCompile("(?ms)^```.*?^```")
	inlineCode  = regexp.MustCompile("`([^`\n]+)`")
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// pathLike is a relative path without spaces, options or placeholders.
	pathLike = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*/?$`)
	// topLevelFile is a file at the root named by its extension.
	topLevelFile = regexp.MustCompile(`^[A-Za-z0-9_-]+\.(go|md|proto|cedar|sh|mod|yaml)$`)
)

// docPaths returns the repository paths a document names in inline code
// (outside fenced blocks) and in relative links, and its external links.
// In inline code, a repository path is a relative path whose first element
// is one of the repository's top-level directories (isTopDir), so that Go
// import paths (log/slog), media types and examples (DIR/log.key) are not
// taken for one, or a top-level file named by its extension.
func docPaths(doc string, isTopDir func(string) bool) (paths, external []string) {
	text := fencedBlock.ReplaceAllString(doc, "")
	for _, m := range inlineCode.FindAllStringSubmatch(text, -1) {
		tok := m[1]
		first, _, nested := strings.Cut(tok, "/")
		switch {
		case nested && pathLike.MatchString(tok) && isTopDir(first):
			paths = append(paths, tok)
		case !nested && topLevelFile.MatchString(tok):
			paths = append(paths, tok)
		}
	}
	for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
		target := m[1]
		switch {
		case strings.Contains(target, "://"), strings.HasPrefix(target, "mailto:"):
			external = append(external, target)
		case strings.HasPrefix(target, "#"):
		default:
			target, _, _ = strings.Cut(target, "#")
			paths = append(paths, target)
		}
	}
	return paths, external
}

// isTopDir reports whether name is a top-level directory of the repository.
func isTopDir(name string) bool {
	fi, err := os.Stat(filepath.Join(repoRoot, name))
	return err == nil && fi.IsDir() && !strings.HasPrefix(name, ".")
}

func TestDocumentedPathsExist(t *testing.T) {
	for _, name := range checkedDocs {
		b, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		paths, external := docPaths(string(b), isTopDir)
		if len(paths) == 0 {
			t.Errorf("%s names no repository path: is the extraction broken?", name)
		}
		for _, p := range external {
			t.Errorf("%s links outside the repository: %s", name, p)
		}
		base := repoRoot
		if dir := filepath.Dir(name); dir != "." {
			base = filepath.Join(repoRoot, dir)
		}
		for _, p := range paths {
			// Backticked paths are relative to the repository root; links
			// are relative to the document, as Markdown renders them.
			if _, err := os.Stat(filepath.Join(repoRoot, p)); err == nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(base, p)); err == nil {
				continue
			}
			t.Errorf("%s names %s, which does not exist", name, p)
		}
	}
}

func TestDocPathsExtraction(t *testing.T) {
	doc := "See `ledger/sequencer.go` and `Log.apply`, `--data DIR`, `DIR/log.key`, `log/slog`,\n" +
		"`golang.org/x/mod/sumdb/tlog`, `README.md`, `proofs/`, `ledger/nothere.go`, [rules](docs/rules.md#x),\n" +
		"`application/vnd.warrant.delegation.v1+json`, [out](https://example.com/), [here](#anchor).\n" +
		"```\n`not/checked.go`\n```\n"
	top := func(name string) bool { return name == "ledger" || name == "proofs" }
	paths, external := docPaths(doc, top)
	want := []string{"ledger/sequencer.go", "README.md", "proofs/", "ledger/nothere.go", "docs/rules.md"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
	if !slices.Equal(external, []string{"https://example.com/"}) {
		t.Errorf("external %q", external)
	}
}

const modulePath = "github.com/warrantlog/warrant"

// TestArchitectureImports compares the import graph drawn in
// ARCHITECTURE.md with the imports of the module's packages (non-test
// files, this module's packages only).
func TestArchitectureImports(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "<!-- imports:begin -->")
	block, _, ok2 := strings.Cut(block, "<!-- imports:end -->")
	if !ok || !ok2 {
		t.Fatal("ARCHITECTURE.md has no <!-- imports:begin --> ... <!-- imports:end --> block")
	}
	drawn := map[string][]string{}
	for _, line := range strings.Split(block, "\n") {
		from, to, ok := strings.Cut(line, "->")
		if !ok {
			continue
		}
		imps := strings.Fields(to)
		slices.Sort(imps)
		drawn[strings.TrimSpace(from)] = imps
	}

	actual := map[string][]string{}
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		name := d.Name()
		if rel != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if rel != "." {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module (bench/, tools/)
			}
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files, or only tests
		}
		var imps []string
		for _, imp := range pkg.Imports {
			if rest, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				imps = append(imps, rest)
			}
		}
		slices.Sort(imps)
		actual[filepath.ToSlash(rel)] = imps
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(actual) < 5 {
		t.Fatalf("found only %d packages under %s", len(actual), repoRoot)
	}
	for pkg, imps := range actual {
		d, ok := drawn[pkg]
		if !ok {
			t.Errorf("ARCHITECTURE.md's import graph lacks package %s (imports %q)", pkg, imps)
			continue
		}
		if !slices.Equal(d, imps) {
			t.Errorf("ARCHITECTURE.md draws %s -> %q, but it imports %q", pkg, d, imps)
		}
	}
	for pkg := range drawn {
		if _, ok := actual[pkg]; !ok {
			t.Errorf("ARCHITECTURE.md's import graph names %s, which is not a package of the module", pkg)
		}
	}
}

// TestArchitectureKindSites checks the table of the places that name entry
// kinds ("Adding an entry kind today" in ARCHITECTURE.md): every function,
// method or type a row names must be declared in the row's file, so the
// table follows renames and the count stays honest.
func TestArchitectureKindSites(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "### Adding an entry kind today")
	if !ok {
		t.Fatal("ARCHITECTURE.md has no section \"Adding an entry kind today\"")
	}
	ident := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		file := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !strings.HasSuffix(file, ".go") {
			continue
		}
		rows++
		decls, err := declarations(filepath.Join(repoRoot, file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(cells[2], -1) {
			name := m[1]
			if !ident.MatchString(name) {
				continue // PayloadType…, Parse…: families of names
			}
			if !decls[name] {
				t.Errorf("ARCHITECTURE.md says %s holds %s, which it does not declare", file, name)
			}
		}
	}
	if rows < 10 {
		t.Fatalf("found only %d rows in the entry-kind table", rows)
	}
}

// declarations returns the names a Go file declares at top level: types,
// functions, constants, variables, and methods as Recv.Name.
func declarations(path string) (map[string]bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			name := d.Name.Name
			if d.Recv != nil && len(d.Recv.List) > 0 {
				typ := d.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					name = id.Name + "." + name
				}
				out[d.Name.Name] = true // a method is also found by its bare name
			}
			out[name] = true
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					out[s.Name.Name] = true
				case *ast.ValueSpec:
					for _, n := range s.Names {
						out[n.Name] = true
					}
				}
			}
		}
	}
	return out, nil
}

// TestOperatingDocumentsEveryServeFlag checks that docs/operating.md names
// every flag of `warrant serve`, as its -h lists them.
func TestOperatingDocumentsEveryServeFlag(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	env := &cmdEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	if code := run(t.Context(), env, []string{"serve", "-h"}); code != exitOK {
		t.Fatalf("serve -h: exit %d: %s", code, stderr.String())
	}
	flags := regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(stderr.String(), -1)
	if len(flags) < 20 {
		t.Fatalf("serve -h lists only %d flags:\n%s", len(flags), stderr.String())
	}
	for _, f := range flags {
		if !strings.Contains(string(doc), "`--"+f[1]) {
			t.Errorf("docs/operating.md does not document serve --%s", f[1])
		}
	}
}

// describer is a prometheus.Registerer that keeps what is registered, so a
// test can list every metric, including vectors without observations.
type describer struct{ collectors []prometheus.Collector }

func (d *describer) Register(c prometheus.Collector) error {
	d.collectors = append(d.collectors, c)
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	d.collectors = append(d.collectors, cs...)
}

func (d *describer) Unregister(prometheus.Collector) bool { return false }

// TestOperatingDocumentsEveryMetric checks that docs/operating.md names
// every metric of package ledger.
func TestOperatingDocumentsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	var d describer
	if _, err := ledger.NewMetrics(&d); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range d.collectors {
		c.Describe(ch)
	}
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)
	n := 0
	for desc := range ch {
		m := fqName.FindStringSubmatch(desc.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", desc)
		}
		n++
		if !strings.Contains(string(doc), "`"+m[1]) {
			t.Errorf("docs/operating.md does not document the metric %s", m[1])
		}
	}
	if n < 10 {
		t.Fatalf("found only %d metrics", n)
	}
}

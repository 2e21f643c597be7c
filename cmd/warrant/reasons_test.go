package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// The reason codes are catalogued once, in proofs/reasons.go, with their
// meanings and statuses. These tests keep the code and the documents to
// that one catalogue: no reason code is written as a string literal outside
// package proofs, docs/rules.md lists every code with the status the
// catalogue gives it, and no document names a code or a status for it that
// the catalogue does not.

var (
	snakeCode = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// statusAndCode is a document's "`Status code`": the RPC status a
	// refusal is answered with, and its reason code.
	statusAndCode = regexp.MustCompile("`([A-Z][A-Za-z]+) ([a-z][a-z0-9_]*)`")
)

// TestNoLiteralReasonCodes checks that code outside the catalogue names
// reason codes by their constants: in the non-test Go files of this module
// (not of the modules nested in it), no string literal equals a catalogued
// code, and none is given as a reason (to proofs.Errorf, proofs.Error's
// Reason, a variable named reason, a comparison with proofs.Reason, or a
// Reason* constant) outside the Reason* constants of package proofs.
func TestNoLiteralReasonCodes(t *testing.T) {
	fset := token.NewFileSet()
	proofsDir := filepath.Join(repoRoot, "proofs")
	files := 0
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == repoRoot {
				return nil
			}
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") || name == "node_modules" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		for pos, lit := range literalReasons(f, filepath.Dir(path) == proofsDir) {
			t.Errorf("%s: reason code %q written as a literal; use its constant in package proofs (proofs/reasons.go)", fset.Position(pos), lit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 60 {
		t.Fatalf("read only %d files: is repoRoot wrong?", files)
	}
}

// literalReasons returns the string literals of f that are reason codes:
// any literal equal to a catalogued code, and any literal given as a
// reason. In package proofs (inProofs), Reason* constants are the
// declarations the catalogue names and are allowed.
func literalReasons(f *ast.File, inProofs bool) map[token.Pos]string {
	out := map[token.Pos]string{}
	allowed := map[*ast.BasicLit]bool{}
	str := func(e ast.Expr) (*ast.BasicLit, string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return nil, "", false
		}
		s, err := strconv.Unquote(lit.Value)
		return lit, s, err == nil
	}
	given := func(e ast.Expr) {
		if lit, s, ok := str(e); ok && s != "" { // "": no reason
			out[lit.Pos()] = s
		}
	}
	isReasonCall := func(e ast.Expr) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		switch fn := call.Fun.(type) {
		case *ast.SelectorExpr:
			return fn.Sel.Name == "Reason"
		case *ast.Ident:
			return fn.Name == "Reason"
		}
		return false
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ImportSpec, *ast.Field:
			return false // import paths, struct tags
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if strings.HasPrefix(name.Name, "Reason") && i < len(n.Values) {
					if lit, _, ok := str(n.Values[i]); ok && inProofs {
						allowed[lit] = true
					} else {
						given(n.Values[i])
					}
				}
			}
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok {
				switch k.Name {
				case "Reason":
					given(n.Value)
				case "State":
					// A delegation's State shares two words with reason
					// codes (not_yet_valid, expired) without being one.
					if lit, _, ok := str(n.Value); ok {
						allowed[lit] = true
					}
				}
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && id.Name == "reason" && i < len(n.Rhs) {
					given(n.Rhs[i])
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if isReasonCall(n.X) {
					given(n.Y)
				}
				if isReasonCall(n.Y) {
					given(n.X)
				}
			}
		case *ast.CallExpr:
			var name string
			switch fn := n.Fun.(type) {
			case *ast.SelectorExpr:
				if x, ok := fn.X.(*ast.Ident); ok && x.Name == "proofs" {
					name = fn.Sel.Name
				}
			case *ast.Ident:
				if inProofs {
					name = fn.Name
				}
			}
			if name == "Errorf" && len(n.Args) > 1 {
				given(n.Args[0])
			}
		case *ast.BasicLit:
			if lit, s, ok := str(n); ok && !allowed[lit] {
				if _, known := proofs.LookupReason(s); known {
					out[lit.Pos()] = s
				}
			}
		}
		return true
	})
	for lit := range allowed {
		delete(out, lit.Pos())
	}
	return out
}

// TestNoLiteralReasonCodesExtraction checks literalReasons on code that
// breaks the rule in each way it looks for.
func TestNoLiteralReasonCodesExtraction(t *testing.T) {
	src := `package x
const ReasonNew = "brand_new"
func f(err error) {
	_ = proofs.Errorf("made_up", "x")
	_ = &proofs.Error{Reason: "another_one"}
	reason := "assigned"
	_ = proofs.Reason(err) == "compared"
	_ = []string{"io_error"}
	_ = Status{State: "not_yet_valid"}
	_ = proofs.Errorf(proofs.ReasonIOError, "fine")
}
`
	f, err := parser.ParseFile(token.NewFileSet(), "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range literalReasons(f, false) {
		got[s] = true
	}
	want := []string{"brand_new", "made_up", "another_one", "assigned", "compared", "io_error"}
	for _, w := range want {
		if !got[w] {
			t.Errorf("literalReasons missed %q (found %v)", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("literalReasons found %v, want exactly %v", got, want)
	}
	inProofs := literalReasons(f, true)
	for _, s := range inProofs {
		if s == "brand_new" {
			t.Error("a Reason* constant of package proofs was reported")
		}
	}
}

// mdTable is a Markdown table: its header cells and rows of cells.
type mdTable struct {
	header []string
	rows   [][]string
	line   int // of the header, 1-based
}

// mdTables returns the tables of a Markdown document outside fenced blocks.
func mdTables(doc string) []mdTable {
	var tables []mdTable
	var cur *mdTable
	fenced := false
	lines := strings.Split(doc, "\n")
	cells := func(line string) []string {
		line = strings.TrimSpace(line)
		line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
		parts := strings.Split(line, "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	for i, line := range lines {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		switch {
		case fenced || !strings.HasPrefix(line, "|"):
			cur = nil
		case cur == nil:
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "| ---") {
				tables = append(tables, mdTable{header: cells(line), line: i + 1})
				cur = &tables[len(tables)-1]
			}
		case strings.HasPrefix(line, "| ---"):
		default:
			cur.rows = append(cur.rows, cells(line))
		}
	}
	return tables
}

// cellCodes returns the reason codes a table cell names in inline code.
func cellCodes(cell string) []string {
	var codes []string
	for _, m := range inlineCode.FindAllStringSubmatch(cell, -1) {
		if snakeCode.MatchString(m[1]) {
			codes = append(codes, m[1])
		}
	}
	return codes
}

// reasonTableStatus returns, for a table whose first column is "reason
// code", the status each row documents: its "status" column, or "recorded
// denial" for a table of rules ("denied when"). ok is false for other
// tables; col is -1 when the status is the table's.
func reasonTableStatus(tb mdTable) (col int, status string, ok bool) {
	if len(tb.header) < 2 || tb.header[0] != "reason code" {
		return 0, "", false
	}
	for i, h := range tb.header {
		if h == "status" {
			return i, "", true
		}
	}
	if strings.HasSuffix(tb.header[1], "denied when") {
		return -1, proofs.RecordedDenial.String(), true
	}
	return -1, "", true
}

// TestRulesDocumentsReasonCatalogue checks docs/rules.md against the
// catalogue: every code is in one of its reason tables, every code a
// reason table names is catalogued, and the status a table gives it is the
// catalogue's.
func TestRulesDocumentsReasonCatalogue(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/rules.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, tb := range mdTables(string(doc)) {
		col, status, ok := reasonTableStatus(tb)
		if !ok {
			continue
		}
		if col < 0 && status == "" {
			t.Errorf("docs/rules.md:%d: a reason table without a status column", tb.line)
			continue
		}
		for _, row := range tb.rows {
			want := status
			if col >= 0 {
				if col >= len(row) {
					t.Errorf("docs/rules.md:%d: row %q has no status", tb.line, row)
					continue
				}
				want = row[col]
			}
			for _, code := range cellCodes(row[0]) {
				documented[code] = true
				r, ok := proofs.LookupReason(code)
				switch {
				case !ok:
					t.Errorf("docs/rules.md:%d: %s is not in the catalogue (proofs/reasons.go)", tb.line, code)
				case r.Status() != want:
					t.Errorf("docs/rules.md:%d: %s documented as %q; the catalogue says %q", tb.line, code, want, r.Status())
				}
			}
		}
	}
	for _, r := range proofs.Reasons() {
		if !documented[r.Code] {
			t.Errorf("%s (%s) is in no reason table of docs/rules.md", r.Code, r.Status())
		}
	}
}

// TestDocumentsNameCataloguedReasons checks every document that names
// reason codes against the catalogue (docs/*.md, the README,
// ARCHITECTURE.md, siem/MAPPING.md): each "`Status code`" (the bounds
// table of docs/operating.md, for one) names a catalogued code with the
// catalogue's status, and a reason table outside docs/rules.md names only
// catalogued codes, as recorded denials unless its row says "(refused".
func TestDocumentsNameCataloguedReasons(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range docs {
		docs[i] = filepath.ToSlash(strings.TrimPrefix(d, repoRoot+string(filepath.Separator)))
	}
	docs = append(docs, "README.md", "ARCHITECTURE.md", "siem/MAPPING.md")
	checked := 0
	for _, name := range docs {
		raw, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		doc := fencedBlock.ReplaceAllString(string(raw), "")
		for _, m := range statusAndCode.FindAllStringSubmatch(doc, -1) {
			status, code := m[1], m[2]
			r, ok := proofs.LookupReason(code)
			checked++
			switch {
			case !ok:
				t.Errorf("%s: %q names %s, which is not in the catalogue", name, m[0], code)
			case code == proofs.ReasonRequestTooLarge && status == "ResourceExhausted":
				// The transport's bound on an inflated request
				// (ledger/decompress.go) answers with this code before
				// the log sees the request; docs/rules.md says so.
			case r.Status() != status:
				t.Errorf("%s: %q; the catalogue says %s is %s", name, m[0], code, r.Status())
			}
		}
		if name == "docs/rules.md" {
			continue // TestRulesDocumentsReasonCatalogue
		}
		for _, tb := range mdTables(string(raw)) {
			if _, _, ok := reasonTableStatus(tb); !ok {
				continue
			}
			for _, row := range tb.rows {
				want := proofs.RecordedDenial
				if len(row) > 1 && strings.HasPrefix(row[1], "(refused") {
					want = proofs.Refusal
				}
				for _, code := range cellCodes(row[0]) {
					checked++
					if r, ok := proofs.LookupReason(code); !ok {
						t.Errorf("%s: table at line %d names %s, which is not in the catalogue", name, tb.line, code)
					} else if r.Kind != want {
						t.Errorf("%s: table at line %d shows %s as %v; the catalogue says %v", name, tb.line, code, want, r.Kind)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d reason codes in the documents: is the extraction broken?", checked)
	}
}

package proofs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestReasonCatalogue checks the catalogue itself: each code once, in
// snake_case, with a kind, a meaning, and an RPC status exactly when the
// kind has one.
func TestReasonCatalogue(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r.Code] {
			t.Errorf("%s is in the catalogue twice", r.Code)
		}
		seen[r.Code] = true
		if !snake.MatchString(r.Code) {
			t.Errorf("%q is not a snake_case code", r.Code)
		}
		if r.Meaning == "" || strings.Contains(r.Meaning, "\n") {
			t.Errorf("%s: meaning %q is not one line", r.Code, r.Meaning)
		}
		switch r.Kind {
		case Refusal:
			if r.RPC.String() == "Unknown" || r.RPC == RPCPermissionDenied {
				t.Errorf("%s: a refusal with status %v", r.Code, r.RPC)
			}
		case RecordedDenial:
			if r.RPC != RPCPermissionDenied {
				t.Errorf("%s: a denial with status %v", r.Code, r.RPC)
			}
		case ClientFailure, LocalFailure:
			if r.RPC != 0 {
				t.Errorf("%s: kind %v with an RPC status %v", r.Code, r.Kind, r.RPC)
			}
		default:
			t.Errorf("%s: no kind", r.Code)
		}
		if got, ok := LookupReason(r.Code); !ok || got != r {
			t.Errorf("LookupReason(%s) = %+v, %v", r.Code, got, ok)
		}
	}
	if _, ok := LookupReason("no_such_reason"); ok {
		t.Error("LookupReason found a code that is not in the catalogue")
	}
	if got := RPCStatus("no_such_reason"); got != RPCInvalidArgument {
		t.Errorf("RPCStatus of an unknown code = %v, want InvalidArgument", got)
	}
	if got := RPCStatus(ReasonParentRevoked); got != RPCInvalidArgument {
		t.Errorf("RPCStatus of a denial code = %v, want InvalidArgument (a denial is answered by its own path)", got)
	}
}

// TestReasonConstantsCatalogued checks that every string constant named
// Reason* in this package is in the catalogue, so a code cannot be added
// without its meaning and status.
func TestReasonConstantsCatalogued(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(node ast.Node) bool {
			vs, ok := node.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				code, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				n++
				if _, ok := LookupReason(code); !ok {
					t.Errorf("%s (%s, %s) is not in the catalogue (reasons.go)", name.Name, code, fset.Position(name.Pos()))
				}
			}
			return true
		})
	}
	if n < 100 {
		t.Fatalf("found only %d reason constants: is the extraction broken?", n)
	}
	if n != len(Reasons()) {
		t.Errorf("%d reason constants, %d catalogue entries", n, len(Reasons()))
	}
}

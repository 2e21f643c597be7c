package proofs_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// TestCedarVersionMatchesGoMod keeps the cedar-go version recorded in every
// decision equal to the module version that evaluates it.
func TestCedarVersionMatchesGoMod(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/cedar-policy/cedar-go (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require cedar-go")
	}
	if string(m[1]) != proofs.CedarVersion {
		t.Fatalf("go.mod requires cedar-go %s, proofs.CedarVersion is %s", m[1], proofs.CedarVersion)
	}
}

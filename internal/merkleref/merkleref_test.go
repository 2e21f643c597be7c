package merkleref

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestRootKnownAnswers checks Root against RFC 6962 test vectors as used by
// Certificate Transparency implementations (leaves are the byte strings
// "", 0x00, 0x10, 0x2021, 0x3031, 0x40414243, ...).
func TestRootKnownAnswers(t *testing.T) {
	inputs := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	roots := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	var leaves [][]byte
	for i, in := range inputs {
		b, _ := hex.DecodeString(in)
		leaves = append(leaves, LeafHash(b))
		if got := hex.EncodeToString(Root(leaves)); got != roots[i] {
			t.Errorf("root of %d leaves = %s, want %s", i+1, got, roots[i])
		}
	}
	if got := hex.EncodeToString(Root(nil)); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty root = %s", got)
	}
}

// TestProofsFoldToRoot checks that every inclusion path recomputes the root
// by the RFC's own folding, independently of any library.
func TestProofsFoldToRoot(t *testing.T) {
	var leaves [][]byte
	for n := 1; n <= 40; n++ {
		leaves = append(leaves, LeafHash([]byte{byte(n)}))
		root := Root(leaves)
		for m := 0; m < n; m++ {
			if got := RootFromInclusion(m, n, leaves[m], Inclusion(m, leaves)); !bytes.Equal(got, root) {
				t.Fatalf("inclusion of %d in %d does not fold to the root", m, n)
			}
		}
	}
}

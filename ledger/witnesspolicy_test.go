package ledger

import (
	"crypto/rand"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestWitnessPolicyParse: tlog-policy files as the log reads them, and the
// mistakes it refuses before serving.
func TestWitnessPolicyParse(t *testing.T) {
	_, ed, err := note.GenerateKey(rand.Reader, "witness.example/ed")
	if err != nil {
		t.Fatal(err)
	}
	edCosig, err := fnote.VKeyToCosignatureV1(ed)
	if err != nil {
		t.Fatal(err)
	}
	_, ml, err := fnote.GenerateMLDSAKey("witness.example/ml")
	if err != nil {
		t.Fatal(err)
	}
	good := "# comment\nlog example.com/log+01234567+AQ==\nwitness a " + edCosig + " https://a.example/w/ # trailing\n" +
		"witness b " + ml + " http://b.example\ngroup g all a b\nquorum g\n"
	p, err := ParseWitnessPolicy([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Witnesses) != 2 || p.Witnesses[0].Name != "a" || p.Witnesses[0].URL != "https://a.example/w" || p.Witnesses[1].Key.Name() != "witness.example/ml" {
		t.Fatalf("parsed %+v", p.Witnesses)
	}
	if err := p.checkLog("example.com/log+01234567+AQ=="); err != nil {
		t.Fatal(err)
	}
	if err := p.checkLog("other.example/log+01234567+AQ=="); err == nil {
		t.Fatal("a policy for another log was accepted")
	}
	for name, text := range map[string]string{
		"empty":            "",
		"no quorum":        "witness a " + edCosig + " https://a.example\n",
		"quorum none":      "witness a " + edCosig + " https://a.example\nquorum none\n",
		"no URL":           "witness a " + edCosig + "\nquorum a\n",
		"not http":         "witness a " + edCosig + " ftp://a.example\nquorum a\n",
		"no host":          "witness a " + edCosig + " https://\nquorum a\n",
		"bad key":          "witness a example.com+00000000+AQ== https://a.example\nquorum a\n",
		"unknown keyword":  "witness a " + edCosig + " https://a.example\nquorum a\nfrobnicate\n",
		"threshold > size": "witness a " + edCosig + " https://a.example\ngroup g 2 a\nquorum g\n",
		"unknown member":   "witness a " + edCosig + " https://a.example\ngroup g 1 b\nquorum g\n",
		"empty log line":   "log\nwitness a " + edCosig + " https://a.example\nquorum a\n",
	} {
		if _, err := ParseWitnessPolicy([]byte(text)); err == nil {
			t.Errorf("%s: accepted %q", name, text)
		} else if !strings.Contains(err.Error(), "witness policy") {
			t.Errorf("%s: error %q does not say what it is about", name, err)
		}
	}
}

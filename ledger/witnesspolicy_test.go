package ledger

import (
	"crypto/rand"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
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
	_, logKey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	good := "# comment\nlog " + logKey + "\nwitness a " + edCosig + " https://a.example/w/\n" +
		"witness b " + ml + " http://b.example\ngroup g all a b\nquorum g\n"
	p, err := ParseWitnessPolicy([]byte(good), logKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Witnesses) != 2 || p.Witnesses[0].Name != "a" || witnessURL(&p.Witnesses[0]) != "https://a.example/w/add-checkpoint" || p.Witnesses[1].Verifier.Name() != "witness.example/ml" {
		t.Fatalf("parsed %+v", p.Witnesses)
	}
	_, otherLog, err := note.GenerateKey(rand.Reader, "other.example/log")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseWitnessPolicy([]byte(good), otherLog); err == nil {
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
		_, err := ParseWitnessPolicy([]byte(text), logKey)
		if err == nil {
			t.Errorf("%s: accepted %q", name, text)
		} else if proofs.Reason(err) != proofs.ReasonWitnessPolicyInvalid || !strings.Contains(err.Error(), "witness policy") {
			t.Errorf("%s: error %q does not say what it is about", name, err)
		}
	}
}

// TestWitnessCosignatureVerify: what a witness answers is used only for the
// lines under its own key that verify over the checkpoint sent; Ed25519
// cosignature/v1 and ML-DSA-44 alike.
func TestWitnessCosignatureVerify(t *testing.T) {
	cp := &proofs.Checkpoint{Origin: "test.example/log", Size: 7, Root: make([]byte, 32)}
	other := &proofs.Checkpoint{Origin: "test.example/log", Size: 8, Root: make([]byte, 32)}
	edSkey, edVkey, err := note.GenerateKey(rand.Reader, "witness.example/w")
	if err != nil {
		t.Fatal(err)
	}
	mlSkey, mlVkey, err := fnote.GenerateMLDSAKey("witness.example/w")
	if err != nil {
		t.Fatal(err)
	}
	cosign := func(skey string, c *proofs.Checkpoint) string {
		t.Helper()
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := note.Sign(&note.Note{Text: string(proofs.CheckpointBody(c.Origin, c.Size, c.Root))}, s)
		if err != nil {
			t.Fatal(err)
		}
		_, line, _ := strings.Cut(string(signed), "\n\n")
		return line
	}
	edCosig, err := fnote.VKeyToCosignatureV1(edVkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ name, skey, vkey string }{{"ed25519", edSkey, edCosig}, {"ml-dsa-44", mlSkey, mlVkey}} {
		key, err := proofs.NewCosignatureVerifier(k.vkey)
		if err != nil {
			t.Fatal(err)
		}
		c := &witnessClient{PolicyWitness: proofs.PolicyWitness{Name: "w", Verifier: key}}
		good := cosign(k.skey, cp)
		otherKey := map[string]string{"ed25519": mlSkey, "ml-dsa-44": edSkey}[k.name]
		if got, err := c.verify(cp, []byte(good)); err != nil || string(got) != good {
			t.Fatalf("%s: a good cosignature: %q, %v", k.name, got, err)
		}
		// The witness's other key, and lines of others, are ignored.
		body := cosign(otherKey, cp) + "\u2014 witness.example/x AAAAAAAA\n" + good + "garbage\n"
		if got, err := c.verify(cp, []byte(body)); err != nil || string(got) != good {
			t.Fatalf("%s: a good cosignature among others: %q, %v", k.name, got, err)
		}
		flipped := []byte(good)
		flipped[len(flipped)-10] ^= 1
		for what, body := range map[string]string{
			"empty":                "",
			"only its other key":   cosign(otherKey, cp),
			"over another size":    cosign(k.skey, other),
			"corrupted":            string(flipped),
			"not base64":           "\u2014 witness.example/w !!!!\n",
			"too short":            "\u2014 witness.example/w AAAA\n",
			"another name":         strings.Replace(good, "witness.example/w ", "witness.example/v ", 1),
			"binary":               "\x00\xff\u2014 \n\n\n",
			"signature line alone": "\u2014 witness.example/w",
		} {
			if got, err := c.verify(cp, []byte(body)); err == nil {
				t.Errorf("%s: %s: accepted %q", k.name, what, got)
			}
		}
	}
}

package proofs_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
	"golang.org/x/mod/sumdb/note"
)

// testLogTree is a small log of real leaves with a signed checkpoint.
type testLogTree struct {
	log    *testLog
	leaves [][]byte
	tree   *refTree
	signed []byte // checkpoint for the whole tree
}

func newTestLogTree(t testing.TB) *testLogTree {
	t.Helper()
	l := newTestLeaves(t)
	var leaves [][]byte
	for i, leaf := range []*proofs.Leaf{l.config, l.binding, l.accepted, l.denied} {
		leaves = append(leaves, mustMarshalLeaf(t, leaf))
		// Vary the log time so that no two leaves are equal.
		c := *leaf
		c.LogTime = proofs.FormatLogTime(testLogTime.Add(time.Duration(10+i) * time.Second))
		leaves = append(leaves, mustMarshalLeaf(t, &c))
	}
	leaves = leaves[:7]
	tr := newRefTree(leaves)
	log := newTestLog(t, testOrigin)
	return &testLogTree{log: log, leaves: leaves, tree: tr, signed: log.checkpoint(t, uint64(len(leaves)), tr.root(uint64(len(leaves))))}
}

// proof returns the marshalled tlog-proof of entry i.
func (lt *testLogTree) proof(t testing.TB, i int) []byte {
	t.Helper()
	p, err := proofs.NewTLogProof(uint64(i), lt.leaves[i], lt.tree.path(uint64(i), uint64(len(lt.leaves))), lt.signed)
	if err != nil {
		t.Fatal(err)
	}
	return p.Marshal()
}

func TestVerifyTLogProof(t *testing.T) {
	lt := newTestLogTree(t)
	n := uint64(len(lt.leaves))
	for i := range lt.leaves {
		data := lt.proof(t, i)
		e, err := proofs.VerifyTLogProof(data, lt.log.verifier)
		if err != nil {
			t.Fatalf("entry %d: VerifyTLogProof(%s): %v", i, data, err)
		}
		if e.Index != uint64(i) || !bytes.Equal(e.Leaf.Raw, lt.leaves[i]) {
			t.Errorf("entry %d: got index %d leaf %s", i, e.Index, e.Leaf.Raw)
		}
		if e.Checkpoint.Size != n || !bytes.Equal(e.Checkpoint.Root, lt.tree.root(n)) || !bytes.Equal(e.Checkpoint.Note, lt.signed) {
			t.Errorf("entry %d: checkpoint %v", i, e.Checkpoint)
		}
		p, err := proofs.ParseTLogProof(data)
		if err != nil {
			t.Fatalf("ParseTLogProof: %v", err)
		}
		if !bytes.Equal(p.Marshal(), data) || p.Index != uint64(i) || !bytes.Equal(p.ExtraData, lt.leaves[i]) || !bytes.Equal(p.Checkpoint, lt.signed) {
			t.Errorf("entry %d: ParseTLogProof = %+v", i, p)
		}
	}
	// The format, by hand, for entry 6 of 7: extra, index, hashes, blank
	// line, checkpoint.
	path := lt.tree.path(6, n)
	want := "c2sp.org/tlog-proof@v1\nextra " + base64.StdEncoding.EncodeToString(lt.leaves[6]) + "\nindex 6\n"
	for _, h := range path {
		want += base64.StdEncoding.EncodeToString(h) + "\n"
	}
	want += "\n" + string(lt.signed)
	if got := string(lt.proof(t, 6)); got != want {
		t.Errorf("tlog-proof =\n%s\nwant\n%s", got, want)
	}

	// A proof against an earlier checkpoint.
	signed3 := lt.log.checkpoint(t, 3, lt.tree.root(3))
	p, err := proofs.NewTLogProof(1, lt.leaves[1], lt.tree.path(1, 3), signed3)
	if err != nil {
		t.Fatal(err)
	}
	e, err := proofs.VerifyTLogProof(p.Marshal(), lt.log.verifier)
	if err != nil || e.Checkpoint.Size != 3 || !bytes.Equal(e.Leaf.Raw, lt.leaves[1]) {
		t.Errorf("proof against checkpoint of size 3: %+v, %v", e, err)
	}

	// A single-entry log: no hashes.
	one := lt.log.checkpoint(t, 1, lt.tree.root(1))
	p, err = proofs.NewTLogProof(0, lt.leaves[0], nil, one)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proofs.VerifyTLogProof(p.Marshal(), lt.log.verifier); err != nil {
		t.Errorf("single-entry log: %v", err)
	}
}

func TestNewTLogProofHashLength(t *testing.T) {
	lt := newTestLogTree(t)
	path := lt.tree.path(2, 7)
	for _, bad := range [][]byte{path[0][:31], append(bytes.Clone(path[0]), 0), nil} {
		hashes := append([][]byte{bad}, path[1:]...)
		if _, err := proofs.NewTLogProof(2, lt.leaves[2], hashes, lt.signed); err == nil {
			t.Errorf("NewTLogProof with a %d-byte hash: no error", len(bad))
		}
	}
}

func TestVerifyTLogProofErrors(t *testing.T) {
	lt := newTestLogTree(t)
	n := uint64(len(lt.leaves))
	good := string(lt.proof(t, 3))
	build := func(index uint64, leaf []byte, hashes [][]byte, cp []byte) string {
		p, err := proofs.NewTLogProof(index, leaf, hashes, cp)
		if err != nil {
			t.Fatal(err)
		}
		return string(p.Marshal())
	}
	path3 := lt.tree.path(3, n)
	// A log whose entries are not leaves.
	junk := newNumberedRefTree(4)
	junkCP := lt.log.checkpoint(t, 4, junk.root(4))
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("proof has no %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	extraB64 := base64.StdEncoding.EncodeToString(lt.leaves[3])
	hashB64 := base64.StdEncoding.EncodeToString(path3[0])

	tests := []struct {
		name   string
		data   string
		reason string
	}{
		{"no extra", build(3, nil, path3, lt.signed), proofs.ReasonTLogProofNoLeaf},
		{"empty extra", build(3, []byte{}, path3, lt.signed), proofs.ReasonTLogProofNoLeaf},
		{"wrong index", build(4, lt.leaves[3], path3, lt.signed), proofs.ReasonInclusionInvalid},
		{"index beyond size", build(n, lt.leaves[3], path3, lt.signed), proofs.ReasonInclusionInvalid},
		{"other leaf", build(3, lt.leaves[4], path3, lt.signed), proofs.ReasonInclusionInvalid},
		{"hash dropped", build(3, lt.leaves[3], path3[1:], lt.signed), proofs.ReasonInclusionInvalid},
		{"hash added", build(3, lt.leaves[3], append(path3, path3[0]), lt.signed), proofs.ReasonInclusionInvalid},
		{"checkpoint of other size", build(3, lt.leaves[3], path3, lt.log.checkpoint(t, 6, lt.tree.root(6))), proofs.ReasonInclusionInvalid},
		{"included, but not a leaf", build(1, junk.leaves[1], junk.path(1, 4), junkCP), proofs.ReasonLeafMalformed},
		{"checkpoint by other key", build(3, lt.leaves[3], path3, newTestLog(t, testOrigin).checkpoint(t, n, lt.tree.root(n))), proofs.ReasonCheckpointSignature},
		{"no checkpoint", build(3, lt.leaves[3], path3, nil), proofs.ReasonCheckpointInvalid},
		{"checkpoint with extension", build(3, lt.leaves[3], path3, lt.log.sign(t, string(proofs.CheckpointBody(testOrigin, n, lt.tree.root(n)))+"x\n")), proofs.ReasonCheckpointInvalid},

		// Encoding.
		{"wrong header", replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), proofs.ReasonTLogProofMalformed},
		{"index with leading zero", replace("index 3\n", "index 03\n"), proofs.ReasonTLogProofMalformed},
		{"index with plus", replace("index 3\n", "index +3\n"), proofs.ReasonTLogProofMalformed},
		{"index twice spaced", replace("index 3\n", "index  3\n"), proofs.ReasonTLogProofMalformed},
		{"missing index", replace("index 3\n", ""), proofs.ReasonTLogProofMalformed},
		{"CRLF after header", replace("@v1\n", "@v1\r\n"), proofs.ReasonTLogProofMalformed},
		{"CRLF after index", replace("index 3\n", "index 3\r\n"), proofs.ReasonTLogProofMalformed},
		{"extra non-canonical base64", replace(extraB64, nonCanonicalB64(extraB64)), proofs.ReasonTLogProofMalformed},
		{"extra without padding", replace(extraB64+"\n", strings.TrimRight(extraB64, "=")+"\n"), proofs.ReasonTLogProofMalformed},
		{"extra URL alphabet", replace("extra "+extraB64[:4], "extra -"+extraB64[1:4]), proofs.ReasonTLogProofMalformed},
		{"extra with space", replace("extra "+extraB64[:4], "extra "+extraB64[:2]+" "+extraB64[2:4]), proofs.ReasonTLogProofMalformed},
		{"hash non-canonical base64", replace(hashB64, nonCanonicalB64(hashB64)), proofs.ReasonTLogProofMalformed},
		{"hash with CR", replace(hashB64+"\n", hashB64+"\r\n"), proofs.ReasonTLogProofMalformed},
		{"hash of 31 bytes", replace(hashB64, base64.StdEncoding.EncodeToString(path3[0][:31])), proofs.ReasonTLogProofMalformed},
		{"extra line before index", replace("index 3\n", "comment\nindex 3\n"), proofs.ReasonTLogProofMalformed},
		{"blank line doubled", replace("\n\n"+testOrigin, "\n\n\n"+testOrigin), proofs.ReasonCheckpointSignature},
		{"checkpoint without final newline", strings.TrimSuffix(good, "\n"), proofs.ReasonCheckpointInvalid},
		{"trailing data", good + "x\n", proofs.ReasonCheckpointInvalid},
		{"empty", "", proofs.ReasonTLogProofMalformed},
		{"header only", "c2sp.org/tlog-proof@v1\n", proofs.ReasonTLogProofMalformed},
		{"too large", good + strings.Repeat("x", proofs.MaxTLogProofBytes), proofs.ReasonTLogProofMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := proofs.VerifyTLogProof([]byte(tt.data), lt.log.verifier)
			if err == nil {
				t.Fatalf("VerifyTLogProof(%q) accepted entry %d", tt.data, e.Index)
			}
			if r := proofs.Reason(err); r != tt.reason {
				t.Errorf("VerifyTLogProof(%q): reason %q (%v), want %q", tt.data, r, err, tt.reason)
			}
		})
	}

	// Wrong log key: same name, other key; other name.
	for _, log := range []*testLog{newTestLog(t, testOrigin), newTestLog(t, "other.example/log")} {
		_, err := proofs.VerifyTLogProof([]byte(good), log.verifier)
		wantReason(t, err, proofs.ReasonCheckpointSignature)
	}
}

// nonCanonicalB64 changes the unused low bits of the last data character of
// a padded base64 string: it decodes (leniently) to the same bytes.
func nonCanonicalB64(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(strings.TrimRight(s, "=")) - 1
	if i == len(s)-1 {
		panic("base64 string has no padding")
	}
	return s[:i] + string(alphabet[strings.IndexByte(alphabet, s[i])^1]) + s[i+1:]
}

// TestVerifyTLogProofTamper flips every bit of a tlog-proof file and cuts it
// at every length: no result verifies.
func TestVerifyTLogProofTamper(t *testing.T) {
	lt := newTestLogTree(t)
	data := lt.proof(t, 3)
	if _, err := proofs.VerifyTLogProof(data, lt.log.verifier); err != nil {
		t.Fatal(err)
	}
	known := 0
	for i := range len(data) * 8 {
		mut := flip(data, i)
		e, err := proofs.VerifyTLogProof(mut, lt.log.verifier)
		if err == nil {
			// The one known exception: the note signature's base64 has two
			// unused bits (TestOpenCheckpointUniqueEncoding).
			if sameNoteSignature(data, mut) {
				known++
				continue
			}
			t.Errorf("byte %d bit %d flipped: accepted as entry %d", i%len(data), i/len(data), e.Index)
			continue
		}
		if proofs.Reason(err) == "" {
			t.Errorf("byte %d bit %d flipped: error without reason: %v", i%len(data), i/len(data), err)
		}
	}
	if known > 0 {
		t.Logf("%d bit flips in the checkpoint's signature encoding were accepted (known bug, see TestOpenCheckpointUniqueEncoding)", known)
	}
	for n := range len(data) {
		if e, err := proofs.VerifyTLogProof(data[:n], lt.log.verifier); err == nil {
			t.Errorf("cut to %d of %d bytes: accepted as entry %d", n, len(data), e.Index)
		}
	}
}

// TestVerifyTLogProofLargeLeaf: every leaf the log can hold (up to
// MaxLeafBytes) must be provable with a tlog-proof file.
func TestVerifyTLogProofLargeLeaf(t *testing.T) {
	l := newTestLeaves(t)
	leaf := *l.config
	cfg := *leaf.Config
	leaf.Config = &cfg
	for {
		raw := mustMarshalLeaf(t, &leaf)
		if len(raw) > proofs.MaxLeafBytes-500 {
			break
		}
		cfg.AdminKeys = append(cfg.AdminKeys, proofs.ConfigKey{ID: l.agent.id, PublicKey: l.agent.der})
	}
	raw := mustMarshalLeaf(t, &leaf)
	tr := newRefTree([][]byte{raw})
	log := newTestLog(t, testOrigin)
	p, err := proofs.NewTLogProof(0, raw, nil, log.checkpoint(t, 1, tr.root(1)))
	if err != nil {
		t.Fatal(err)
	}
	data := p.Marshal()
	if len(data) > proofs.MaxTLogProofBytes {
		t.Fatalf("proof is %d bytes, over MaxTLogProofBytes", len(data))
	}
	if _, err := proofs.VerifyTLogProof(data, log.verifier); err != nil {
		t.Errorf("tlog-proof of a valid %d-byte leaf: %v", len(raw), err)
	}
}

func ExampleVerifyTLogProof() {
	// The log's key (fixed here so that the example's output is stable).
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	skey, vkey := noteKeys("example.com/warrant", priv)
	signer, _ := note.NewSigner(skey)

	// A one-entry log.
	leaf, _ := (&proofs.Leaf{
		Version: proofs.LeafVersion,
		Kind:    proofs.KindLogConfig,
		LogTime: proofs.FormatLogTime(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)),
		Config:  &proofs.LogConfig{Origin: "example.com/warrant", Limits: proofs.DefaultLimits()},
	}).Marshal()
	checkpoint, _ := note.Sign(&note.Note{Text: string(proofs.CheckpointBody("example.com/warrant", 1, proofs.LeafHash(leaf)))}, signer)
	p, _ := proofs.NewTLogProof(0, leaf, nil, checkpoint)
	file := p.Marshal()

	// Offline, with nothing but the log's verifier key.
	verifier, _ := proofs.ParseVerifierKey(vkey)
	entry, err := proofs.VerifyTLogProof(file, verifier)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(entry.Index, entry.Leaf.Kind, entry.Leaf.ID() == proofs.HashID(leaf), entry.Checkpoint.Size)
	// Output:
	// 0 log_config true 1
}

// noteKeys returns the note signer and verifier keys for an Ed25519 key
// (the encoding note.GenerateKey uses).
func noteKeys(name string, priv ed25519.PrivateKey) (skey, vkey string) {
	pub, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	// "name+hash+base64(0x01 || pub)" -> "PRIVATE+KEY+name+hash+base64(0x01 || seed)"
	// (a name has no "+", base64 may).
	parts := strings.SplitN(pub, "+", 3)
	skey = "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...))
	return skey, pub
}

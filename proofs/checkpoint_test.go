package proofs_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/warrantlog/warrant/proofs"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "example.com/warrant"

// testLog is a log's note key pair.
type testLog struct {
	origin   string
	skey     string
	vkey     string
	signer   note.Signer
	verifier note.Verifier
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	return newTestLogFromKeys(t, skey, vkey)
}

func newTestLogFromKeys(t testing.TB, skey, vkey string) *testLog {
	t.Helper()
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := proofs.ParseVerifierKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: signer.Name(), skey: skey, vkey: vkey, signer: signer, verifier: verifier}
}

// sign signs text as a note.
func (l *testLog) sign(t testing.TB, text string) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatalf("note.Sign(%q): %v", text, err)
	}
	return msg
}

// checkpoint returns a signed checkpoint for the log's origin.
func (l *testLog) checkpoint(t testing.TB, size uint64, root []byte) []byte {
	t.Helper()
	return l.sign(t, string(proofs.CheckpointBody(l.origin, size, root)))
}

func TestCheckpointBody(t *testing.T) {
	root := bytes.Repeat([]byte{0xab}, 32)
	got := string(proofs.CheckpointBody("example.com/log", 42, root))
	want := "example.com/log\n42\n" + base64.StdEncoding.EncodeToString(root) + "\n"
	if got != want {
		t.Errorf("CheckpointBody = %q, want %q", got, want)
	}
}

func TestOpenCheckpoint(t *testing.T) {
	log := newTestLog(t, testOrigin)
	tr := newNumberedRefTree(300)
	for _, size := range []uint64{0, 1, 2, 7, 300} {
		root := tr.root(size)
		signed := log.checkpoint(t, size, root)
		cp, err := proofs.OpenCheckpoint(signed, log.verifier)
		if err != nil {
			t.Fatalf("size %d: OpenCheckpoint(%q): %v", size, signed, err)
		}
		if cp.Origin != testOrigin || cp.Size != size || !bytes.Equal(cp.Root, root) || !bytes.Equal(cp.Note, signed) {
			t.Errorf("size %d: got %+v", size, cp)
		}
		if got, want := cp.String(), fmt.Sprintf("%s size %d root %x", testOrigin, size, root); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		// Note is a copy, not an alias of the input.
		signed[0] ^= 1
		if cp.Note[0] == signed[0] {
			t.Error("Checkpoint.Note aliases the input")
		}
	}

	// The verifier key may come with surrounding whitespace (a .vkey file).
	v, err := proofs.ParseVerifierKey("\n " + log.vkey + "\n")
	if err != nil {
		t.Fatalf("ParseVerifierKey with whitespace: %v", err)
	}
	if _, err := proofs.OpenCheckpoint(log.checkpoint(t, 1, tr.root(1)), v); err != nil {
		t.Errorf("OpenCheckpoint with whitespace-trimmed key: %v", err)
	}

	// A witness cosignature is ignored when the witness key is not given
	// (C2SP signed-note: verifiers ignore signatures from unknown keys),
	// and verified when it is. Either way the note is kept as received.
	witness := newTestLog(t, "witness.example/w1")
	cosigned, err := note.Sign(&note.Note{Text: string(proofs.CheckpointBody(testOrigin, 7, tr.root(7)))}, log.signer, witness.signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, others := range [][]note.Verifier{nil, {witness.verifier}} {
		cp, err := proofs.OpenCheckpoint(cosigned, log.verifier, others...)
		if err != nil {
			t.Fatalf("cosigned checkpoint, %d witness keys: %v", len(others), err)
		}
		if cp.Size != 7 || !bytes.Equal(cp.Root, tr.root(7)) || !bytes.Equal(cp.Note, cosigned) {
			t.Errorf("cosigned checkpoint, %d witness keys: got %+v", len(others), cp)
		}
	}
}

// cosign returns signed with a signature line by s appended, as a witness's
// add-checkpoint answer is appended by the log.
func cosign(t testing.TB, signed []byte, s note.Signer) []byte {
	t.Helper()
	text, _, _ := bytes.Cut(signed, []byte("\n\n"))
	sig, err := s.Sign(append(text, '\n'))
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Clone(signed), sigLine(s.Name(), s.KeyHash(), sig)...)
}

// sigLine is a note signature line.
func sigLine(name string, hash uint32, sig []byte) string {
	return "\u2014 " + name + " " + base64.StdEncoding.EncodeToString(append(binary.BigEndian.AppendUint32(nil, hash), sig...)) + "\n"
}

// TestOpenCheckpointUnknownKeys: signature lines by keys the verifier does
// not know are ignored, in any number and order, whatever they sign; the
// log's signature is still required, and a line by a known key must verify.
func TestOpenCheckpointUnknownKeys(t *testing.T) {
	log := newTestLog(t, testOrigin)
	tr := newNumberedRefTree(8)
	signed := log.checkpoint(t, 7, tr.root(7))
	body := string(proofs.CheckpointBody(testOrigin, 7, tr.root(7)))
	logLine := strings.TrimPrefix(string(signed), body+"\n")

	// A witness's real kind of key: C2SP tlog-cosignature (cosignature/v1),
	// whose signature covers a timestamp too.
	wskey, wvkey, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	w1, err := fnote.NewSignerForCosignatureV1(wskey)
	if err != nil {
		t.Fatal(err)
	}
	w1v, err := fnote.NewVerifierForCosignatureV1(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	w2 := newTestLog(t, "witness.example/w2")
	// The log's own key as a cosignature/v1 key: same name, another hash.
	logTS, err := fnote.NewSignerForCosignatureV1(log.skey)
	if err != nil {
		t.Fatal(err)
	}

	accepted := map[string][]byte{
		"one witness":                  cosign(t, signed, w1),
		"two witnesses":                cosign(t, cosign(t, signed, w1), w2.signer),
		"witness line first":           []byte(body + "\n" + strings.TrimPrefix(string(cosign(t, signed, w2.signer)), string(signed)) + logLine),
		"log's timestamp cosignature":  cosign(t, signed, logTS),
		"same name, another key":       cosign(t, signed, newTestLog(t, testOrigin).signer),
		"signs another checkpoint":     []byte(string(signed) + strings.TrimPrefix(string(cosign(t, log.checkpoint(t, 8, tr.root(8)), w2.signer)), string(log.checkpoint(t, 8, tr.root(8))))),
		"garbage signature":            []byte(string(signed) + sigLine("witness.example/w3", 0x01020304, bytes.Repeat([]byte{0xee}, 64))),
		"unknown line repeated":        []byte(string(signed) + sigLine("witness.example/w3", 1, []byte{2}) + sigLine("witness.example/w3", 1, []byte{2})),
		"post-quantum sized signature": []byte(string(signed) + sigLine("witness.example/pq", 7, bytes.Repeat([]byte{1}, 2420))),
	}
	for name, cp := range accepted {
		got, err := proofs.OpenCheckpoint(cp, log.verifier)
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, cp)
			continue
		}
		if got.Size != 7 || !bytes.Equal(got.Root, tr.root(7)) || !bytes.Equal(got.Note, cp) {
			t.Errorf("%s: got %+v", name, got)
		}
	}
	// Known, the witness's cosignature verifies.
	if _, err := proofs.OpenCheckpoint(accepted["one witness"], log.verifier, w1v); err != nil {
		t.Errorf("cosigned checkpoint with the witness key: %v", err)
	}

	forged := sigLine("witness.example/w1", w1v.KeyHash(), bytes.Repeat([]byte{0xee}, 72))
	refused := []struct {
		name   string
		signed string
		others []note.Verifier
		reason string
	}{
		{"only a witness signature", body + "\n" + strings.TrimPrefix(string(accepted["one witness"]), string(signed)), nil, proofs.ReasonCheckpointSignature},
		{"only a witness signature, known", body + "\n" + strings.TrimPrefix(string(accepted["one witness"]), string(signed)), []note.Verifier{w1v}, proofs.ReasonCheckpointSignature},
		{"known witness, bad signature", string(signed) + forged, []note.Verifier{w1v}, proofs.ReasonCheckpointSignature},
		{"known witness, signs another checkpoint", string(cosign(t, log.checkpoint(t, 8, tr.root(8)), w1))[len(log.checkpoint(t, 8, tr.root(8))):], []note.Verifier{w1v}, ""},
		{"log line repeated with another signature", string(signed) + sigLine(testOrigin, log.verifier.KeyHash(), bytes.Repeat([]byte{0xee}, 64)), nil, proofs.ReasonCheckpointInvalid},
		{"log line repeated", string(signed) + logLine, nil, proofs.ReasonCheckpointInvalid},
		{"known witness line repeated", string(accepted["one witness"]) + strings.TrimPrefix(string(accepted["one witness"]), string(signed)), []note.Verifier{w1v}, proofs.ReasonCheckpointInvalid},
		{"unknown line, lax base64", string(signed) + "\u2014 witness.example/w3 AQIDBAX=\n", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line, CR", string(signed) + "\u2014 witness.example/w3 AQIDBAU=\r\n", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line, no key hash", string(signed) + "\u2014 witness.example/w3 AQID\n", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line, no name", string(signed) + "\u2014  AQIDBAU=\n", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line, name with plus", string(signed) + "\u2014 w+3 AQIDBAU=\n", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line, no dash", string(signed) + "witness.example/w3 AQIDBAU=\n", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line, no newline", string(signed) + "\u2014 witness.example/w3 AQIDBAU=", nil, proofs.ReasonCheckpointInvalid},
		{"unknown line after a blank line", string(signed) + "\n\u2014 witness.example/w3 AQIDBAU=\n", nil, proofs.ReasonCheckpointSignature}, // the log line becomes text
		{"101 signature lines", string(signed) + strings.Repeat(sigLine("witness.example/w3", 1, []byte{2}), 100), nil, proofs.ReasonCheckpointInvalid},
	}
	for _, tt := range refused {
		if tt.reason == "" {
			// The witness signed size 8; appended to size 7, its line fails.
			tt.signed = string(signed) + tt.signed
			tt.reason = proofs.ReasonCheckpointSignature
		}
		cp, err := proofs.OpenCheckpoint([]byte(tt.signed), log.verifier, tt.others...)
		if err == nil {
			t.Errorf("%s: accepted as %v\n%s", tt.name, cp, tt.signed)
			continue
		}
		if r := proofs.Reason(err); r != tt.reason {
			t.Errorf("%s: reason %q (%v), want %q", tt.name, r, err, tt.reason)
		}
	}
}

func TestParseVerifierKeyErrors(t *testing.T) {
	log := newTestLog(t, testOrigin)
	skey, _, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	for _, vkey := range []string{"", "example.com", log.vkey + "x", strings.Replace(log.vkey, "+", "-", 1), skey, log.vkey[:len(log.vkey)-4]} {
		_, err := proofs.ParseVerifierKey(vkey)
		wantReason(t, err, proofs.ReasonKeyInvalid)
	}
}

func TestOpenCheckpointErrors(t *testing.T) {
	log := newTestLog(t, testOrigin)
	sameName := newTestLog(t, testOrigin)
	other := newTestLog(t, "other.example/log")
	tr := newNumberedRefTree(8)
	root := tr.root(7)
	body := string(proofs.CheckpointBody(testOrigin, 7, root))
	signed := string(log.checkpoint(t, 7, root))
	rootB64 := base64.StdEncoding.EncodeToString(root)

	tests := []struct {
		name   string
		signed string
		reason string
	}{
		{"different key with the same name", string(sameName.checkpoint(t, 7, root)), proofs.ReasonCheckpointSignature},
		{"other log's key and origin", string(other.checkpoint(t, 7, root)), proofs.ReasonCheckpointSignature},
		{"different origin, right key", string(log.sign(t, string(proofs.CheckpointBody("other.example/log", 7, root)))), proofs.ReasonCheckpointOrigin},
		{"origin with trailing space", string(log.sign(t, string(proofs.CheckpointBody(testOrigin+" ", 7, root)))), proofs.ReasonCheckpointOrigin},
		{"tampered size", strings.Replace(signed, "\n7\n", "\n8\n", 1), proofs.ReasonCheckpointSignature},
		{"tampered size, leading zero", strings.Replace(signed, "\n7\n", "\n07\n", 1), proofs.ReasonCheckpointSignature},
		{"tampered root", strings.Replace(signed, rootB64, base64.StdEncoding.EncodeToString(tr.root(8)), 1), proofs.ReasonCheckpointSignature},
		{"tampered origin", strings.Replace(signed, testOrigin+"\n", "example.com/warranT\n", 1), proofs.ReasonCheckpointSignature},
		{"signature dropped", body + "\n", proofs.ReasonCheckpointInvalid},
		{"unsigned body", body, proofs.ReasonCheckpointInvalid},
		{"signature from another note", body + "\n" + strings.SplitAfter(string(log.checkpoint(t, 8, tr.root(8))), "\n\n")[1], proofs.ReasonCheckpointSignature},
		{"empty", "", proofs.ReasonCheckpointInvalid},
		{"extension line", string(log.sign(t, body+"extension: value\n")), proofs.ReasonCheckpointInvalid},
		{"two extension lines", string(log.sign(t, body+"a\nb\n")), proofs.ReasonCheckpointInvalid},
		{"root of 31 bytes", string(log.checkpoint(t, 7, root[:31])), proofs.ReasonCheckpointInvalid},
		{"root of 33 bytes", string(log.checkpoint(t, 7, append(root, 0))), proofs.ReasonCheckpointInvalid},
		{"empty root", string(log.checkpoint(t, 7, nil)), proofs.ReasonCheckpointInvalid},
		{"root not base64", string(log.sign(t, testOrigin+"\n7\n!!!!\n")), proofs.ReasonCheckpointInvalid},
		{"size not a number", string(log.sign(t, testOrigin+"\nseven\n"+rootB64+"\n")), proofs.ReasonCheckpointInvalid},
		{"negative size", string(log.sign(t, testOrigin+"\n-7\n"+rootB64+"\n")), proofs.ReasonCheckpointInvalid},
		{"size overflows uint64", string(log.sign(t, testOrigin+"\n18446744073709551616\n"+rootB64+"\n")), proofs.ReasonCheckpointInvalid},
		{"missing root line", string(log.sign(t, testOrigin+"\n7\n")), proofs.ReasonCheckpointInvalid},
		{"CRLF line ends", strings.ReplaceAll(signed, "\n", "\r\n"), proofs.ReasonCheckpointInvalid},
		{"trailing data", signed + "x", proofs.ReasonCheckpointInvalid},
		{"trailing newline", signed + "\n", proofs.ReasonCheckpointInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := proofs.OpenCheckpoint([]byte(tt.signed), log.verifier)
			if err == nil {
				t.Fatalf("OpenCheckpoint(%q) = %v, want %q", tt.signed, cp, tt.reason)
			}
			if r := proofs.Reason(err); r != tt.reason {
				t.Errorf("OpenCheckpoint(%q): reason %q (%v), want %q", tt.signed, r, err, tt.reason)
			}
		})
	}
}

func TestOpenCheckpointSizeLimit(t *testing.T) {
	tr := newNumberedRefTree(1)
	// A log whose origin is long enough that its checkpoint is just over,
	// or exactly at, the limit. Both are otherwise valid.
	build := func(total int) ([]byte, note.Verifier) {
		probe := newTestLog(t, "o")
		n := len(probe.checkpoint(t, 1, tr.root(1)))
		// The origin appears twice: in the text and the signature line.
		origin := "o" + strings.Repeat("x", (total-n)/2)
		log := newTestLog(t, origin)
		signed := log.checkpoint(t, 1, tr.root(1))
		return signed, log.verifier
	}
	signed, v := build(proofs.MaxCheckpointBytes)
	if len(signed) > proofs.MaxCheckpointBytes {
		t.Fatalf("built %d bytes, want at most %d", len(signed), proofs.MaxCheckpointBytes)
	}
	if _, err := proofs.OpenCheckpoint(signed, v); err != nil {
		t.Errorf("%d-byte checkpoint: %v", len(signed), err)
	}
	signed, v = build(proofs.MaxCheckpointBytes + 2)
	if len(signed) <= proofs.MaxCheckpointBytes {
		t.Fatalf("built %d bytes, want more than %d", len(signed), proofs.MaxCheckpointBytes)
	}
	_, err := proofs.OpenCheckpoint(signed, v)
	wantReason(t, err, proofs.ReasonCheckpointInvalid)
}

// TestOpenCheckpointTamper flips every bit of a signed checkpoint and cuts
// it at every length: each result is refused.
func TestOpenCheckpointTamper(t *testing.T) {
	log := newTestLog(t, testOrigin)
	tr := newNumberedRefTree(7)
	signed := log.checkpoint(t, 7, tr.root(7))
	for i := range len(signed) * 8 {
		mut := flip(signed, i)
		cp, err := proofs.OpenCheckpoint(mut, log.verifier)
		if err == nil {
			if sameNoteSignature(signed, mut) {
				continue // see TestOpenCheckpointUniqueEncoding
			}
			t.Errorf("byte %d bit %d flipped: accepted as %v", i%len(signed), i/len(signed), cp)
			continue
		}
		if proofs.Reason(err) == "" {
			t.Errorf("byte %d bit %d flipped: error without reason: %v", i%len(signed), i/len(signed), err)
		}
	}
	for n := range len(signed) {
		if _, err := proofs.OpenCheckpoint(signed[:n], log.verifier); err == nil {
			t.Errorf("checkpoint cut to %d of %d bytes: accepted", n, len(signed))
		}
	}
}

// sameNoteSignature reports whether two signed notes have the same text and
// the same decoded signature bytes, differing only in how the base64 of the
// signature is written.
func sameNoteSignature(a, b []byte) bool {
	ta, sa, ok1 := bytes.Cut(a, []byte("\n\n"))
	tb, sb, ok2 := bytes.Cut(b, []byte("\n\n"))
	if !ok1 || !ok2 || !bytes.Equal(ta, tb) {
		return false
	}
	decode := func(s []byte) []byte {
		i := bytes.LastIndexByte(bytes.TrimSuffix(s, []byte("\n")), ' ')
		if i < 0 {
			return nil
		}
		d, err := base64.StdEncoding.DecodeString(string(bytes.TrimSuffix(s[i+1:], []byte("\n"))))
		if err != nil {
			return nil
		}
		return d
	}
	da, db := decode(sa), decode(sb)
	return da != nil && bytes.Equal(da, db) && !bytes.Equal(sa, sb)
}

// TestOpenCheckpointUniqueEncoding: a checkpoint's bytes are "the signed note
// exactly as received", and tlog-proof files promise that no byte is
// unauthenticated; so one signed checkpoint should have one accepted
// encoding.
func TestOpenCheckpointUniqueEncoding(t *testing.T) {
	log := newTestLog(t, testOrigin)
	tr := newNumberedRefTree(7)
	signed := log.checkpoint(t, 7, tr.root(7))
	if _, err := proofs.OpenCheckpoint(signed, log.verifier); err != nil {
		t.Fatal(err)
	}
	// The signature is 4+64 bytes: 92 base64 characters ending in "=", the
	// last of the 91 data characters carrying 2 unused bits.
	sigLine := bytes.TrimSuffix(signed[bytes.LastIndex(signed, []byte("\n\n"))+2:], []byte("\n"))
	if !bytes.HasSuffix(sigLine, []byte("=")) {
		t.Fatalf("unexpected signature line %q", sigLine)
	}
	alt := bytes.Clone(signed)
	pos := len(alt) - 3 // the last data character, before "=\n"
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	alt[pos] = alphabet[strings.IndexByte(alphabet, alt[pos])^1]
	if _, err := proofs.OpenCheckpoint(alt, log.verifier); err == nil {
		t.Errorf("checkpoint with non-canonical signature base64 accepted:\n%s", alt)
	}
	dup := append(bytes.Clone(signed), append(sigLine, '\n')...)
	if _, err := proofs.OpenCheckpoint(dup, log.verifier); err == nil {
		t.Errorf("checkpoint with its signature line repeated accepted:\n%s", dup)
	}
}

// TestOpenCheckpointReasonByKeyName: the reason code of a bad signature must
// not depend on the log's name.
func TestOpenCheckpointReasonByKeyName(t *testing.T) {
	tr := newNumberedRefTree(7)
	for _, origin := range []string{"example.com/Origin", "example.com/unmarshal"} {
		log := newTestLog(t, origin)
		signed := log.checkpoint(t, 7, tr.root(7))
		forged := bytes.Replace(signed, []byte("\n7\n"), []byte("\n8\n"), 1)
		_, err := proofs.OpenCheckpoint(forged, log.verifier)
		wantReason(t, err, proofs.ReasonCheckpointSignature)
		forger := newTestLog(t, origin)
		_, err = proofs.OpenCheckpoint(forger.checkpoint(t, 7, tr.root(7)), log.verifier)
		wantReason(t, err, proofs.ReasonCheckpointSignature)
	}
}

func ExampleOpenCheckpoint() {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/warrant")
	signer, _ := note.NewSigner(skey)
	root := proofs.LeafHash([]byte("the only entry"))
	signed, _ := note.Sign(&note.Note{Text: string(proofs.CheckpointBody("example.com/warrant", 1, root))}, signer)

	verifier, _ := proofs.ParseVerifierKey(vkey)
	cp, err := proofs.OpenCheckpoint(signed, verifier)
	fmt.Println(cp.Origin, cp.Size, err)
	// Output:
	// example.com/warrant 1 <nil>
}

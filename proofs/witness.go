package proofs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Bounds of a witness policy. C2SP tlog-policy asks implementations to
// support at least 32 logs, 32 witnesses and 32 groups.
const (
	MaxWitnessPolicyBytes = 64 << 10
	maxPolicyItems        = 128 // of each kind
)

// CosignatureMaxSkew is how far ahead of the verifier's clock a
// cosignature's timestamp may be and still count (C2SP tlog-cosignature:
// verifiers MAY reject cosignatures with timestamps in the future). A
// witness whose clock runs further ahead does not count towards the
// quorum until the time it signed has come.
const CosignatureMaxSkew = 10 * time.Minute

// WitnessPolicy is a C2SP tlog-policy bound to one log: the witnesses a
// client trusts, and the quorum of them that must have cosigned a
// checkpoint before the client trusts it. Witnesses are the only thing
// standing between a client and a split view (the log, or whoever holds
// its key, showing one history to it and another to everyone else):
// consistency proofs protect a client only against the history it has
// itself seen.
//
// A WitnessPolicy is safe for concurrent use; its exported fields describe
// it (a server reads the witnesses' URLs from them) and must not be
// changed.
type WitnessPolicy struct {
	// Witnesses are the policy's witnesses, in file order.
	Witnesses []PolicyWitness
	// Quorum is the policy's quorum line: a witness's name, a group's, or
	// "none".
	Quorum string

	logName string
	logHash uint32
	root    *quorumNode // nil for "quorum none"
	now     func() time.Time
	digest  string
}

// PolicyWitness is one witness line of a policy.
type PolicyWitness struct {
	// Name is the witness's name in the policy (not its key's name).
	Name string
	// VKey is its verifier key, as written.
	VKey string
	// URL is its tlog-witness submission prefix, if the policy gives one.
	URL      string
	Verifier *CosignatureVerifier
}

// quorumNode is a witness (witness >= 0) or a group of k of its members.
type quorumNode struct {
	name    string
	witness int
	k       int
	members []*quorumNode
}

func (q *quorumNode) satisfied(cosigned []bool) bool {
	if q.witness >= 0 {
		return cosigned[q.witness]
	}
	n := 0
	for _, m := range q.members {
		if m.satisfied(cosigned) {
			n++
		}
	}
	return n >= q.k
}

// ParseWitnessPolicy parses a C2SP tlog-policy file for the log whose note
// verifier key is logVKey, and checks every rule of the format: octets
// tab, newline, 0x20-0x7e and 0x80-0xff only; items separated by spaces
// and tabs; whole-line comments; witness keys of a cosignature type
// (tlog-cosignature: Ed25519 0x04 or ML-DSA-44 0x06); no two logs and no
// two witnesses with one public key, even under different names; names
// defined once and before use; group thresholds 1 <= k <= n, each member
// at most once; exactly one quorum line.
//
// It also checks that the policy fits the log: if it lists logs, logVKey
// must be one of them; no witness may hold the log's key or be named
// like the log (whoever holds the log key must not be able to count as
// a witness, and a witness line must not be mistaken for the log's).
//
// now is the verifier's clock, for cosignature timestamps (nil:
// time.Now).
func ParseWitnessPolicy(data []byte, logVKey string, now func() time.Time) (*WitnessPolicy, error) {
	bad := func(line int, format string, args ...any) error {
		return Errorf(ReasonWitnessPolicyInvalid, "witness policy line %d: %s", line, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxWitnessPolicyBytes {
		return nil, Errorf(ReasonWitnessPolicyInvalid, "witness policy is %d bytes, limit %d", len(data), MaxWitnessPolicyBytes)
	}
	logVKey = strings.TrimSpace(logVKey)
	logName, logKey, err := vkeyParts(logVKey)
	if err != nil {
		return nil, Errorf(ReasonWitnessPolicyInvalid, "log key: %v", err)
	}
	lv, err := note.NewVerifier(logVKey)
	if err != nil {
		return nil, Errorf(ReasonWitnessPolicyInvalid, "log key: %v", err)
	}
	if now == nil {
		now = time.Now
	}
	sum := sha256.Sum256(data)
	p := &WitnessPolicy{logName: lv.Name(), logHash: lv.KeyHash(), now: now, digest: hex.EncodeToString(sum[:])}
	var logKeys [][]byte // the policy's logs' public keys
	listed := false      // whether one of them is this log (same name and key)
	names := map[string]*quorumNode{}
	groups, quorums := 0, 0
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if j := strings.IndexFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }); j >= 0 {
			return nil, bad(n, "control character 0x%02x (only tab and newline are allowed)", line[j])
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		define := func(name string) error {
			if name == "none" {
				return bad(n, "the name none is predefined")
			}
			if names[name] != nil {
				return bad(n, "%q is defined twice", name)
			}
			return nil
		}
		switch f[0] {
		case "log":
			if len(f) != 2 && len(f) != 3 {
				return nil, bad(n, "want: log <vkey> [<url>]")
			}
			name, key, err := vkeyParts(f[1])
			if err != nil {
				return nil, bad(n, "log key: %v", err)
			}
			listed = listed || name == logName && bytes.Equal(key, logKey)
			if slices.ContainsFunc(logKeys, func(k []byte) bool { return bytes.Equal(k, key) }) {
				return nil, bad(n, "a second log line with the same public key")
			}
			if len(logKeys) >= maxPolicyItems {
				return nil, bad(n, "more than %d logs", maxPolicyItems)
			}
			logKeys = append(logKeys, key)
		case "witness":
			if len(f) != 3 && len(f) != 4 {
				return nil, bad(n, "want: witness <name> <vkey> [<url>]")
			}
			if err := define(f[1]); err != nil {
				return nil, err
			}
			v, err := NewCosignatureVerifier(f[2])
			if err != nil {
				return nil, bad(n, "%v", err)
			}
			for _, w := range p.Witnesses {
				if bytes.Equal(w.Verifier.key, v.key) {
					return nil, bad(n, "witness %s has the same public key as witness %s", f[1], w.Name)
				}
			}
			if bytes.Equal(v.key, logKey) {
				return nil, bad(n, "witness %s holds the log's own key: whoever holds the log key could satisfy the quorum alone", f[1])
			}
			if v.name == logName {
				return nil, bad(n, "witness %s's key is named %q, like the log: its cosignature lines would pass for the log's", f[1], v.name)
			}
			if len(p.Witnesses) >= maxPolicyItems {
				return nil, bad(n, "more than %d witnesses", maxPolicyItems)
			}
			w := PolicyWitness{Name: f[1], VKey: f[2], Verifier: v}
			if len(f) == 4 {
				w.URL = f[3]
			}
			names[f[1]] = &quorumNode{name: f[1], witness: len(p.Witnesses)}
			p.Witnesses = append(p.Witnesses, w)
		case "group":
			if len(f) < 4 {
				return nil, bad(n, "want: group <name> <all|any|k> <name>...")
			}
			if err := define(f[1]); err != nil {
				return nil, err
			}
			if groups++; groups > maxPolicyItems {
				return nil, bad(n, "more than %d groups", maxPolicyItems)
			}
			g := &quorumNode{name: f[1], witness: -1}
			for _, m := range f[3:] {
				node := names[m]
				if node == nil {
					return nil, bad(n, "group %s: member %q is not defined on an earlier line", f[1], m)
				}
				if slices.Contains(g.members, node) {
					return nil, bad(n, "group %s lists %s twice", f[1], m)
				}
				g.members = append(g.members, node)
			}
			switch k := f[2]; k {
			case "all":
				g.k = len(g.members)
			case "any":
				g.k = 1
			default:
				v, err := strconv.Atoi(k)
				if err != nil || strings.TrimLeft(k, "0123456789") != "" || v < 1 || v > len(g.members) {
					return nil, bad(n, "group %s: threshold %q, want all, any or a decimal k with 1 <= k <= %d", f[1], k, len(g.members))
				}
				g.k = v
			}
			names[f[1]] = g
		case "quorum":
			if len(f) != 2 {
				return nil, bad(n, "want: quorum <name>")
			}
			if quorums++; quorums > 1 {
				return nil, bad(n, "a second quorum line")
			}
			p.Quorum = f[1]
			if f[1] != "none" {
				if p.root = names[f[1]]; p.root == nil {
					return nil, bad(n, "quorum %q is not defined on an earlier line", f[1])
				}
			}
		default:
			return nil, bad(n, "unknown keyword %q", f[0])
		}
	}
	if quorums == 0 {
		return nil, Errorf(ReasonWitnessPolicyInvalid, "witness policy has no quorum line")
	}
	if len(logKeys) > 0 && !listed {
		return nil, Errorf(ReasonWitnessPolicyInvalid, "witness policy lists %d logs, not this one (%s)", len(logKeys), logName)
	}
	return p, nil
}

// vkeyParts returns a signed-note verifier key's name and its public key
// (without the type byte: tlog-policy counts two keys as duplicates when
// they wrap the same public key, whatever their types and names).
func vkeyParts(vkey string) (string, []byte, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	_, key64, ok2 := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || err != nil || len(raw) < 2 {
		return "", nil, fmt.Errorf("%q is not a verifier key (name+keyid+key)", vkey)
	}
	return name, raw[1:], nil
}

// Digest identifies the policy: the SHA-256 of its file, in hex.
func (p *WitnessPolicy) Digest() string { return p.digest }

// Verifiers returns the witnesses' verifiers, to open a checkpoint with.
func (p *WitnessPolicy) Verifiers() []note.Verifier {
	out := make([]note.Verifier, len(p.Witnesses))
	for i := range p.Witnesses {
		out[i] = p.Witnesses[i].Verifier
	}
	return out
}

// OpenWitnessedCheckpoint is OpenCheckpoint for a client with a witness
// policy (nil: none): the log's signature must verify, and so must every
// cosignature line by a witness of the policy (a known key); lines by
// other keys are ignored (C2SP signed-note). Then the witnesses whose
// cosignature verified, each counted once however many lines it has,
// must satisfy the policy's quorum, or the error's reason is
// ReasonWitnessQuorum.
//
// A cosignature is a witness's statement that, at its timestamp, this is
// the largest tree of the log it has seen and consistent with all it saw
// before: a quorum of them means the checkpoint is the one everybody is
// shown. A cosignature timestamped more than CosignatureMaxSkew ahead of
// the policy's clock verifies but does not count.
func OpenWitnessedCheckpoint(signed []byte, logKey note.Verifier, p *WitnessPolicy) (*Checkpoint, error) {
	if p == nil {
		return OpenCheckpoint(signed, logKey)
	}
	if logKey.Name() != p.logName || logKey.KeyHash() != p.logHash {
		return nil, Errorf(ReasonWitnessPolicyInvalid, "the witness policy is for log %s+%08x, not %s+%08x", p.logName, p.logHash, logKey.Name(), logKey.KeyHash())
	}
	cp, sigs, err := openCheckpoint(signed, logKey, p.Verifiers())
	if err != nil {
		return nil, err
	}
	if err := p.check(cp, sigs); err != nil {
		return nil, err
	}
	return cp, nil
}

// check evaluates the quorum over sigs, the verified signatures of cp by
// known keys.
func (p *WitnessPolicy) check(cp *Checkpoint, sigs []note.Signature) error {
	if p.root == nil {
		return nil // quorum none
	}
	cosigned, counted, future := p.count(sigs)
	if p.root.satisfied(cosigned) {
		return nil
	}
	msg := fmt.Sprintf("checkpoint %s is cosigned by %d of the policy's %d witnesses %v, not enough for quorum %s", cp, len(counted), len(p.Witnesses), counted, p.Quorum)
	if len(future) > 0 {
		msg += fmt.Sprintf(" (not counted, timestamped more than %s ahead: %v)", CosignatureMaxSkew, future)
	}
	return Errorf(ReasonWitnessQuorum, "%s", msg)
}

// count returns which of the policy's witnesses have a cosignature among
// sigs (verified signatures by known keys) that counts, their names in
// policy order, and the names of those whose cosignature is timestamped
// too far ahead to count.
func (p *WitnessPolicy) count(sigs []note.Signature) (cosigned []bool, counted, future []string) {
	cosigned = make([]bool, len(p.Witnesses))
	limit := p.now().Add(CosignatureMaxSkew).Unix()
	for _, s := range sigs {
		i := slices.IndexFunc(p.Witnesses, func(w PolicyWitness) bool {
			return w.Verifier.name == s.Name && w.Verifier.hash == s.Hash
		})
		if i < 0 || cosigned[i] {
			continue // the log's own line, or a witness already counted
		}
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil {
			continue
		}
		if t, ok := cosignatureTime(raw); !ok || limit < 0 || t > uint64(limit) {
			future = append(future, p.Witnesses[i].Name)
			continue
		}
		cosigned[i] = true
	}
	for i, w := range p.Witnesses {
		if cosigned[i] {
			counted = append(counted, w.Name)
		}
	}
	return cosigned, counted, future
}

// Cosigners opens signed as OpenWitnessedCheckpoint does and, if it
// satisfies the policy, returns the names (in the policy) of the witnesses
// whose cosignatures count towards the quorum: what a verifier reports
// besides "the quorum is met". Under quorum none the list may be empty.
func (p *WitnessPolicy) Cosigners(signed []byte, logKey note.Verifier) ([]string, error) {
	if _, err := OpenWitnessedCheckpoint(signed, logKey, p); err != nil {
		return nil, err
	}
	_, sigs, err := openCheckpoint(signed, logKey, p.Verifiers())
	if err != nil {
		return nil, err
	}
	_, counted, _ := p.count(sigs)
	return counted, nil
}

// Check reports whether cp, a checkpoint opened by OpenCheckpoint (or
// OpenWitnessedCheckpoint) under logKey, satisfies the policy: it is
// OpenWitnessedCheckpoint of its note.
func (p *WitnessPolicy) Check(cp *Checkpoint, logKey note.Verifier) error {
	_, err := OpenWitnessedCheckpoint(cp.Note, logKey, p)
	return err
}

package proofs

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Envelope bounds. They are part of the log's contract: an envelope over them
// is refused before any other check, so the stateless stage does bounded work.
const (
	// MaxEnvelopeBytes bounds the JSON encoding of an envelope as submitted.
	MaxEnvelopeBytes = 32 << 10
	// MaxSignatures bounds the signatures on one envelope (the issuer's plus
	// approvals).
	MaxSignatures = 4
	// maxKeyIDLen bounds a signature's keyid.
	maxKeyIDLen = 128
	// maxPayloadTypeLen bounds the payload type string.
	maxPayloadTypeLen = 128
)

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
// Its canonical JSON encoding (see Canonical) is what the log stores and what
// deduplication hashes.
type Envelope struct {
	PayloadType string
	Payload     []byte
	Signatures  []Signature

	// checked memoises signature checks by key id (Preverify,
	// MatchKeys): a key id names exactly one key, so the result holds
	// whatever state asks.
	checked map[string]error
}

// Preverify checks every signature whose key is known to keys (by key id)
// and remembers the results, so that later checks of this envelope (Verify,
// CheckSignatures, a replay) cost nothing. An auditor runs it on many
// envelopes in parallel before replaying them in order. It must not run
// concurrently with other uses of the envelope.
func (e *Envelope) Preverify(keys func(keyID string) *PublicKey) {
	for _, s := range e.Signatures {
		if k := keys(s.KeyID); k != nil {
			if e.checked == nil {
				e.checked = make(map[string]error, len(e.Signatures))
			}
			e.checked[k.ID] = k.VerifyDSSE(e.PayloadType, e.Payload, s.Sig)
		}
	}
}

// Verify checks the envelope's signature by k (which must be present).
func (e *Envelope) Verify(k *PublicKey) error {
	if err, ok := e.checked[k.ID]; ok {
		return err
	}
	s := e.Signature(k.ID)
	if s == nil {
		return Errorf(ReasonSignatureMissing, "no signature by %s", k.ID)
	}
	return k.VerifyDSSE(e.PayloadType, e.Payload, s.Sig)
}

// Signature is one DSSE signature. KeyID names the signing key as returned
// by KeyID: "sha256:" and the hex SHA-256 of the key's PKIX DER encoding.
type Signature struct {
	KeyID string
	Sig   []byte
}

// jsonEnvelope fixes the field order of the canonical encoding.
type jsonEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Signatures  []jsonSignature `json:"signatures"`
}

type jsonSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// ParseEnvelope parses a DSSE envelope in the log's canonical encoding
// rules (see ParseEnvelopeCanonical): standard padded base64 and every
// signature named by a distinct key id. Key order and whitespace may vary;
// the result's Canonical encoding is unique.
func ParseEnvelope(data []byte) (*Envelope, error) {
	env, _, err := ParseEnvelopeCanonical(data)
	return env, err
}

// ParseDSSE parses a DSSE envelope as the DSSE protocol allows it to be
// written, which is what a log accepts from clients: payload and sig in
// standard or URL-safe base64, padded or not (but no line breaks, no stray
// bits), and a keyid that may be missing, empty or foreign (any string of
// up to 128 bytes: DSSE makes it an optional hint). The structure is still
// strict: exactly the fields payloadType, payload and signatures (each
// signature keyid and sig only), no duplicate keys, valid UTF-8, 1 to
// MaxSignatures signatures, nothing after the closing brace.
//
// Such an envelope has one canonical form only once every signature is
// matched to the key that made it (MatchKeys fills in the canonical key
// ids and sorts the signatures); until then Canonical encodes the key ids
// as given.
func ParseDSSE(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, Errorf(ReasonEnvelopeTooLarge, "envelope is %d bytes, limit %d", len(data), MaxEnvelopeBytes)
	}
	if !utf8.Valid(data) {
		return nil, Errorf(ReasonEnvelopeMalformed, "envelope is not valid UTF-8")
	}
	if env := parseCanonicalEnvelope(data); env != nil {
		return env, nil
	}
	return parseEnvelopeStrict(data, true)
}

// ParseEnvelopeCanonical parses an envelope in the log's own encoding, as
// leaves hold it: ParseDSSE's rules, and also standard padded base64 only
// and every signature named by a distinct token key id. It returns
// the envelope's canonical encoding too. For input already canonical that
// is the input itself, so the caller need not encode it again; the caller
// must not modify it.
func ParseEnvelopeCanonical(data []byte) (*Envelope, []byte, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, nil, Errorf(ReasonEnvelopeTooLarge, "envelope is %d bytes, limit %d", len(data), MaxEnvelopeBytes)
	}
	if !utf8.Valid(data) {
		return nil, nil, Errorf(ReasonEnvelopeMalformed, "envelope is not valid UTF-8")
	}
	if env := parseCanonicalEnvelope(data); env != nil {
		return env, data, nil
	}
	env, err := parseEnvelopeStrict(data, false)
	if err != nil {
		return nil, nil, err
	}
	// The canonical form is what the log stores: bound it too.
	canon := env.Canonical()
	if n := len(canon); n > MaxEnvelopeBytes {
		return nil, nil, Errorf(ReasonEnvelopeTooLarge, "canonical envelope is %d bytes, limit %d", n, MaxEnvelopeBytes)
	}
	return env, canon, nil
}

// parseEnvelopeStrict reads any well-formed encoding token by token. With
// lax, it takes every base64 form DSSE allows and any key id (see
// ParseDSSE); without, only the log's canonical ones.
func parseEnvelopeStrict(data []byte, lax bool) (*Envelope, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var env Envelope
	var seenType, seenPayload, seenSigs bool
	err := readObject(dec, func(key string) error {
		switch key {
		case "payloadType":
			if seenType {
				return errors.New(`duplicate key "payloadType"`)
			}
			seenType = true
			s, err := readString(dec)
			if err != nil {
				return fmt.Errorf("payloadType: %w", err)
			}
			env.PayloadType = s
		case "payload":
			if seenPayload {
				return errors.New(`duplicate key "payload"`)
			}
			seenPayload = true
			s, err := readString(dec)
			if err != nil {
				return fmt.Errorf("payload: %w", err)
			}
			b, err := decodeBase64(s, lax)
			if err != nil {
				return fmt.Errorf("payload: %w", err)
			}
			env.Payload = b
		case "signatures":
			if seenSigs {
				return errors.New(`duplicate key "signatures"`)
			}
			seenSigs = true
			sigs, err := readSignatures(dec, lax)
			if err != nil {
				return err
			}
			env.Signatures = sigs
		default:
			return fmt.Errorf("unknown field %q", key)
		}
		return nil
	})
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, &Error{Reason: ReasonEnvelopeMalformed, Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(ReasonEnvelopeMalformed, "trailing data after envelope")
	}
	switch {
	case !seenType || env.PayloadType == "":
		return nil, Errorf(ReasonEnvelopeMalformed, "payloadType missing")
	case !seenPayload:
		return nil, Errorf(ReasonEnvelopeMalformed, "payload missing")
	case len(env.Signatures) == 0:
		return nil, Errorf(ReasonSignatureMissing, "envelope has no signatures")
	case len(env.PayloadType) > maxPayloadTypeLen:
		return nil, Errorf(ReasonEnvelopeMalformed, "payloadType longer than %d bytes", maxPayloadTypeLen)
	}
	if !isTokenString(env.PayloadType, "/+") {
		return nil, Errorf(ReasonEnvelopeMalformed, "payloadType %q has characters outside letters, digits and -_.~:/+", env.PayloadType)
	}
	if lax {
		return &env, nil // key ids are hints until MatchKeys
	}
	if err := env.sortSignatures(); err != nil {
		return nil, err
	}
	return &env, nil
}

// parseCanonicalEnvelope is the fast path for the common case, an envelope
// already in canonical form (as every SDK writes it): a plain decode, then
// a check that re-encoding gives the input byte for byte. Equality proves
// there were no duplicate, unknown or case-folded keys and no lax base64,
// so nothing the strict parser checks is skipped. It returns nil for
// anything else, which the strict parser then judges.
func parseCanonicalEnvelope(data []byte) *Envelope {
	var j jsonEnvelope
	if json.Unmarshal(data, &j) != nil || j.PayloadType == "" || len(j.Signatures) == 0 || len(j.Signatures) > MaxSignatures ||
		len(j.PayloadType) > maxPayloadTypeLen || !isTokenString(j.PayloadType, "/+") {
		return nil
	}
	payload, err := base64.StdEncoding.DecodeString(j.Payload)
	if err != nil {
		return nil
	}
	env := &Envelope{PayloadType: j.PayloadType, Payload: payload, Signatures: make([]Signature, len(j.Signatures))}
	for i, s := range j.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || s.KeyID == "" || len(s.KeyID) > maxKeyIDLen || !isTokenString(s.KeyID, "") || len(sig) == 0 {
			return nil
		}
		if i > 0 && j.Signatures[i-1].KeyID >= s.KeyID {
			return nil // unsorted or repeated: let the strict parser decide
		}
		env.Signatures[i] = Signature{KeyID: s.KeyID, Sig: sig}
	}
	if !env.matchesCanonical(data) {
		return nil
	}
	return env
}

func readSignatures(dec *json.Decoder, lax bool) ([]Signature, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("signatures: %w", err)
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return nil, errors.New("signatures: not an array")
	}
	var sigs []Signature
	for dec.More() {
		if len(sigs) == MaxSignatures {
			return nil, Errorf(ReasonTooManySignatures, "more than %d signatures", MaxSignatures)
		}
		var s Signature
		var seenKey, seenSig bool
		err := readObject(dec, func(key string) error {
			switch key {
			case "keyid":
				if seenKey {
					return errors.New(`duplicate key "keyid"`)
				}
				seenKey = true
				v, err := readString(dec)
				if err != nil {
					return fmt.Errorf("keyid: %w", err)
				}
				s.KeyID = v
			case "sig":
				if seenSig {
					return errors.New(`duplicate key "sig"`)
				}
				seenSig = true
				v, err := readString(dec)
				if err != nil {
					return fmt.Errorf("sig: %w", err)
				}
				b, err := decodeBase64(v, lax)
				if err != nil {
					return fmt.Errorf("sig: %w", err)
				}
				s.Sig = b
			default:
				return fmt.Errorf("signature: unknown field %q", key)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		switch {
		case !lax && (s.KeyID == "" || len(s.KeyID) > maxKeyIDLen || !isTokenString(s.KeyID, "")):
			return nil, fmt.Errorf("signature keyid must be 1 to %d characters, each a letter, a digit or one of %q", maxKeyIDLen, "-_.~:")
		case lax && len(s.KeyID) > maxKeyIDLen:
			return nil, fmt.Errorf("signature keyid longer than %d bytes", maxKeyIDLen)
		}
		if len(s.Sig) == 0 {
			return nil, errors.New("signature sig is empty")
		}
		sigs = append(sigs, s)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fmt.Errorf("signatures: %w", err)
	}
	return sigs, nil
}

// readObject reads one JSON object, calling field for each key; field must
// consume the value.
func readObject(dec *json.Decoder, field func(key string) error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		if err := field(key); err != nil {
			return err
		}
	}
	_, err = dec.Token() // '}'
	return err
}

func readString(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", errors.New("not a string")
	}
	return s, nil
}

// isTokenString reports whether s holds only letters, digits, "-_.~:" and
// the extra characters given: nothing JSON would escape.
func isTokenString(s, extra string) bool {
	for _, r := range s {
		if !isTokenRune(r) && !strings.ContainsRune(extra, r) {
			return false
		}
	}
	return true
}

// decodeBase64 accepts only standard, padded base64 that re-encodes to the
// same text: no line breaks, no URL alphabet, no non-zero padding bits.
// With lax it also accepts the URL-safe alphabet and missing padding (the
// forms DSSE implementations write), still refusing line breaks and stray
// bits, so that every accepted text decodes to exactly one byte string.
func decodeBase64(s string, lax bool) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err == nil && base64.StdEncoding.EncodeToString(b) == s {
		return b, nil
	}
	if lax && !strings.ContainsAny(s, "\r\n") {
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.Strict().DecodeString(s); err == nil && enc.EncodeToString(b) == s {
				return b, nil
			}
		}
		return nil, Errorf(ReasonBase64NonCanonical, "not base64 (standard or URL-safe alphabet, padded or not, no line breaks)")
	}
	return nil, Errorf(ReasonBase64NonCanonical, "not canonical standard base64")
}

// sortSignatures sorts the signatures by key id, as the canonical form
// lists them, and refuses two with the same key id.
func (e *Envelope) sortSignatures() error {
	slices.SortFunc(e.Signatures, func(a, b Signature) int { return strings.Compare(a.KeyID, b.KeyID) })
	for i := 1; i < len(e.Signatures); i++ {
		if e.Signatures[i].KeyID == e.Signatures[i-1].KeyID {
			return Errorf(ReasonEnvelopeMalformed, "two signatures with keyid %q", e.Signatures[i].KeyID)
		}
	}
	return nil
}

// Canonical returns the canonical JSON encoding of the envelope: fields in
// the order payloadType, payload, signatures; signatures sorted by keyid;
// standard padded base64; no insignificant whitespace.
func (e *Envelope) Canonical() []byte {
	j := jsonEnvelope{
		PayloadType: e.PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(e.Payload),
		Signatures:  make([]jsonSignature, len(e.Signatures)),
	}
	sigs := slices.Clone(e.Signatures)
	slices.SortFunc(sigs, func(a, b Signature) int { return strings.Compare(a.KeyID, b.KeyID) })
	for i, s := range sigs {
		j.Signatures[i] = jsonSignature{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)}
	}
	b, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("proofs: marshalling envelope: %v", err)) // strings only: cannot fail
	}
	return b
}

// EnvelopeHash is SHA-256 of an envelope's canonical encoding: the id of
// an entry other than a delegation (see SumID).
func EnvelopeHash(canonical []byte) [32]byte { return sha256.Sum256(canonical) }

// PayloadHash is the deduplication key of an envelope: SHA-256 of the
// pre-authentication encoding of its payload type and payload, that is of
// exactly what its issuer signed. The signatures are left out on purpose:
// anyone can add signatures to a signed payload, so anything else would let
// a third party make new entries out of the issuer's signed request.
func PayloadHash(payloadType string, payload []byte) [32]byte {
	return sha256.Sum256(PAE(payloadType, payload))
}

// MatchKeys matches every signature of e to the key that made it and
// rewrites the signatures in canonical form: key id set to that key's
// canonical id, sorted by key id. It is how a log authenticates a request:
// an envelope is authentic only if every signature on it verifies under a
// key that the log holds for this payload.
//
// A signature whose key id names a key (named returns it) is verified under
// that key alone: a canonical key id is a hash of the key, so it cannot
// name another. A signature whose key id is missing, empty or foreign (DSSE
// makes the key id an optional hint) is tried under each key of fallback in
// turn; fallback must be a short, bounded list (the keys that may sign this
// payload at all, or the likely ones), so that a request costs a bounded
// number of signature checks. A high-S ECDSA signature is rewritten to its
// low-S twin.
//
// It fails with ReasonSignatureInvalid (or the key's more precise reason)
// when a signature does not verify under the key its key id names or two
// signatures are by the same key, and with ReasonSignatureKeyUnknown when a
// signature verifies under no candidate. The error is the first
// signature's, but every signature is tried, so Matched tells which keys
// did sign. The results are remembered, so that Verify of a matched key
// costs nothing afterwards.
func (e *Envelope) MatchKeys(named func(keyID string) *PublicKey, fallback []*PublicKey) error {
	var first error
	for i := range e.Signatures {
		s := &e.Signatures[i]
		if k := named(s.KeyID); k != nil {
			if err := e.verifyNormal(k, s); err != nil {
				if Reason(err) == "" {
					err = &Error{Reason: ReasonSignatureInvalid, Err: err}
				}
				first = cmp.Or(first, err)
				continue
			}
			e.remember(k.ID)
			continue
		}
		var match *PublicKey
		for _, k := range fallback {
			if k != nil && e.verifyNormal(k, s) == nil {
				match = k
				break
			}
		}
		if match == nil {
			first = cmp.Or(first, error(Errorf(ReasonSignatureKeyUnknown, "signature %d (key id %q) is not by a key this log holds for the payload: it names none and verifies under none of the %d candidate keys", i+1, s.KeyID, len(fallback))))
			continue
		}
		s.KeyID = match.ID
		e.remember(match.ID)
	}
	if first != nil {
		return first
	}
	if err := e.sortSignatures(); err != nil {
		// Not what any signer writes: someone copied or re-encoded a
		// signature. Not authentic, like any other added signature.
		return Errorf(ReasonSignatureInvalid, "two signatures by the same key: an envelope carries one signature per key")
	}
	return nil
}

// Matched reports whether MatchKeys found a signature by k.
func (e *Envelope) Matched(k *PublicKey) bool {
	err, ok := e.checked[k.ID]
	return ok && err == nil
}

// verifyNormal verifies s under k, accepting a high-S ECDSA signature (as
// many ECDSA implementations write them, go-securesystemslib's among them)
// by rewriting it in place to its low-S twin, the one encoding the log
// stores. Deduplication is on the signed payload, so the second encoding
// of a signature could not make a new entry anyway.
func (e *Envelope) verifyNormal(k *PublicKey, s *Signature) error {
	err := k.VerifyDSSE(e.PayloadType, e.Payload, s.Sig)
	if Reason(err) != ReasonSignatureHighS {
		return err
	}
	low, ok := k.lowSTwin(s.Sig)
	if !ok {
		return err
	}
	if err := k.VerifyDSSE(e.PayloadType, e.Payload, low); err != nil {
		return err
	}
	s.Sig = low
	return nil
}

func (e *Envelope) remember(keyID string) {
	if e.checked == nil {
		e.checked = make(map[string]error, len(e.Signatures))
	}
	e.checked[keyID] = nil
}

// SamePayload reports whether a and b carry the same signed request: the
// same payload type and payload, whatever their signatures.
func SamePayload(a, b *Envelope) bool {
	return a.PayloadType == b.PayloadType && bytes.Equal(a.Payload, b.Payload)
}

// Signature returns the signature made by keyID, or nil.
func (e *Envelope) Signature(keyID string) *Signature {
	for i := range e.Signatures {
		if e.Signatures[i].KeyID == keyID {
			return &e.Signatures[i]
		}
	}
	return nil
}

// PAE is DSSE's pre-authentication encoding, the exact bytes that are signed.
func PAE(payloadType string, payload []byte) []byte { return dsse.PAE(payloadType, payload) }

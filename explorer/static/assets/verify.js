// verify.js: the checks the explorer runs in the browser before it marks a
// fact verified. It trusts nothing but the log's verifier key the user pinned:
//
//   - a checkpoint is a C2SP signed note; the log's Ed25519 signature line is
//     found by key name and key hash (the first 4 bytes of
//     SHA-256(name || "\n" || 0x01 || public key)) and checked with WebCrypto.
//     Other signature lines (witness cosignatures) are ignored, as C2SP
//     signed-note says.
//   - an entry is in the tree: the RFC 6962 inclusion proof of
//     SHA-256(0x00 || leaf) leads to the checkpoint's root (RFC 9162 2.1.3.2).
//   - a newer checkpoint extends the last one trusted: RFC 6962 consistency
//     proof (RFC 9162 2.1.4.2).
//   - a DSSE envelope's signature verifies under an SPKI public key.
//
// Every function throws a VerifyError carrying the same reason code the Go
// verifier (package proofs) reports, so the vectors in testdata/vectors check
// both alike. Sizes and indexes are BigInts.

import { sha256Sync } from "./sha256.js";

const utf8 = new TextEncoder();

export class VerifyError extends Error {
  constructor(reason, message) {
    super(`${reason}: ${message}`);
    this.reason = reason;
  }
}

function fail(reason, message) {
  throw new VerifyError(reason, message);
}

const b64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// b64decode decodes standard padded base64, strictly: only the canonical
// encoding of some bytes is accepted (null otherwise): the alphabet, the
// length a multiple of 4, at most two "=" at the end, and the bits the
// padding leaves over zero.
export function b64decode(s) {
  if (typeof s !== "string" || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  if (pad && s.length === pad) return null;
  if (pad && b64alphabet.indexOf(s[s.length - pad - 1]) & (pad === 2 ? 15 : 3)) return null;
  let bin;
  try {
    bin = atob(s);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(u8) {
  let s = "";
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  return btoa(s);
}

export function hex(u8) {
  return Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(u8) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", u8));
}

// leafHash and nodeHash are RFC 6962's, computed synchronously (sha256.js
// says why); callers may still await them.
export function leafHash(leaf) {
  return sha256Sync(concat(Uint8Array.of(0), leaf));
}

export function nodeHash(left, right) {
  return sha256Sync(concat(Uint8Array.of(1), left, right));
}

// treeHash is the RFC 6962 root of leaves (for tests and small trees).
export async function treeHash(leaves) {
  if (leaves.length === 0) return sha256(new Uint8Array(0));
  if (leaves.length === 1) return leafHash(leaves[0]);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(await treeHash(leaves.slice(0, k)), await treeHash(leaves.slice(k)));
}

// parseVerifierKey reads a note verifier key, "<name>+<8 hex key hash>+<base64
// of 0x01 and the 32-byte Ed25519 key>", as DIR/log.vkey holds it.
export async function parseVerifierKey(text) {
  const vkey = String(text).trim();
  // The name and hash hold no "+"; the base64 key may.
  const i = vkey.indexOf("+");
  const j = vkey.indexOf("+", i + 1);
  if (i < 0 || j < 0) fail("log_key_invalid", "a verifier key is name+hash+key");
  const [name, hashHex, keyB64] = [vkey.slice(0, i), vkey.slice(i + 1, j), vkey.slice(j + 1)];
  if (!name || /[\s\u0000-\u001f]/.test(name)) fail("log_key_invalid", "bad key name");
  if (!/^[0-9a-f]{8}$/.test(hashHex)) fail("log_key_invalid", "the key hash is 8 hex digits");
  const key = b64decode(keyB64);
  if (!key || key.length !== 33 || key[0] !== 1) fail("log_key_invalid", "not an Ed25519 note key (0x01 and 32 bytes)");
  const keyHash = (await sha256(concat(utf8.encode(name + "\n"), key))).subarray(0, 4);
  if (hex(keyHash) !== hashHex) fail("log_key_invalid", "the key hash does not match the key");
  let cryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey("raw", key.subarray(1), { name: "Ed25519" }, false, ["verify"]);
  } catch (e) {
    fail("log_key_invalid", `this browser cannot use Ed25519 keys (${e})`);
  }
  return { name, keyHash, cryptoKey, text: vkey };
}

// openCheckpoint verifies a signed checkpoint note under key and returns
// {origin, size (BigInt), root (32 bytes), note, body, cosigners}: cosigners
// are the names of the other signature lines (witnesses), not verified.
export async function openCheckpoint(note, key) {
  if (typeof note !== "string") fail("checkpoint_invalid", "not text");
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) fail("checkpoint_invalid", "not a signed note");
  const body = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split("\n");
  let signed = false;
  const seen = new Set();
  const cosigners = [];
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) fail("checkpoint_invalid", "malformed signature line");
    const sig = b64decode(m[2]);
    if (!sig || sig.length < 5) fail("checkpoint_invalid", "malformed signature");
    if (m[1] !== key.name || !equal(sig.subarray(0, 4), key.keyHash)) {
      cosigners.push(m[1]);
      continue; // another key's signature (a witness): ignored
    }
    if (seen.has(line)) fail("checkpoint_invalid", "a signature line appears twice");
    seen.add(line);
    const ok = sig.length === 68 && (await crypto.subtle.verify({ name: "Ed25519" }, key.cryptoKey, sig.subarray(4), utf8.encode(body)));
    if (!ok) fail("checkpoint_signature_invalid", "the log's signature does not verify");
    signed = true;
  }
  if (!signed) fail("checkpoint_signature_invalid", `no signature by ${key.name}`);
  const lines = body.slice(0, -1).split("\n");
  if (lines.length !== 3) fail("checkpoint_invalid", "a checkpoint body is origin, size and root, with no extension lines");
  const [origin, sizeText, rootB64] = lines;
  if (origin !== key.name) fail("checkpoint_invalid", `origin ${origin} is not the key's name`);
  if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText)) fail("checkpoint_invalid", "malformed size");
  const root = b64decode(rootB64);
  if (!root || root.length !== 32) fail("checkpoint_invalid", "malformed root");
  return { origin, size: BigInt(sizeText), root, note, body, cosigners: [...new Set(cosigners)] };
}

// rootFromInclusion computes the root an inclusion proof leads to
// (RFC 9162 2.1.3.2).
export async function rootFromInclusion(index, size, leafHashBytes, proof) {
  index = BigInt(index);
  size = BigInt(size);
  if (index >= size) fail("inclusion_proof_invalid", `index ${index} is not below size ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = leafHashBytes;
  for (const p of proof) {
    if (!p || p.length !== 32) fail("inclusion_proof_invalid", "a proof hash is not 32 bytes");
    if (sn === 0n) fail("inclusion_proof_invalid", "the proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("inclusion_proof_invalid", "the proof is too short");
  return r;
}

export async function verifyInclusion(index, size, leafHashBytes, proof, root) {
  const r = await rootFromInclusion(index, size, leafHashBytes, proof);
  if (!equal(r, root)) fail("inclusion_proof_invalid", `entry ${index} is not in the tree of size ${size}`);
}

// verifyConsistency checks that the tree (size1, root1) is a prefix of
// (size2, root2) (RFC 9162 2.1.4.2).
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  size1 = BigInt(size1);
  size2 = BigInt(size2);
  const bad = (m) => fail("consistency_proof_invalid", m);
  if (size1 > size2) bad(`size ${size1} is larger than ${size2}`);
  if (proof.some((p) => !p || p.length !== 32)) bad("a proof hash is not 32 bytes");
  if (size1 === size2) {
    if (proof.length !== 0 || !equal(root1, root2)) bad("equal sizes with different roots or a proof");
    return;
  }
  if (size1 === 0n) {
    if (proof.length !== 0) bad("a proof from the empty tree must be empty");
    return;
  }
  if (proof.length === 0) bad("the proof is empty");
  let path = proof;
  if ((size1 & (size1 - 1n)) === 0n) path = [root1, ...proof];
  let fn = size1 - 1n;
  let sn = size2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) bad("the proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(fr, root1) || !equal(sr, root2)) bad(`the tree of size ${size2} does not extend the tree of size ${size1}`);
}

// parseTLogProof reads a C2SP tlog-proof file as `warrant prove` writes it.
export function parseTLogProof(text) {
  const bad = (m) => fail("tlog_proof_malformed", m);
  if (typeof text !== "string" || text.length > 256 << 10) bad("not a tlog-proof");
  const split = text.indexOf("\n\n");
  if (split < 0) bad("no checkpoint");
  const lines = text.slice(0, split).split("\n");
  if (lines[0] !== "c2sp.org/tlog-proof@v1") bad("not a c2sp.org/tlog-proof@v1 file");
  let i = 1;
  let leaf = null;
  if (lines[i]?.startsWith("extra ")) {
    leaf = b64decode(lines[i].slice(6));
    if (!leaf) bad("malformed extra line");
    i++;
  }
  const m = /^index (0|[1-9][0-9]{0,19})$/.exec(lines[i] || "");
  if (!m) bad("malformed index line");
  if (leaf === null) fail("tlog_proof_missing_leaf", "the proof carries no leaf (extra line)");
  const hashes = lines.slice(i + 1).map((l) => b64decode(l));
  if (hashes.length > 64 || hashes.some((h) => !h || h.length !== 32)) bad("malformed proof hashes");
  return { leaf, index: BigInt(m[1]), hashes, checkpoint: text.slice(split + 2) };
}

// verifyTLogProof checks a tlog-proof file under key: the checkpoint's
// signature and the leaf's inclusion.
export async function verifyTLogProof(text, key) {
  const p = parseTLogProof(text);
  const cp = await openCheckpoint(p.checkpoint, key);
  await verifyInclusion(p.index, cp.size, await leafHash(p.leaf), p.hashes, cp.root);
  return { ...p, cp };
}

// formatTLogProof writes a verified entry as the tlog-proof `warrant prove`
// writes.
export function formatTLogProof(leaf, index, hashes, note) {
  return `c2sp.org/tlog-proof@v1\nextra ${b64encode(leaf)}\nindex ${index}\n${hashes.map((h) => b64encode(h) + "\n").join("")}\n${note}`;
}

// pae is DSSE's pre-authentication encoding of a payload.
export function pae(payloadType, payload) {
  const t = utf8.encode(payloadType);
  return concat(utf8.encode(`DSSEv1 ${t.length} `), t, utf8.encode(` ${payload.length} `), payload);
}

// keyID is "sha256:" and the hex SHA-256 of an SPKI DER public key.
export async function keyID(spki) {
  return "sha256:" + hex(await sha256(spki));
}

const ed25519Prefix = fromHex("302a300506032b6570032100");
const p256Prefix = fromHex("3059301306072a8648ce3d020106082a8648ce3d03010703420004");

// derToRaw turns an ASN.1 DER ECDSA signature into r||s (32 bytes each).
function derToRaw(der) {
  const bad = () => fail("signature_invalid", "malformed ECDSA signature");
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) bad();
  let o = 2;
  const int = () => {
    if (der[o] !== 0x02) bad();
    const n = der[o + 1];
    const v = der.subarray(o + 2, o + 2 + n);
    if (v.length !== n || n === 0 || n > 33) bad();
    o += 2 + n;
    const t = v[0] === 0 ? v.subarray(1) : v;
    if (t.length > 32) bad();
    const out = new Uint8Array(32);
    out.set(t, 32 - t.length);
    return out;
  };
  const r = int();
  const s = int();
  if (o !== der.length) bad();
  return concat(r, s);
}

// verifyEnvelopeSignature checks one DSSE signature over payloadType and
// payload by the SPKI DER key spki (Ed25519 or ECDSA P-256 with SHA-256).
export async function verifyEnvelopeSignature(payloadType, payload, sig, spki) {
  const msg = pae(payloadType, payload);
  if (spki.length === 44 && equal(spki.subarray(0, 12), ed25519Prefix)) {
    const k = await crypto.subtle.importKey("raw", spki.subarray(12), { name: "Ed25519" }, false, ["verify"]);
    return sig.length === 64 && crypto.subtle.verify({ name: "Ed25519" }, k, sig, msg);
  }
  if (spki.length === 91 && equal(spki.subarray(0, p256Prefix.length), p256Prefix)) {
    // raw: the uncompressed point, 0x04 (the prefix's last byte), X and Y
    const k = await crypto.subtle.importKey("raw", spki.subarray(p256Prefix.length - 1), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, k, derToRaw(sig), msg);
  }
  fail("key_invalid", "not an Ed25519 or P-256 SPKI key");
}

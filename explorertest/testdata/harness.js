// harness.js runs the Go repository's cross-language vectors
// (testdata/vectors) through the explorer's verify.js and log.js, in the
// browser, and writes the outcome to document.body.dataset.result.

import * as v from "/ui/assets/verify.js";
import { entryID, parseLeaf } from "/ui/assets/log.js";
import { policyText } from "/ui/assets/facts.js";
import { tilePath } from "/ui/assets/tiles.js";
import { sha256Sync } from "/ui/assets/sha256.js";

const utf8 = new TextEncoder();
const results = { passed: 0, failures: [] };

async function check(name, fn) {
  try {
    await fn();
    results.passed++;
  } catch (e) {
    results.failures.push(`${name}: ${e && e.message ? e.message : e}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function refuses(reason, fn) {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof v.VerifyError, `threw ${e}, not a VerifyError`);
    assert(e.reason === reason, `reason ${e.reason}, want ${reason} (${e.message})`);
    return;
  }
  throw new Error(`accepted; want ${reason}`);
}

const get = async (p) => (await fetch(`/vectors/${p}`)).json();
const getText = async (p) => (await fetch(`/vectors/${p}`)).text();

async function run() {
  const log = await get("log.json");
  const keys = await get("keys.json");
  const envelopes = await get("envelopes.json");
  const invalid = await get("invalid.json");
  const key = await v.parseVerifierKey(log.note_verifier_key);
  await check("keys.json log key", async () => {
    const k = await v.parseVerifierKey(keys.log_key.note_verifier_key);
    assert(k.name === log.origin && v.hex(k.keyHash) === v.hex(key.keyHash), "log key differs");
  });
  await check("verifier key with a wrong hash", () => refuses("log_key_invalid", () => v.parseVerifierKey(log.note_verifier_key.replace(/\+([0-9a-f])/, (m, c) => "+" + (c === "0" ? "1" : "0")))));
  await check("a verifier key whose base64 holds '+', and a note it signs", async () => {
    for (let i = 0; i < 500; i++) {
      const kp = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
      const key = v.concat(Uint8Array.of(1), new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey)));
      if (!v.b64encode(key).includes("+")) continue;
      const hash = v.hex((await v.sha256(v.concat(utf8.encode("x.example/log\n"), key))).subarray(0, 4));
      const k = await v.parseVerifierKey(`x.example/log+${hash}+${v.b64encode(key)}`);
      const body = `x.example/log\n5\n${v.b64encode(new Uint8Array(32))}\n`;
      const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, kp.privateKey, utf8.encode(body)));
      const cp = await v.openCheckpoint(`${body}\n\u2014 x.example/log ${v.b64encode(v.concat(k.keyHash, sig))}\n`, k);
      assert(cp.size === 5n, "size");
      return;
    }
    throw new Error("no key with '+' in 500 tries");
  });
  const leaves = log.entries.map((e) => utf8.encode(e.leaf));
  for (const e of log.entries) {
    await check(`entry ${e.index} leaf hash and id`, async () => {
      assert(v.hex(await v.leafHash(utf8.encode(e.leaf))) === e.leaf_hash_hex, "leaf hash");
      assert((await entryID(e.leaf, parseLeaf(e.leaf))) === e.id, `id ${await entryID(e.leaf, parseLeaf(e.leaf))} != ${e.id}`);
    });
  }
  await check("policy digests: the decisions name the policies in force", async () => {
    const digest = async (i) => "sha256:" + v.hex(await v.sha256(utf8.encode(policyText({ parsed: parseLeaf(log.entries[i].leaf) }))));
    const dec = (i) => parseLeaf(log.entries[i].leaf).decision.policy_digest;
    assert(dec(5) === (await digest(1)) && dec(7) === (await digest(1)), "the default policy's digest");
    assert((await digest(9)) !== (await digest(1)), "the admin's policy has its own digest");
  });
  await check("tile paths and the vector tiles", async () => {
    for (const [n, want] of [[0, "000"], [5, "005"], [1234067, "x001/x234/067"], [1000, "x001/000"]]) assert(tilePath(n) === want, `tilePath(${n}) = ${tilePath(n)}`);
    const tile = log.tiles.find((t) => t.path === "tile/0/000.p/10");
    const bundle = log.tiles.find((t) => t.path === "tile/entries/000.p/10");
    assert(tile && bundle, "the vectors' tiles");
    const hashes = v.b64decode(tile.content_b64);
    for (const e of log.entries) assert(v.hex(hashes.subarray(32 * e.index, 32 * e.index + 32)) === e.leaf_hash_hex, `tile hash ${e.index}`);
  });
  const roots = new Map(log.roots.map((r) => [r.size, v.fromHex(r.root_hex)]));
  for (const r of log.roots) {
    await check(`root of size ${r.size}`, async () => assert(v.hex(await v.treeHash(leaves.slice(0, r.size))) === r.root_hex, "root differs"));
  }
  for (const c of log.checkpoints) {
    await check(`checkpoint ${c.size}`, async () => {
      const cp = await v.openCheckpoint(c.note, key);
      assert(cp.size === BigInt(c.size) && v.hex(cp.root) === c.root_hex, "size or root differs");
    });
    await check(`checkpoint ${c.size} with a witness cosignature`, async () => {
      const fake = v.b64encode(crypto.getRandomValues(new Uint8Array(76)));
      const cp = await v.openCheckpoint(c.note + `\u2014 witness.example/w1 ${fake}\n`, key);
      assert(cp.size === BigInt(c.size) && cp.cosigners.join() === "witness.example/w1", "cosigned checkpoint");
    });
    await check(`checkpoint ${c.size} with one byte changed`, () => refuses("checkpoint_signature_invalid", () => v.openCheckpoint(c.note.replace(/\n([A-Za-z0-9])/, (m, ch) => "\n" + (ch === "A" ? "B" : "A")), key)));
    await check(`checkpoint ${c.size} under another key`, async () => {
      const other = keys.log_key.note_verifier_key.replace(/^[^+]+/, "example.org/other");
      await refuses("log_key_invalid", () => v.parseVerifierKey(other));
    });
  }
  for (const p of log.inclusion_proofs) {
    await check(`inclusion of ${p.index} in ${p.tree_size}`, async () => {
      await v.verifyInclusion(p.index, p.tree_size, v.fromHex(log.entries[p.index].leaf_hash_hex), p.hashes_hex.map(v.fromHex), roots.get(p.tree_size));
    });
    await check(`inclusion of ${p.index} in ${p.tree_size} against another root`, () =>
      refuses("inclusion_proof_invalid", () => v.verifyInclusion(p.index, p.tree_size, v.fromHex(log.entries[p.index].leaf_hash_hex), p.hashes_hex.map(v.fromHex), roots.get(p.tree_size - 1))));
  }
  for (const p of log.consistency_proofs) {
    await check(`consistency ${p.from_size} to ${p.to_size}`, () =>
      v.verifyConsistency(p.from_size, p.to_size, p.hashes_hex.map(v.fromHex), roots.get(p.from_size), roots.get(p.to_size)));
    if (p.from_size > 0 && p.from_size < p.to_size) {
      await check(`consistency ${p.from_size} to ${p.to_size} with a wrong old root`, () =>
        refuses("consistency_proof_invalid", () => v.verifyConsistency(p.from_size, p.to_size, p.hashes_hex.map(v.fromHex), roots.get(p.from_size - 1), roots.get(p.to_size))));
    }
  }
  await check("dlg_triage.tlog-proof", async () => {
    const r = await v.verifyTLogProof(await getText("dlg_triage.tlog-proof"), key);
    assert(r.index === 6n && r.cp.size === 10n, "index or size");
    const again = v.formatTLogProof(r.leaf, r.index, r.hashes, r.checkpoint);
    assert(again === (await getText("dlg_triage.tlog-proof")), "formatTLogProof does not reproduce the file");
  });
  await check("dlg_triage.bundle proofs and consistency", async () => {
    const b = JSON.parse(await getText("dlg_triage.bundle"));
    assert(b.format === "warrant-chain-bundle/v1" && b.delegation === "dlg_triage", "header");
    for (const p of b.proofs) await v.verifyTLogProof(p, key);
    for (const c of b.consistency || []) {
      const from = await v.openCheckpoint(c.from, key), to = await v.openCheckpoint(c.to, key);
      await v.verifyConsistency(from.size, to.size, c.proof.map(v.b64decode), from.root, to.root);
    }
  });
  const pubs = new Map(keys.keys.map((k) => [k.key_id, v.b64decode(k.public_spki_der_b64)]));
  for (const k of keys.keys) await check(`key id of ${k.name}`, async () => assert((await v.keyID(pubs.get(k.key_id))) === k.key_id, "key id"));
  for (const e of envelopes.envelopes) {
    await check(`envelope ${e.name}`, async () => {
      const env = JSON.parse(e.envelope);
      const payload = v.b64decode(env.payload);
      assert(v.b64encode(v.pae(env.payloadType, payload)) === e.pae_b64, "PAE differs");
      for (const s of env.signatures) {
        assert(await v.verifyEnvelopeSignature(env.payloadType, payload, v.b64decode(s.sig), pubs.get(s.keyid)), `signature by ${s.keyid}`);
        const other = new Uint8Array(payload);
        other[0] ^= 1;
        assert(!(await v.verifyEnvelopeSignature(env.payloadType, other, v.b64decode(s.sig), pubs.get(s.keyid))), "a changed payload verifies");
      }
    });
  }
  const checkpointRoot = roots.get(10);
  for (const c of invalid.cases) {
    const input = c.input_text ?? (c.input_b64 ? new TextDecoder().decode(v.b64decode(c.input_b64)) : "");
    switch (c.check) {
      case "checkpoint":
        await check(`invalid: ${c.name}`, () => refuses(c.reason, () => v.openCheckpoint(input, key)));
        break;
      case "tlog_proof":
        await check(`invalid: ${c.name}`, () => refuses(c.reason, () => v.verifyTLogProof(input, key)));
        break;
      case "inclusion":
        await check(`invalid: ${c.name}`, () => refuses(c.reason, () => v.verifyInclusion(c.index, c.tree_size, v.fromHex(log.entries[6].leaf_hash_hex), c.hashes_hex.map(v.fromHex), checkpointRoot)));
        break;
      case "consistency":
        await check(`invalid: ${c.name}`, () => refuses(c.reason, () => v.verifyConsistency(c.from_size, c.tree_size, c.hashes_hex.map(v.fromHex), roots.get(c.from_size), roots.get(c.tree_size))));
        break;
    }
  }

  // sha256.js against WebCrypto's digest: every length up to three blocks
  // (each padding case), and a few long inputs.
  await check("sha256.js agrees with WebCrypto", async () => {
    const lengths = [...Array(200).keys(), 1000, 4096, 65535, 65536 + 7];
    for (const n of lengths) {
      const d = new Uint8Array(n);
      for (let o = 0; o < n; o += 65536) crypto.getRandomValues(d.subarray(o, Math.min(n, o + 65536)));
      assert(v.hex(sha256Sync(d)) === v.hex(await v.sha256(d)), `length ${n}`);
    }
    assert(v.hex(sha256Sync(utf8.encode("abc"))) === "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
  });
}

run().catch((e) => results.failures.push(`harness: ${e.message}`)).finally(() => {
  document.body.dataset.result = JSON.stringify(results);
  document.getElementById("status").textContent = `${results.passed} passed, ${results.failures.length} failed`;
});

// log.js: a verified view of one log. Every checkpoint an answer carries is
// opened under the pinned key and checked for consistency with the last
// checkpoint this browser trusted for that key and API (kept in
// localStorage), which then advances; every entry's inclusion proof is
// checked against its checkpoint. Nothing in a result is marked verified
// unless these checks passed.

import {
  b64decode, hex, sha256, leafHash, equal, openCheckpoint, verifyInclusion,
  verifyConsistency, VerifyError, formatTLogProof,
} from "./verify.js";

const utf8 = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: true });

export class LogView {
  constructor(api, key, storage) {
    this.api = api;
    this.key = key;
    this.storage = storage;
    this.storeKey = `warrant-explorer/trusted/${api.base || location.origin}/${key.text}`;
    this.cache = new Map(); // note text -> Promise<checkpoint>
    this.lists = new Map(); // one page's listings, fetched once
    this.queue = Promise.resolve();
  }

  // newPage forgets what the previous page fetched, so that each page shows
  // the log as it is now.
  newPage() {
    this.cache.clear();
    this.lists.clear();
  }

  trusted() {
    const note = this.storage.getItem(this.storeKey);
    return note ? openCheckpoint(note, this.key).catch(() => null) : Promise.resolve(null);
  }

  // checkpoint verifies a signed note and its consistency with the trusted
  // checkpoint. Calls are serialised so the trusted checkpoint advances in
  // order.
  checkpoint(note) {
    if (!this.cache.has(note)) {
      const p = (this.queue = this.queue.catch(() => {}).then(() => this.advance(note)));
      this.cache.set(note, p);
    }
    return this.cache.get(note);
  }

  async advance(note) {
    const cp = await openCheckpoint(note, this.key);
    const t = await this.trusted();
    cp.consistentWith = t ? t.size : null;
    if (!t || t.size === 0n) {
      this.storage.setItem(this.storeKey, note);
      return cp;
    }
    if (t.size === cp.size) {
      if (!equal(t.root, cp.root)) throw new VerifyError("consistency_proof_invalid", `two checkpoints of size ${cp.size} with different roots: the log forked`);
      return cp;
    }
    const [from, to] = t.size < cp.size ? [t, cp] : [cp, t];
    const r = await this.api.rpc("GetConsistencyProof", { fromSize: String(from.size), toSize: String(to.size) });
    const hashes = (r.hashes || []).map(b64decode);
    try {
      await verifyConsistency(from.size, to.size, hashes, from.root, to.root);
    } catch (e) {
      throw new VerifyError("consistency_proof_invalid", `checkpoint of size ${cp.size} is not consistent with the trusted one of size ${t.size}: ${e.message}`);
    }
    if (cp.size > t.size) this.storage.setItem(this.storeKey, note);
    return cp;
  }

  async latest() {
    const r = await this.api.rpc("GetCheckpoint", {});
    return this.checkpoint(text.decode(b64decode(r.checkpoint)));
  }

  // entry verifies a ProvenEntry (Connect JSON) and returns what a page
  // shows. On failure the result still carries what the server sent (so it
  // can be shown, marked) and error.
  async entry(pe) {
    const e = { index: BigInt(pe.index || 0), claimedId: pe.id || "", verified: false, error: null };
    try {
      e.leaf = b64decode(pe.leaf || "");
      if (!e.leaf) throw new VerifyError("leaf_malformed", "the leaf is not base64");
      e.leafText = text.decode(e.leaf);
      e.parsed = parseLeaf(e.leafText);
      const note = text.decode(b64decode(pe.checkpoint || "") || new Uint8Array());
      e.hashes = (pe.inclusionProof || []).map(b64decode);
      e.cp = await this.checkpoint(note);
      await verifyInclusion(e.index, e.cp.size, await leafHash(e.leaf), e.hashes, e.cp.root);
      e.id = await entryID(e.leafText, e.parsed);
      if (e.id !== e.claimedId) throw new VerifyError("entry_id_mismatch", `the server named entry ${e.index} ${e.claimedId}, its leaf is ${e.id}`);
      e.verified = true;
      e.tlogProof = formatTLogProof(e.leaf, e.index, e.hashes, note);
    } catch (err) {
      e.error = err;
      if (!e.parsed && e.leafText) {
        try {
          e.parsed = JSON.parse(e.leafText);
        } catch {}
      }
    }
    return e;
  }

  async getEntry(req) {
    const r = await this.api.rpc("GetEntry", req);
    const e = await this.entry(r.entry);
    e.serverStatus = r.status || null;
    return answers(e, "GetEntry", req);
  }

  list(method, body, max = 2000) {
    const k = JSON.stringify([method, body, max]);
    if (!this.lists.has(k)) {
      this.lists.set(k, (async () => {
        const { entries, truncated } = await this.api.pages(method, body, max);
        const out = await Promise.all(entries.map((pe) => this.entry(pe)));
        out.forEach((e, i) => answers(e, method, body, out[i - 1]));
        out.truncated = truncated;
        return out;
      })());
    }
    return this.lists.get(k);
  }
}

// answers checks that e is an answer to the question asked (method and its
// request body), as the Go client does: the index or the accepted
// delegation asked for, a child naming the delegation listed, an entry
// naming the agent listed, in log order after prev. A proxy or server that
// answers another question gets entries that verify on their own; marked
// here, nothing derived from them is verified. Returns e.
export function answers(e, method, req, prev) {
  let why = "";
  const p = e.parsed;
  if (method === "GetEntry" && req.index !== undefined && e.index !== BigInt(req.index)) why = `asked for entry ${req.index}, got entry ${e.index}`;
  else if (method === "GetEntry" && req.delegationId !== undefined && !(p?.kind === "delegation" && p.payload?.id === req.delegationId && p.decision?.outcome === "accepted")) why = `asked for the accepted delegation ${req.delegationId}, got entry ${e.index} (${p?.kind === "delegation" ? `${p.payload?.id}, ${p.decision?.outcome}` : p?.kind})`;
  else if (method === "ListChildren" && under(e) !== req.delegationId) why = `asked for the entries under ${req.delegationId}, got entry ${e.index}, which names ${under(e) || "no delegation"}`;
  else if (method === "ListAgentEntries" && !namesAgent(e, req.agent)) why = `asked for the entries of ${req.agent}, got entry ${e.index}, which does not name it`;
  else if (prev && e.index <= prev.index) why = `listed entry ${e.index} after entry ${prev.index}: not in log order`;
  return why ? mismatch(e, why) : e;
}

// mismatch marks e as not the answer asked for (why says how), failed
// whatever its own proofs say; a page does not follow its links.
export function mismatch(e, why) {
  e.mismatch = true;
  if (e.verified) e.error = new VerifyError("response_mismatch", why);
  e.verified = false;
  e.tlogProof = null;
  return e;
}

// under is the delegation id an entry names: a delegation's parent, a
// revocation's target, a token's delegation.
export function under(e) {
  const p = e.parsed;
  if (!p) return "";
  if (p.kind === "delegation") return p.payload?.parent || "";
  if (p.kind === "revocation") return p.payload?.delegation || "";
  if (p.kind === "token") return p.token?.delegation || "";
  return "";
}

// namesAgent says whether e names agent where the log indexes it: a key
// binding's agent, a delegation's issuer or delegate, a revocation's
// issuer (or, revoked by an admin, the admin key's id).
export function namesAgent(e, agent) {
  const p = e.parsed;
  if (!p) return false;
  if (p.kind === "key_binding") return p.payload?.agent === agent;
  if (p.kind === "delegation") return p.payload?.issuer === agent || p.payload?.delegate === agent;
  if (p.kind === "revocation") return p.payload?.issuer === agent || p.envelope?.signatures?.[0]?.keyid === agent;
  return false;
}

// parseLeaf decodes a leaf and its envelope's payload (not canonical-checked:
// the hash covers the exact bytes, which is what is verified).
export function parseLeaf(leafText) {
  const leaf = JSON.parse(leafText);
  if (leaf.envelope) {
    const payload = b64decode(leaf.envelope.payload);
    leaf.payloadBytes = payload;
    leaf.payload = JSON.parse(text.decode(payload));
  }
  return leaf;
}

// entryID is the id of an entry: a delegation's own id, or sha256 of its
// canonical envelope (as embedded in the leaf, exact bytes), or of the leaf
// for entries the log writes.
export async function entryID(leafText, leaf) {
  if (leaf.kind === "delegation" && leaf.payload) return leaf.payload.id;
  if (leaf.envelope) {
    const start = leafText.indexOf('"envelope":') + '"envelope":'.length;
    const end = leafText.indexOf(',"decision":', start);
    return "sha256:" + hex(await sha256(utf8.encode(leafText.slice(start, end < 0 ? -1 : end))));
  }
  return "sha256:" + hex(await sha256(utf8.encode(leafText)));
}

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
    this.notes = new Map(); // base64 of a checkpoint -> its text
    this.queue = Promise.resolve();
  }

  // newPage forgets what the previous page fetched, so that each page shows
  // the log as it is now.
  newPage() {
    this.cache.clear();
    this.lists.clear();
    this.notes.clear();
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

  // entries verifies ProvenEntries (Connect JSON) and returns what a page
  // shows, in the order given, each by its own checks: its checkpoint, its
  // inclusion proof, its id. On failure an entry still carries what the
  // server sent (so it can be shown, marked) and error.
  async entries(pes) {
    return Promise.all(pes.map(async (pe) => {
      const e = await this.prepare(pe);
      if (e.error) return e;
      try {
        await verifyInclusion(e.index, e.cp.size, e.leafHash, e.hashes, e.cp.root);
        e.id = await entryID(e.leafText, e.parsed);
        if (e.id !== e.claimedId) throw new VerifyError("entry_id_mismatch", `the server named entry ${e.index} ${e.claimedId}, its leaf is ${e.id}`);
        e.verified = true;
        e.tlogProof = formatTLogProof(e.leaf, e.index, e.hashes, e.note);
      } catch (err) {
        e.error = err;
      }
      return e;
    }));
  }

  // prepare decodes a ProvenEntry and opens its checkpoint: everything but
  // the inclusion proof and the id.
  async prepare(pe) {
    const e = { index: BigInt(pe.index || 0), claimedId: pe.id || "", verified: false, error: null };
    try {
      e.leaf = b64decode(pe.leaf || "");
      if (!e.leaf) throw new VerifyError("leaf_malformed", "the leaf is not base64");
      e.leafText = text.decode(e.leaf);
      e.parsed = parseLeaf(e.leafText);
      // Entries of one answer share a checkpoint: decoded once.
      const cp64 = pe.checkpoint || "";
      if (!this.notes.has(cp64)) this.notes.set(cp64, text.decode(b64decode(cp64) || new Uint8Array()));
      e.note = this.notes.get(cp64);
      e.hashes = (pe.inclusionProof || []).map(b64decode);
      e.leafHash = await leafHash(e.leaf);
      e.cp = await this.checkpoint(e.note);
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

  async entry(pe) {
    return (await this.entries([pe]))[0];
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
        const out = await this.entries(entries);
        out.forEach((e, i) => answers(e, method, body, out[i - 1]));
        out.truncated = truncated;
        return out;
      })());
    }
    return this.lists.get(k);
  }

  // children lists the children of each delegation in ids, verified, as
  // list("ListChildren", …) would (at most max each, with .truncated),
  // but with ListChildrenBatch: a hundred delegations a request rather
  // than one. It returns a Map from id to entries, and remembers each
  // listing for this page.
  async children(ids, max = 2000) {
    const key = (id) => JSON.stringify(["ListChildren", { delegationId: id }, max]);
    const ask = [...new Set(ids)].filter((id) => !this.lists.has(key(id)));
    // Each answer is verified while the next is on its way: parts holds,
    // per delegation, the promises of its verified entries, in order.
    const parts = new Map(ask.map((id) => [id, []]));
    const truncated = new Set();
    const later = (p) => {
      p.catch(() => {}); // awaited below; not unhandled if a request fails first
      return p;
    };
    for (let i = 0; i < ask.length; ) {
      const want = ask.slice(i, i + 100);
      const r = await this.api.rpc("ListChildrenBatch", { delegationIds: want });
      const pages = r.pages || [];
      if (!pages.length || pages.length > want.length) throw new Error(`ListChildrenBatch answered ${pages.length} of the ${want.length} delegations asked`);
      pages.forEach((p, j) => {
        const id = want[j];
        // A page for another delegation than asked is not refused here:
        // its entries do not name id, and answers() below marks each of
        // them, so nothing built on them is verified.
        const got = p.entries || [];
        parts.get(id).push(later(this.entries(got)));
        if (!p.nextStartIndex || p.nextStartIndex === "0") return;
        if (got.length >= max) {
          truncated.add(id);
          return;
        }
        parts.get(id).push(later(this.api.pages("ListChildren", { delegationId: id }, max - got.length, p.nextStartIndex).then((m) => {
          if (m.truncated) truncated.add(id);
          return this.entries(m.entries);
        })));
      });
      i += pages.length;
    }
    for (const id of ask) {
      const es = (await Promise.all(parts.get(id))).flat();
      // Checked as list("ListChildren", …) checks its answers.
      es.forEach((e, i) => answers(e, "ListChildren", { delegationId: id }, es[i - 1]));
      es.truncated = truncated.has(id);
      this.lists.set(key(id), Promise.resolve(es));
    }
    return new Map(await Promise.all([...new Set(ids)].map(async (id) => [id, await this.lists.get(key(id))])));
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

// facts.js: what pages derive from verified entries: chains, key bindings
// in force, a delegation's status, blast radii. Every input is a verified
// entry (log.js); a result is verified only when all its inputs were.

import { b64decode, keyID, verifyEnvelopeSignature, parseTLogProof, leafHash, verifyInclusion, hex, sha256 } from "./verify.js";
import { parseLeaf, under } from "./log.js";

const text = new TextDecoder("utf-8", { fatal: true });

// bundleBindings returns the key bindings a delegation's chain bundle
// carries (those of every link's issuer, delegate and co-signers), each
// proven like an entry: its checkpoint through the view, its inclusion.
export async function bundleBindings(view, id) {
  let r;
  try {
    r = await view.api.rpc("GetChainBundle", { delegationId: id });
  } catch {
    return [];
  }
  const bundle = JSON.parse(text.decode(b64decode(r.bundle)));
  const out = [];
  for (const proof of bundle.proofs || []) {
    const e = { verified: false, error: null };
    try {
      const p = parseTLogProof(proof);
      e.index = p.index;
      e.leafText = text.decode(p.leaf);
      e.parsed = parseLeaf(e.leafText);
      if (e.parsed.kind !== "key_binding") continue;
      e.cp = await view.checkpoint(p.checkpoint);
      await verifyInclusion(p.index, e.cp.size, await leafHash(p.leaf), p.hashes, e.cp.root);
      e.verified = true;
    } catch (err) {
      e.error = err;
      if (!e.parsed) continue;
    }
    out.push(e);
  }
  return out;
}

export const isAccepted = (e) => e.parsed?.decision?.outcome === "accepted";
export const isDenied = (e) => e.parsed?.decision?.outcome === "denied";
export const delegationOf = (e) => (e.parsed?.kind === "delegation" ? e.parsed.payload : null);

export { under } from "./log.js";

// chain walks from a delegation entry up to its root grant, returning
// entries root first.
export async function chain(view, e) {
  const out = [e];
  const seen = new Set([delegationOf(e)?.id]);
  for (let d = delegationOf(e); d?.parent; d = delegationOf(out[0])) {
    if (seen.has(d.parent) || out.length > 256) throw new Error(`the chain loops at ${d.parent}`);
    seen.add(d.parent);
    // getEntry checks that the answer is the accepted delegation d.parent;
    // one that is not is shown, failed, and its own parent is not followed.
    const parent = await view.getEntry({ delegationId: d.parent });
    out.unshift(parent);
    if (parent.mismatch) break;
  }
  return out;
}

// bindings returns the verified, accepted key bindings of agent before
// index, latest last.
export async function bindings(view, agent, beforeIndex) {
  const entries = await view.list("ListAgentEntries", { agent }, 1000);
  return entries.filter((b) => b.parsed?.kind === "key_binding" && b.parsed.payload?.agent === agent && isAccepted(b) && b.index < beforeIndex);
}

// signatures checks every DSSE signature of an entry: who signed it (the
// key binding in force of the named agents, or the log configuration's
// registrar and admin keys), and whether the signature verifies.
export async function signatures(view, e, agents, config) {
  const env = e.parsed?.envelope;
  if (!env) return [];
  const candidates = []; // {keyid, who, binding, spki}
  const add = async (b) => {
    if (!b || b.parsed.payload.revoked) return;
    const spki = b64decode(b.parsed.payload.public_key);
    candidates.push({ keyid: await keyID(spki), who: b.parsed.payload.agent, binding: b, spki, tier: b.parsed.payload.tier, human: !!b.parsed.payload.human });
  };
  for (const agent of agents.filter(Boolean)) {
    const bs = await bindings(view, agent, e.index);
    await add(bs[bs.length - 1]);
  }
  // Co-signers (approvers) are named by key id only; an accepted
  // delegation's chain bundle carries their bindings in force.
  const d = delegationOf(e);
  if (d && isAccepted(e) && env.signatures.length > 1) {
    const latest = new Map();
    for (const b of await bundleBindings(view, d.id)) {
      if (b.index < e.index && isAccepted(b) && (!latest.has(b.parsed.payload.agent) || latest.get(b.parsed.payload.agent).index < b.index)) latest.set(b.parsed.payload.agent, b);
    }
    for (const b of latest.values()) if (!candidates.some((c) => c.who === b.parsed.payload.agent)) await add(b);
  }
  for (const [role, keys] of [["registrar", config?.registrar_keys], ["admin", config?.admin_keys]]) {
    for (const k of keys || []) candidates.push({ keyid: k.id, who: `${role} key`, spki: b64decode(k.public_key), config: true });
  }
  const out = [];
  for (const s of env.signatures) {
    const c = candidates.find((c) => c.keyid === s.keyid);
    const row = { keyid: s.keyid, signer: c || null, verified: false, error: null, unresolved: !c };
    if (!c) {
      out.push(row); // not checked: nothing here names this key's owner
      continue;
    }
    try {
      if ((await keyID(c.spki)) !== s.keyid) throw new Error("the key id does not match the key");
      const ok = await verifyEnvelopeSignature(env.payloadType, e.parsed.payloadBytes, b64decode(s.sig), c.spki);
      if (!ok) throw new Error("the signature does not verify");
      row.verified = e.verified && (!c.binding || c.binding.verified);
      if (!row.verified) throw new Error("the entry or its key binding is not verified");
    } catch (err) {
      row.error = err;
    }
    out.push(row);
  }
  return out;
}

// status derives a delegation's status from verified entries: an accepted
// revocation of it or of an ancestor (listed as their children), else its
// times. It cannot prove that no revocation exists beyond those listed.
export async function status(view, chainEntries, now = Date.now()) {
  const self = chainEntries[chainEntries.length - 1];
  const d = delegationOf(self);
  const inputs = [...chainEntries];
  let revokedBy = null;
  const tokens = [];
  const kidsOf = await view.children(chainEntries.map((anc) => delegationOf(anc).id), 2000);
  for (const anc of [...chainEntries].reverse()) {
    const kids = kidsOf.get(delegationOf(anc).id);
    inputs.push(...kids);
    for (const k of kids) {
      if (anc === self && k.parsed?.kind === "token" && under(k) === delegationOf(anc).id) tokens.push(k);
      if (!revokedBy && k.parsed?.kind === "revocation" && isAccepted(k) && k.parsed.payload.delegation === delegationOf(anc).id) revokedBy = { entry: k, via: delegationOf(anc).id };
    }
  }
  let state = "active";
  if (!isAccepted(self)) state = "denied";
  else if (revokedBy) state = "revoked";
  else if (Date.parse(d.expires_at) <= now) state = "expired";
  else if (Date.parse(d.not_before) > now) state = "not_yet_valid";
  const verified = inputs.every((e) => e.verified);
  return { state, revokedBy, tokens, verified, error: verified ? null : inputs.find((e) => !e.verified)?.error };
}

export function lifetime(d) {
  return (Date.parse(d.expires_at) - Date.parse(d.not_before)) / 1000;
}

export function fmtDuration(s) {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// config returns the log's first configuration (entry 0): its registrar
// and admin keys.
export async function config(view) {
  const first = await view.getEntry({ index: "0" });
  return first.parsed?.config ? { entry: first, config: first.parsed.config } : { entry: first, config: null };
}

// POLICY_SCAN bounds how far back the policy in force is looked for.
const POLICY_SCAN = 1000;

// policyText is the Cedar text a policy entry records: the log's own
// default, or an admin's update.
export function policyText(e) {
  const p = e.parsed;
  if (p?.kind !== "policy") return null;
  return p.policy ? p.policy.text : p.payload?.text ?? null;
}

// policyInForce finds the policy entry that decided e: the latest
// accepted policy entry before it among the POLICY_SCAN entries before it
// (and entry 1, the default policy every log records). The match is
// checked: the SHA-256 of its text must be the digest the decision
// records, and the entry is fetched with its own proof and verified.
export async function policyInForce(view, e) {
  const digest = e.parsed?.decision?.policy_digest;
  if (!digest) return null;
  const end = e.index;
  const start = end > BigInt(POLICY_SCAN) ? end - BigInt(POLICY_SCAN) : 0n;
  let found = null;
  for (let s = start; s < end; ) {
    const r = await view.api.rpc("GetEntries", { start: String(s), count: Number(end - s) });
    const leaves = r.leaves || [];
    if (!leaves.length) break;
    leaves.forEach((l, i) => {
      const leafText = text.decode(b64decode(l));
      // (quotes inside the Cedar text are escaped, so these are the leaf's own members)
      if (leafText.includes('"kind":"policy"') && !leafText.includes('"outcome":"denied"')) found = s + BigInt(i);
    });
    s += BigInt(leaves.length);
  }
  if (found === null && end > 1n) found = 1n;
  if (found === null) return null;
  const pe = await view.getEntry({ index: String(found) });
  const t = policyText(pe);
  const match = t !== null && "sha256:" + hex(await sha256(new TextEncoder().encode(t))) === digest;
  return { entry: pe, text: t, match, verified: pe.verified && match };
}

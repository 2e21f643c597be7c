// page-entry.js: one entry: every field of its payload, the decision with
// its reason codes and the policy that decided, the signatures and the key
// bindings in force, a delegation's status and the tokens issued under it.

import { h, link, fact, dl, list, downloadButton, badge, mark, shortID } from "./dom.js";
import { b64decode } from "./verify.js";
import { chain, signatures, status, config, delegationOf, isAccepted, policyInForce } from "./facts.js";
import { findEntries } from "./page-search.js";
import { mismatch } from "./log.js";

export async function entryPage(out, view, arg) {
  let e;
  if (/^(0|[1-9][0-9]*)$/.test(arg)) e = await view.getEntry({ index: arg });
  else if (arg.startsWith("sha256:")) {
    const found = await findEntries(view, arg);
    if (found.length === 0) throw new Error(`no entry ${arg} among the entries searched`);
    e = found.find((f) => (f.id || f.claimedId) === arg) || mismatch(found[0], `asked for entry ${arg}, got entry ${found[0].index} (${found[0].id || found[0].claimedId})`);
  } else e = await view.getEntry({ delegationId: arg });
  const p = e.parsed || {};
  out.append(h("h1", {}, `Entry ${e.index}: ${p.kind || "unknown"}`));
  out.append(fact("section", { id: "entry-proof", "aria-labelledby": "proof-h" }, e.verified, e.error,
    h("h2", { id: "proof-h" }, "In the log"),
    dl([
      ["Index", String(e.index)],
      ["Id", h("code", { class: "id" }, e.id || e.claimedId)],
      ["Log time", p.log_time],
      ["Checkpoint", e.cp ? `size ${e.cp.size}, origin ${e.cp.origin}` : "not verified"],
      ["Inclusion proof", `${e.hashes?.length ?? 0} hashes, checked against the checkpoint root`],
    ]),
    tlogProofDownload(e),
  ));
  out.append(payloadSection(e));
  if (p.decision) out.append(decisionSection(e, p.decision.policy_digest ? await policyInForce(view, e) : null));
  const d = delegationOf(e);
  const cfg = await config(view);
  const agents = [];
  if (d) agents.push(d.issuer, d.delegate);
  if (p.kind === "revocation" && p.payload.issuer) agents.push(p.payload.issuer);
  if (p.kind === "token") agents.push(p.token.requester);
  if (p.envelope) out.append(await signaturesSection(view, e, agents, cfg.config));
  if (d && isAccepted(e)) {
    const ch = await chain(view, e);
    out.append(await statusSection(view, e, ch));
    out.append(h("p", {}, link(`/ui/chain/${encodeURIComponent(d.id)}`, "The chain from the root grant"), " \u00b7 ",
      link(`/ui/blast-radius?delegation=${encodeURIComponent(d.id)}`, "Blast radius of this delegation")));
    out.append(await bundleDownload(view, d.id));
  } else if (d) {
    out.append(h("p", {}, d.parent ? link(`/ui/entry/${encodeURIComponent(d.parent)}`, "The parent delegation") : "A root grant."));
  }
}

function value(v) {
  if (Array.isArray(v)) return v.length ? h("ul", { class: "values" }, v.map((x) => h("li", {}, typeof x === "object" ? JSON.stringify(x) : String(x)))) : "(none)";
  if (v && typeof v === "object") return h("pre", {}, JSON.stringify(v, null, 2));
  return String(v);
}

function payloadSection(e) {
  const p = e.parsed || {};
  const body = p.payload || p.config || p.policy || p.token || {};
  const rows = Object.entries(body).map(([k, v]) => [k, k === "text" ? h("pre", { class: "policy" }, v) : value(v)]);
  const title = p.envelope ? `Payload (${p.envelope.payloadType})` : p.token ? "Token exchange" : p.config ? "Log configuration" : "Policy";
  return fact("section", { id: "payload", "aria-labelledby": "payload-h" }, e.verified, e.error,
    h("h2", { id: "payload-h" }, title), h("table", { class: "fields" },
      h("caption", {}, "Every field, as signed and logged"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Value"))),
      h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))));
}

function decisionSection(e, pol) {
  const dec = e.parsed.decision;
  let policy = null;
  if (pol) {
    policy = mark(h("div", { id: "policy" }, badge(pol.verified, pol.entry.error || (pol.match ? null : "no policy entry with this digest was found before the entry")),
      pol.match ? ["the policy of ", link(`/ui/entry/${pol.entry.index}`, `entry ${pol.entry.index}`), " (its SHA-256 matches)"] : `the latest policy found (entry ${pol.entry.index}) has another digest`,
      pol.match ? h("details", {}, h("summary", {}, "Cedar text"), h("pre", { class: "policy" }, pol.text)) : null), pol.verified);
  }
  return fact("section", { id: "decision", "aria-labelledby": "decision-h", "data-outcome": dec.outcome }, e.verified, e.error,
    h("h2", { id: "decision-h" }, "Decision"),
    dl([
      // A check mark only on a verified decision: unverified, the outcome is what the server claims.
      ["Outcome", h("strong", { class: `outcome ${dec.outcome}` }, e.verified ? (dec.outcome === "accepted" ? "\u2713 accepted" : "\u2717 denied") : `${dec.outcome} (as the server claims, not verified)`)],
      dec.reasons && ["Reasons", h("ul", {}, dec.reasons.map((r) => h("li", {}, h("code", {}, r))))],
      dec.policy_digest && ["Policy", h("div", {}, h("code", {}, dec.policy_digest), policy)],
      dec.policy_ids && ["Policies that decided", list(dec.policy_ids)],
      dec.cedar_version && ["Cedar version", dec.cedar_version],
    ]));
}

async function signaturesSection(view, e, agents, cfg) {
  const rows = await signatures(view, e, agents, cfg);
  const sec = h("section", { id: "signatures", "aria-labelledby": "sig-h" }, h("h2", { id: "sig-h" }, "Signatures and key bindings in force"));
  const table = h("table", {}, h("caption", {}, "Each signature checked in this browser under the key bound when the entry was logged"),
    h("thead", {}, h("tr", {}, ["Check", "Signer", "Key id", "Key binding"].map((c) => h("th", { scope: "col" }, c)))));
  const tbody = h("tbody");
  const issuer = delegationOf(e)?.issuer;
  rows.forEach((r) => {
    const s = r.signer;
    const row = h("tr", {}, h("td", {}, r.unresolved ? "not checked: no key binding found for this key id" : badge(r.verified, r.error)),
      h("td", {}, s ? `${s.who}${s.tier ? ` (${s.tier}${s.human ? ", human" : ""})` : ""}${issuer && s.who !== issuer ? " \u2014 approval" : ""}` : "unknown"),
      h("td", {}, h("code", {}, shortID(r.keyid))),
      h("td", {}, s?.binding ? link(`/ui/entry/${s.binding.index}`, `entry ${s.binding.index}`) : s?.config ? "log configuration (entry 0)" : "\u2014"));
    tbody.append(r.unresolved ? row : mark(row, r.verified));
  });
  table.append(tbody);
  sec.append(table);
  return sec;
}

async function statusSection(view, e, ch) {
  const st = await status(view, ch);
  const words = { active: "active", revoked: "revoked", expired: "expired", not_yet_valid: "not yet valid", denied: "denied" };
  const sec = fact("section", { id: "status", "aria-labelledby": "status-h", "data-state": st.state }, st.verified, st.error,
    h("h2", { id: "status-h" }, "Status"),
    dl([
      ["Status", h("strong", {}, words[st.state])],
      st.revokedBy && ["Revoked by", [link(`/ui/entry/${st.revokedBy.entry.index}`, `entry ${st.revokedBy.entry.index}`), st.revokedBy.via !== delegationOf(e).id ? ` (revocation of the ancestor ${st.revokedBy.via}, which cascades)` : "", st.revokedBy.entry.parsed.payload.reason ? `: \u201c${st.revokedBy.entry.parsed.payload.reason}\u201d` : ""]],
      ["Expires", delegationOf(e).expires_at],
      e.serverStatus && ["The server says", `${e.serverStatus.state}${e.serverStatus.revokedVia ? ` via ${e.serverStatus.revokedVia}` : ""}${e.serverStatus.state !== st.state && !(e.serverStatus.state === "not_yet_valid") ? " \u2014 DIFFERS from what the verified entries show" : ""}`],
    ]),
    h("p", { class: "note" }, "Derived from the verified entries the log listed under this delegation and its ancestors; an audit of the whole log (warrant audit) also proves that no other revocation exists."));
  const tokens = fact("section", { id: "tokens", "aria-labelledby": "tokens-h" }, st.verified, st.error, h("h2", { id: "tokens-h" }, `Tokens issued under it (${st.tokens.length})`));
  if (st.tokens.length) {
    tokens.append(h("table", {}, h("caption", {}, "Token exchanges recorded under this delegation"),
      h("thead", {}, h("tr", {}, ["Check", "Entry", "Outcome", "Requester", "Audience", "Scopes", "Expires", "jti"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, st.tokens.map((t) => mark(h("tr", {}, h("td", {}, badge(t.verified, t.error)), h("td", {}, link(`/ui/entry/${t.index}`, String(t.index))),
        h("td", {}, t.parsed.decision.outcome), h("td", {}, t.parsed.token.requester), h("td", {}, t.parsed.token.audience),
        h("td", {}, list(t.parsed.token.scopes || [])), h("td", {}, t.parsed.token.expires_at), h("td", {}, h("code", {}, t.parsed.token.jti))), t.verified)))));
  } else tokens.append(h("p", {}, "None."));
  return h("div", {}, sec, tokens);
}

// tlogProofDownload offers a verified entry's tlog-proof, the file
// `warrant verify` checks offline; an entry that failed its checks offers
// nothing, so no download ever carries what the page could not verify.
export function tlogProofDownload(e, label = "Download tlog-proof") {
  return e.verified && e.tlogProof ? downloadButton(label, `entry-${e.index}.tlog-proof`, "text/plain", e.tlogProof) : null;
}

export async function bundleDownload(view, id, label = "Download chain bundle") {
  try {
    const r = await view.api.rpc("GetChainBundle", { delegationId: id });
    return h("p", {}, downloadButton(label, `${id}.bundle`, "application/json", b64decode(r.bundle)),
      " (verify it offline with ", h("code", {}, "warrant verify"), ")");
  } catch (err) {
    return h("p", { class: "note" }, `No chain bundle: ${err.message}`);
  }
}

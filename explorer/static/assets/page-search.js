// page-search.js: search by delegation id, SPIFFE ID, task path, entry
// index, entry id or token id (jti). Indexes, delegation ids and agents are
// answered by the log's indexes; the rest by scanning SCAN_LIMIT entries at
// a time (GetEntries), the most recent first, each match then fetched with
// its own proof and verified; a link scans the SCAN_LIMIT entries before,
// so the whole log can be searched, a step at a time.

import { h, link, badge, mark, errorBox, shortID } from "./dom.js";
import { b64decode } from "./verify.js";
import { parseLeaf, entryID, mismatch } from "./log.js";
import { navigate } from "./app.js";
import { tlogProofDownload, bundleDownload } from "./page-entry.js";
import { delegationOf, isAccepted } from "./facts.js";

export const SCAN_LIMIT = 1000;
const MAX_RESULTS = 50;
const text = new TextDecoder();

export async function searchPage(out, view, q, before = "") {
  out.append(h("h1", {}, "Search the log"));
  const input = h("input", { id: "q", name: "q", type: "search", value: q, autocomplete: "off", spellcheck: "false",
    "aria-describedby": "q-help", placeholder: "dlg_triage, spiffe://example.org/agent/x, /tickets, 42, sha256:…" });
  const form = h("form", { role: "search", "aria-label": "Search the log", onsubmit: (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (v) go(v);
  } }, h("label", { for: "q" }, "Delegation id, SPIFFE ID, task path, entry index, entry id or token id"), " ", input, " ", h("button", { type: "submit" }, "Search"),
  h("p", { id: "q-help", class: "note" }, `Task paths, entry ids and token ids are looked for among ${SCAN_LIMIT} entries at a time, the latest first; a link then looks further back.`));
  out.append(form);
  if (!view) {
    out.append(h("p", {}, "Pin the log's verifier key above to search."));
    return;
  }
  if (q) out.append(await results(view, q, /^[0-9]+$/.test(before) ? BigInt(before) : null));
}

function go(v) {
  if (/^(0|[1-9][0-9]*)$/.test(v)) return navigate(`/ui/entry/${v}`);
  if (v.startsWith("spiffe://")) return navigate(`/ui/agent/${encodeURIComponent(v)}`);
  navigate(`/ui/?q=${encodeURIComponent(v)}`);
}

async function results(view, q, before) {
  const sec = h("section", { id: "results", "aria-labelledby": "results-h" }, h("h2", { id: "results-h" }, `Results for \u201c${q}\u201d`));
  let found = [];
  try {
    if (before === null && !q.startsWith("/") && !q.startsWith("sha256:")) {
      try {
        found.push(await view.getEntry({ delegationId: q }));
      } catch (e) {
        if (e.reason !== "not_found" && e.code !== "not_found") throw e;
      }
    }
    const scan = await findEntries(view, q, before);
    for (const e of scan) if (!found.some((f) => f.index === e.index)) found.push(e);
    if (scan.to > scan.from) sec.append(h("p", { id: "scanned", class: "note" }, `Entries ${scan.from} to ${scan.to - 1n} scanned${before === null ? " (the latest)" : ""}.`));
    if (scan.from > 0n) sec.append(h("p", {}, link(`/ui/?q=${encodeURIComponent(q)}&before=${scan.from}`, `Look further back: the ${scan.from < BigInt(SCAN_LIMIT) ? scan.from : SCAN_LIMIT} entries before entry ${scan.from}`)));
  } catch (e) {
    sec.append(errorBox(e));
    return sec;
  }
  if (!found.length) {
    sec.append(h("p", {}, "Nothing found."));
    return sec;
  }
  // Downloads only for what verified: its tlog-proof, and for an accepted
  // delegation its chain bundle.
  const items = await Promise.all(found.map(async (e) => {
    const d = e.verified ? delegationOf(e) : null;
    return mark(h("li", {}, badge(e.verified, e.error), " ",
      link(`/ui/entry/${e.index}`, `entry ${e.index}`), ` ${e.parsed?.kind}: `, describe(e), " ",
      tlogProofDownload(e, `tlog-proof of entry ${e.index}`),
      d && isAccepted(e) ? await bundleDownload(view, d.id, `chain bundle of ${d.id}`) : null), e.verified);
  }));
  sec.append(h("ul", { class: "results" }, items));
  return sec;
}

export function describe(e) {
  const p = e.parsed || {};
  const d = p.kind === "delegation" ? p.payload : null;
  if (d) return `${d.id} \u2014 ${d.issuer} \u2192 ${d.delegate}, task ${d.task} (${p.decision.outcome})`;
  if (p.kind === "token") return `token ${p.token.jti} for ${p.token.requester} under ${p.token.delegation} (${p.decision.outcome})`;
  if (p.kind === "revocation") return `of ${p.payload.delegation} (${p.decision.outcome})`;
  if (p.kind === "key_binding") return `${p.payload.agent} (${p.payload.tier}${p.payload.revoked ? ", revoked" : ""})`;
  return shortID(e.id || e.claimedId);
}

// findEntries scans the SCAN_LIMIT entries before entry before (null: the
// latest SCAN_LIMIT) for q (an entry id, a delegation id, a task path, a
// token jti) and returns the matches, each fetched again by index with its
// inclusion proof and verified; .from and .to are the range scanned.
export async function findEntries(view, q, before = null) {
  const cp = await view.latest();
  const size = before === null || before > cp.size ? cp.size : before;
  let start = size > BigInt(SCAN_LIMIT) ? size - BigInt(SCAN_LIMIT) : 0n;
  const from = start;
  const hits = [];
  while (start < size && hits.length < MAX_RESULTS) {
    const r = await view.api.rpc("GetEntries", { start: String(start), count: Number(size - start) });
    const leaves = r.leaves || [];
    if (!leaves.length) break;
    for (let i = 0; i < leaves.length; i++) {
      const leafText = text.decode(b64decode(leaves[i]));
      let p;
      try {
        p = parseLeaf(leafText);
      } catch {
        continue;
      }
      if (await matches(leafText, p, q)) hits.push(start + BigInt(i));
    }
    start += BigInt(leaves.length);
  }
  // The scan is not verified: each hit must match q again once fetched
  // with its proof.
  const found = await Promise.all(hits.slice(0, MAX_RESULTS).map((i) => view.getEntry({ index: String(i) })));
  for (const e of found) if (!e.parsed || !e.leafText || !(await matches(e.leafText, e.parsed, q))) mismatch(e, `the scan found ${q} at entry ${e.index}, which does not hold it`);
  found.from = from;
  found.to = size;
  return found;
}

async function matches(leafText, p, q) {
  if (q.startsWith("sha256:")) return (await entryID(leafText, p)) === q;
  if (q.startsWith("/")) {
    const task = p.payload?.task;
    return !!task && (task === q || task.startsWith(q.endsWith("/") ? q : q + "/"));
  }
  return p.payload?.id === q || p.token?.jti === q;
}

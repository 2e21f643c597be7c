// page-chain.js: a delegation's chain from the root grant to it, each hop
// showing what narrowed: scopes, data classes, destinations, task,
// lifetime, the delegate's tier, and any human approval.

import { h, link, fact, dl, list } from "./dom.js";
import { chain, delegationOf, lifetime, fmtDuration, signatures, config } from "./facts.js";
import { bundleDownload } from "./page-entry.js";

export async function chainPage(out, view, id) {
  const e = await view.getEntry({ delegationId: id });
  const ch = await chain(view, e);
  const cfg = (await config(view)).config;
  out.append(h("h1", {}, `Chain of ${id}`));
  out.append(h("p", {}, `${ch.length} link${ch.length > 1 ? "s" : ""}, from the root grant by ${delegationOf(ch[0]).issuer}. `,
    link(`/ui/blast-radius?delegation=${encodeURIComponent(id)}`, "Blast radius"), " \u00b7 ", link(`/ui/entry/${encodeURIComponent(id)}`, "Entry")));
  out.append(await bundleDownload(view, id));
  const ol = h("ol", { class: "chain", "aria-label": "Links, root grant first" });
  let prev = null;
  let prevTier = null;
  for (const link_ of ch) {
    const d = delegationOf(link_);
    const sigs = await signatures(view, link_, [d.issuer, d.delegate], cfg);
    const ok = link_.verified && sigs.every((s) => s.verified || s.unresolved);
    const approvals = sigs.filter((s) => s.signer?.who !== d.issuer);
    ol.append(fact("li", { class: "hop", "data-delegation": d.id }, ok, link_.error || sigs.find((s) => !s.verified)?.error,
      h("h2", {}, link(`/ui/entry/${link_.index}`, d.id), ` \u2014 entry ${link_.index}`),
      h("p", {}, `${d.issuer} \u2192 ${d.delegate}`),
      dl(narrowing(prev, d).concat([
        ["Tier of the delegate", await (async () => {
          const tier = await delegateTierText(view, d, link_);
          const narrowed = prevTier && prevTier.startsWith("execute") && tier.startsWith("draft");
          prevTier = tier;
          return h("span", {}, tier, narrowed ? h("span", { class: "narrowed" }, " \u2014 narrowed from execute") : "");
        })()],
        ["Human approval", approvals.length ? approvals.map((a) => `${a.signer?.who || a.keyid}${a.verified ? " (signature verified)" : a.unresolved ? " (signer not resolved, not checked)" : " (NOT VERIFIED)"}`).join("; ") : "none"],
        ["Decision", `${link_.parsed.decision.outcome}${link_.parsed.decision.policy_ids ? ` by ${list(link_.parsed.decision.policy_ids)}` : ""}`],
      ])),
    ));
    prev = d;
  }
  out.append(ol);
}

async function delegateTierText(view, d, e) {
  const entries = await view.list("ListAgentEntries", { agent: d.delegate }, 1000);
  const b = entries.filter((x) => x.parsed?.kind === "key_binding" && x.parsed.payload.agent === d.delegate && x.parsed.decision.outcome === "accepted" && x.index < e.index).pop();
  return b ? `${b.parsed.payload.tier}${b.parsed.payload.human ? " (human)" : ""}` : "unknown";
}

function setDiff(parent, child) {
  const removed = (parent || []).filter((x) => !(child || []).includes(x));
  return removed;
}

// narrowing lists what a hop kept and what it dropped from its parent.
export function narrowing(parent, d) {
  const rows = [];
  for (const [name, key] of [["Scopes", "scopes"], ["Data classes", "data_classes"], ["Destinations", "destinations"]]) {
    const kept = list(d[key] || []) || "(none)";
    const dropped = parent ? setDiff(parent[key], d[key]) : [];
    rows.push([name, h("span", {}, kept, dropped.length ? h("span", { class: "narrowed" }, ` \u2014 narrowed: dropped ${dropped.join(", ")}`) : parent ? " \u2014 unchanged" : "")]);
  }
  rows.push(["Task", h("span", {}, d.task, parent && parent.task !== d.task ? h("span", { class: "narrowed" }, ` \u2014 narrowed from ${parent.task}`) : parent ? " \u2014 unchanged" : "")]);
  const life = lifetime(d);
  rows.push(["Lifetime", h("span", {}, `${fmtDuration(life)} (${d.not_before} to ${d.expires_at})`,
    parent && Date.parse(d.expires_at) < Date.parse(parent.expires_at) ? h("span", { class: "narrowed" }, ` \u2014 ends before the parent (${parent.expires_at})`) : "")]);
  if (d.purpose) rows.push(["Purpose", d.purpose]);
  return rows;
}

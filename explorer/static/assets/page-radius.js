// page-radius.js: the blast radius of an agent or a delegation: everything
// downstream, drawn as a graph, counted by scope, data class and
// destination, filtered by time, and what revoking one delegation would cut
// (computed here; nothing is revoked).

import { h, link, downloadButton, fact, mark, badge } from "./dom.js";
import { delegationOf, isAccepted, isDenied } from "./facts.js";
import { layout, svg, dot, STATES } from "./graph.js";

export const MAX_NODES = 2000;

// radius walks the children index from the starting delegations, like the
// Go client's BlastRadius: delegations (accepted and denied), revocations
// and token exchanges, each verified; only accepted delegations have
// children.
export async function radius(view, start) {
  let starts = [];
  let failed = []; // listed entries that do not answer the question (log.js)
  if (start.delegation) starts = [await view.getEntry({ delegationId: start.delegation })];
  else {
    const es = await view.list("ListAgentEntries", { agent: start.agent }, MAX_NODES);
    failed = es.filter((e) => e.mismatch);
    starts = es.filter((e) => { const d = delegationOf(e); return d && !e.mismatch && (d.issuer === start.agent || d.delegate === start.agent); });
  }
  const seen = new Map();
  const roots = [];
  let truncated = false;
  for (const s of starts) {
    if (seen.has(s.index)) continue;
    if (seen.size >= MAX_NODES) { truncated = true; break; }
    const root = node(s, null);
    seen.set(s.index, root);
    roots.push(root);
    let level = [root];
    while (level.length && !truncated) {
      // One level at a time, with its delegations' children in a few
      // ListChildrenBatch requests.
      // Nothing is walked under an entry that is not the one asked for.
      const parents = level.filter((n) => delegationOf(n.entry) && isAccepted(n.entry) && !n.entry.mismatch);
      const kidsOf = await view.children(parents.map((n) => delegationOf(n.entry).id), MAX_NODES);
      const next = [];
      for (const n of parents) {
        const d = delegationOf(n.entry);
        for (const k of kidsOf.get(d.id)) {
          // (a child that does not name d.id is marked by log.js, and not walked)
          if (seen.has(k.index)) continue;
          if (seen.size >= MAX_NODES) { truncated = true; break; }
          const c = node(k, n);
          seen.set(k.index, c);
          n.children.push(c);
          next.push(c);
        }
        n.children.sort((a, b) => (a.entry.index < b.entry.index ? -1 : 1));
      }
      level = next;
    }
  }
  // A root under another root (an agent that issued and received in one
  // chain) is drawn once, under its parent.
  const all = [...seen.values()];
  classify(all);
  return { roots: roots.filter((r) => !r.parent), all, truncated, failed };
}

function node(entry, parent) {
  const d = delegationOf(entry);
  const p = entry.parsed || {};
  const name = d ? d.id : p.kind === "token" ? `token ${p.token.audience}` : p.kind === "revocation" ? `revokes ${p.payload.delegation}` : `entry ${entry.index}`;
  return { entry, parent, children: [], name, time: Date.parse(p.log_time) };
}

function classify(all, now = Date.now()) {
  const revoked = new Set(all.filter((n) => n.entry.parsed?.kind === "revocation" && isAccepted(n.entry)).map((n) => n.entry.parsed.payload.delegation));
  for (const n of all) {
    const p = n.entry.parsed || {};
    if (p.kind === "revocation") n.state = "revocation";
    else if (p.kind === "token") n.state = isAccepted(n.entry) ? "token" : "token_denied";
    else if (isDenied(n.entry)) n.state = "denied";
    else {
      const d = delegationOf(n.entry);
      let via = false;
      for (let a = n; a; a = a.parent) if (delegationOf(a.entry) && revoked.has(delegationOf(a.entry).id)) via = true;
      n.state = via ? "revoked" : Date.parse(d.expires_at) <= now ? "expired" : "active";
    }
  }
}

// cut lists what revoking target would end: its active descendants
// (delegations and unexpired tokens), itself included.
export function cut(target, now = Date.now()) {
  const out = [];
  const walk = (n) => {
    if (n.state === "active" || (n.state === "token" && Date.parse(n.entry.parsed.token.expires_at) > now)) out.push(n);
    n.children.forEach(walk);
  };
  walk(target);
  return out;
}

function counts(nodes) {
  const c = { scopes: new Map(), data_classes: new Map(), destinations: new Map() };
  for (const n of nodes) {
    const d = delegationOf(n.entry);
    if (!d || !isAccepted(n.entry)) continue;
    for (const k of Object.keys(c)) for (const v of d[k] || []) c[k].set(v, (c[k].get(v) || 0) + 1);
  }
  return c;
}

function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

export async function radiusPage(out, view, params) {
  const start = { agent: params.get("agent"), delegation: params.get("delegation") };
  const subject = start.delegation || start.agent;
  if (!subject) throw new Error("name an agent (?agent=) or a delegation (?delegation=)");
  out.append(h("h1", {}, `Blast radius of ${subject}`));
  const t0 = performance.now();
  const r = await radius(view, start);
  const unverified = r.all.filter((n) => !n.entry.verified);
  out.append(h("p", { id: "radius-summary", "data-verified": unverified.length || r.failed.length ? "false" : "true" },
    `${r.all.length} entries downstream${r.truncated ? ` (stopped at ${MAX_NODES})` : ""}; `,
    unverified.length ? h("strong", { role: "alert" }, `${unverified.length} NOT VERIFIED`) : r.failed.length ? "" : "every one verified in this browser",
    r.failed.length ? h("strong", { role: "alert" }, `${unverified.length ? "; " : ""}${r.failed.length} entries the log listed for ${subject} do not name it: NOT VERIFIED (${r.failed[0].error?.message})`) : "", ". ",
    start.agent ? link(`/ui/agent/${encodeURIComponent(start.agent)}`, "Agent timeline") : link(`/ui/chain/${encodeURIComponent(start.delegation)}`, "Chain")));
  if (!r.all.length) return;
  const times = r.all.map((n) => n.time).filter((t) => !isNaN(t));
  const from = h("input", { id: "from", type: "datetime-local", value: toLocalInput(Math.min(...times)) });
  const to = h("input", { id: "to", type: "datetime-local", value: toLocalInput(Math.max(...times) + 60000) });
  const target = h("select", { id: "cut-target" }, h("option", { value: "" }, "(choose a delegation)"),
    r.all.filter((n) => n.state === "active").map((n) => h("option", { value: String(n.entry.index) }, `${n.name} (entry ${n.entry.index})`)));
  const controls = h("form", { class: "controls", "aria-label": "Graph filters", onsubmit: (ev) => ev.preventDefault() },
    h("fieldset", {}, h("legend", {}, "Time range (log time)"), h("label", { for: "from" }, "From "), from, " ", h("label", { for: "to" }, "to "), to),
    h("fieldset", {}, h("legend", {}, "What would revoking this cut?"), h("label", { for: "cut-target" }, "Delegation "), target));
  const graphBox = h("div", { class: "graph", id: "graph-box", tabindex: "0", role: "region", "aria-label": "Graph (scrollable)" });
  const cutBox = h("div", { id: "cut-result", "aria-live": "polite" });
  const countsBox = h("section", { id: "counts", "aria-labelledby": "counts-h" });
  const dl_ = h("p", { class: "downloads" });
  const legend = h("ul", { class: "legend", "aria-label": "Legend" }, Object.entries(STATES).map(([k, v]) => h("li", { "data-state": k }, `${v.word}: ${v.dot}${v.dotStyle ? `, ${v.dotStyle}` : ""}`)));
  out.append(controls, legend, graphBox, cutBox, dl_, countsBox);

  const redraw = () => {
    const d0 = performance.now();
    const lo = Date.parse(from.value), hi = Date.parse(to.value);
    const inRange = (n) => (isNaN(lo) || n.time >= lo) && (isNaN(hi) || n.time <= hi);
    const keep = new Set();
    for (const n of r.all) if (inRange(n)) for (let a = n; a; a = a.parent) keep.add(a);
    const cutSet = new Set(target.value ? cut(r.all.find((n) => String(n.entry.index) === target.value)) : []);
    for (const n of r.all) {
      n.visibleChildren = n.children.filter((c) => keep.has(c));
      n.outside = !inRange(n);
      n.cut = cutSet.has(n);
    }
    const roots = r.roots.filter((n) => keep.has(n));
    const title = `Blast radius of ${subject}`;
    for (const n of r.all) n.inGrid = false;
    const size = layout(roots);
    const picture = svg(roots, size, title);
    graphBox.replaceChildren(picture);
    // Start with the first root in view (once the page is in the document).
    if (roots.length) setTimeout(() => { graphBox.scrollLeft = Math.max(0, roots[0].x - graphBox.clientWidth / 2); }, 0);
    const shown = r.all.filter((n) => keep.has(n) && !n.outside);
    const c = counts(shown);
    // The counts are derived from every entry shown: verified only if each was.
    const countsBad = shown.find((n) => !n.entry.verified)?.entry || r.failed[0];
    mark(countsBox, !countsBad);
    countsBox.replaceChildren(badge(!countsBad, countsBad && `entry ${countsBad.index} is not verified: ${countsBad.error?.message}`),
      h("h2", { id: "counts-h" }, "Accepted delegations by scope, data class and destination"),
      ...Object.entries({ Scope: c.scopes, "Data class": c.data_classes, Destination: c.destinations }).map(([name, m]) =>
        h("table", { class: "counts" }, h("caption", {}, `By ${name.toLowerCase()}`),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, name), h("th", { scope: "col" }, "Delegations"))),
          h("tbody", {}, [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v))))))));
    if (target.value) {
      const cs = [...cutSet];
      const tokens = cs.filter((n) => n.state === "token");
      // Derived from the target, everything under it, and its ancestors
      // and what is listed under them (a revocation there cascades).
      const t = r.all.find((n) => String(n.entry.index) === target.value);
      const inputs = [];
      for (let a = t.parent; a; a = a.parent) inputs.push(a, ...a.children);
      inputs.push(t);
      const walk = (n) => { inputs.push(n); n.children.forEach(walk); };
      t.children.forEach(walk);
      const cutBad = inputs.find((n) => !n.entry.verified)?.entry;
      cutBox.replaceChildren(h("h2", {}, "What revoking it would cut"),
        fact("p", { id: "cut-summary" }, !cutBad, cutBad && `entry ${cutBad.index} is not verified: ${cutBad.error?.message}`, " ", `Revoking entry ${target.value} would end ${cs.length - tokens.length} active delegation(s) and ${tokens.length} unexpired token(s). Nothing has been revoked.`),
        h("ul", {}, cs.map((n) => h("li", {}, link(`/ui/entry/${n.entry.index}`, n.name), ` (${STATES[n.state].word})`))));
    } else cutBox.replaceChildren();
    const svgText = '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(picture);
    dl_.replaceChildren(downloadButton("Download graph (SVG)", "blast-radius.svg", "image/svg+xml", svgText), " ",
      downloadButton("Download graph (DOT)", "blast-radius.dot", "text/vnd.graphviz", dot(roots, title)));
    out.dataset.drawMs = String(Math.round(performance.now() - d0));
  };
  from.addEventListener("change", redraw);
  to.addEventListener("change", redraw);
  target.addEventListener("change", redraw);
  redraw();
  out.dataset.renderMs = String(Math.round(performance.now() - t0));
}

// page-agent.js: an agent's timeline: every entry it issued, received or
// was registered by, in log order, each verified. An entry listed that does
// not name the agent is shown failed (log.js marks it).

import { h, link, badge, mark } from "./dom.js";
import { describe } from "./page-search.js";
import { namesAgent } from "./log.js";
import { tlogProofDownload } from "./page-entry.js";

export async function agentPage(out, view, agent) {
  out.append(h("h1", {}, `Agent ${agent}`));
  out.append(h("p", {}, link(`/ui/blast-radius?agent=${encodeURIComponent(agent)}`, "Blast radius of this agent"), " (its graph downloads as SVG and DOT there)"));
  const entries = await view.list("ListAgentEntries", { agent }, 2000);
  if (entries.truncated) out.append(h("p", { class: "note" }, "Only the first 2000 entries are shown."));
  if (!entries.length) {
    out.append(h("p", {}, "No entries name this agent."));
    return;
  }
  const table = h("table", { id: "timeline" }, h("caption", {}, "Timeline, oldest first"),
    h("thead", {}, h("tr", {}, ["Check", "Log time", "Entry", "Kind", "Role", "Outcome", "What", "Proof"].map((c) => h("th", { scope: "col" }, c)))));
  const tbody = h("tbody");
  for (const e of entries) {
    const p = e.parsed || {};
    tbody.append(mark(h("tr", {}, h("td", {}, badge(e.verified, e.error)), h("td", {}, h("time", { datetime: p.log_time }, p.log_time)),
      h("td", {}, link(`/ui/entry/${e.index}`, String(e.index))), h("td", {}, p.kind), h("td", {}, namesAgent(e, agent) ? role(p, agent) : "does not name this agent"),
      h("td", {}, p.decision?.outcome || ""), h("td", {}, describe(e)),
      h("td", {}, tlogProofDownload(e, `tlog-proof of entry ${e.index}`) || "\u2014")), e.verified));
  }
  table.append(tbody);
  out.append(table);
}

function role(p, agent) {
  const d = p.kind === "delegation" ? p.payload : null;
  if (d) return d.issuer === agent ? "issued" : d.delegate === agent ? "received" : "";
  if (p.kind === "key_binding") return "registered";
  if (p.kind === "token") return "exchanged";
  if (p.kind === "revocation") return "revoked";
  return "";
}

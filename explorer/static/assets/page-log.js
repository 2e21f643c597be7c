// page-log.js: the log's health: its size and root under the pinned key,
// consistency with the checkpoint this browser trusted, how long ago the
// last entry was appended, and the witnesses that cosigned the checkpoint.

import { h, link, fact, dl, badge, mark, errorBox, downloadButton } from "./dom.js";
import { hex } from "./verify.js";
import { describe } from "./page-search.js";
import { checkTiles } from "./tiles.js";

const RECENT = 10;

export async function logPage(out, view) {
  out.append(h("h1", {}, "Log health"));
  const before = await view.trusted();
  let cp, err;
  try {
    cp = await view.checkpoint(await view.api.checkpointText());
  } catch (e) {
    err = e;
  }
  if (!cp) {
    out.append(fact("section", { id: "checkpoint" }, false, err, h("h2", {}, "Checkpoint"), errorBox(err)));
    return;
  }
  let last = null;
  if (cp.size > 0n) last = await view.getEntry({ index: String(cp.size - 1n) });
  const age = last?.parsed ? (Date.now() - Date.parse(last.parsed.log_time)) / 1000 : null;
  out.append(fact("section", { id: "checkpoint", "aria-labelledby": "cp-h" }, true, null,
    h("h2", { id: "cp-h" }, "Latest checkpoint"),
    dl([
      ["Origin", cp.origin],
      ["Size", h("span", { id: "log-size" }, String(cp.size))],
      ["Root", h("code", {}, hex(cp.root))],
      ["Consistency", before ? `consistent with the checkpoint of size ${before.size} this browser trusted before` : "first checkpoint this browser trusts for this key"],
    ]),
    h("p", {}, downloadButton("Download checkpoint", "checkpoint", "text/plain", cp.note), " (the signed note, as ", h("code", {}, "GET /checkpoint"), " serves it)"),
  ));
  // Witness names come from cosignature lines the explorer cannot check (it
  // holds no witness keys): a claim of the server, marked apart from the
  // verified checkpoint.
  out.append(cp.cosigners.length
    ? fact("section", { id: "witnesses-section", "aria-labelledby": "wit-h", "data-claim": "server" }, false, "claimed by the server, signatures not checked",
      h("h2", { id: "wit-h" }, "Witnesses (cosignatures)"),
      h("ul", { id: "witnesses" }, cp.cosigners.map((w) => h("li", {}, w))),
      h("p", { class: "note" }, "These names are those of the checkpoint's other signature lines. The explorer holds no witness keys, so it checks only the log's own signature; use warrant verify --witness-policy to check the witnesses."))
    : h("section", { id: "witnesses-section", "aria-labelledby": "wit-h" }, h("h2", { id: "wit-h" }, "Witnesses (cosignatures)"), h("p", {}, "None on this checkpoint.")));
  if (last) {
    out.append(fact("section", { id: "freshness", "aria-labelledby": "fresh-h" }, last.verified, last.error,
      h("h2", { id: "fresh-h" }, "Last entry"),
      dl([["Appended", `${last.parsed?.log_time} (${age === null ? "?" : Math.max(0, Math.round(age))} s ago)`], ["Entry", link(`/ui/entry/${last.index}`, `${last.index}: ${describe(last)}`)]])));
  }
  if (last?.verified) {
    let res = null, err2 = null;
    try {
      res = await checkTiles(view.api, last, last.cp.size);
    } catch (e) {
      err2 = e;
    }
    out.append(fact("section", { id: "tiles", "aria-labelledby": "tiles-h" }, !!res, err2,
      h("h2", { id: "tiles-h" }, "Tiles"),
      h("p", {}, res ? [`The tlog-tiles API agrees: the hash in `, h("code", {}, res.tile), " and the leaf in ", h("code", {}, res.bundle), ` are those of the verified entry ${last.index}.`] : "The tlog-tiles API does not agree with the verified entry.")));
  }
  const start = cp.size > BigInt(RECENT) ? cp.size - BigInt(RECENT) : 0n;
  const recent = [];
  for (let i = cp.size - 1n; i >= start && i >= 0n; i--) recent.push(view.getEntry({ index: String(i) }));
  const entries = await Promise.all(recent);
  out.append(h("section", { id: "recent", "aria-labelledby": "recent-h" }, h("h2", { id: "recent-h" }, "Latest entries"),
    h("ul", {}, entries.map((e) => mark(h("li", {}, badge(e.verified, e.error), " ", link(`/ui/entry/${e.index}`, `entry ${e.index}`), ` ${e.parsed?.kind}: `, describe(e)), e.verified)))));
}

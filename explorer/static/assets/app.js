// app.js: the explorer's shell: the pinned key and API origin, the router
// and the pages. Routes (under /ui/): "" (search), entry/<index or id>,
// chain/<delegation id>, agent/<SPIFFE ID, URL-encoded>,
// blast-radius?agent=…|delegation=…, log.

import { parseVerifierKey } from "./verify.js";
import { Api } from "./api.js";
import { LogView } from "./log.js";
import { h, errorBox } from "./dom.js";
import { searchPage } from "./page-search.js";
import { entryPage } from "./page-entry.js";
import { chainPage } from "./page-chain.js";
import { agentPage } from "./page-agent.js";
import { radiusPage } from "./page-radius.js";
import { logPage } from "./page-log.js";

const KEY = "warrant-explorer/logkey";
const API = "warrant-explorer/api";
const main = document.getElementById("main");
let view = null;

// fragment reads #logkey=…&api=… : a link may carry the key (fragments are
// never sent to any server).
function fragment() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { logkey: p.get("logkey"), api: p.get("api") };
}

function checkOrigin(o) {
  if (!o) return "";
  const u = new URL(o);
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.origin !== o.replace(/\/$/, "")) throw new Error(`${o} is not an origin (https://host[:port])`);
  return u.origin;
}

async function pin(vkey, api) {
  const key = await parseVerifierKey(vkey);
  localStorage.setItem(KEY, key.text);
  localStorage.setItem(API, checkOrigin(api || ""));
  return key;
}

async function loadView() {
  const stored = localStorage.getItem(KEY);
  const status = document.getElementById("trust-status");
  if (!stored) {
    view = null;
    status.textContent = "No log key pinned: pin the log's verifier key to see verified facts.";
    document.getElementById("key-details").open = true;
    return;
  }
  const key = await parseVerifierKey(stored);
  const api = new Api(localStorage.getItem(API) || "");
  view = new LogView(api, key, localStorage);
  status.replaceChildren("Pinned log key: ", h("code", { id: "pinned-key" }, key.name), ` (key hash ${key.text.split("+")[1]})`, api.base ? ` \u2014 log at ${api.base}` : "");
}

async function offerFragmentKey() {
  const f = fragment();
  if (!f.logkey) return;
  const stored = localStorage.getItem(KEY);
  if (!stored) {
    await pin(f.logkey, f.api || "");
    return;
  }
  if (stored === f.logkey.trim() && (f.api === null || (localStorage.getItem(API) || "") === f.api)) return;
  // A link must not silently replace the key this browser trusts.
  const offer = document.getElementById("offer");
  offer.hidden = false;
  offer.replaceChildren(
    h("p", { role: "alert" }, "This link carries a different log key: ", h("code", {}, f.logkey), f.api ? ` for the log at ${f.api}` : "", ". Pages keep using the key already pinned unless you pin this one."),
    h("button", { type: "button", onclick: async () => { await pin(f.logkey, f.api || ""); offer.hidden = true; await loadView(); render(); } }, "Pin the link's key"),
  );
}

function setupKeyForm() {
  const form = document.getElementById("key-form");
  const err = document.getElementById("key-error");
  document.getElementById("api-origin").value = localStorage.getItem(API) || "";
  document.getElementById("vkey-file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (file) document.getElementById("vkey").value = (await file.text()).trim();
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      await pin(document.getElementById("vkey").value, document.getElementById("api-origin").value.trim());
      document.getElementById("key-details").open = false;
      await loadView();
      render();
    } catch (e) {
      err.hidden = false;
      err.textContent = `Not pinned: ${e.message}`;
    }
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    for (const k of Object.keys(localStorage)) if (k.startsWith("warrant-explorer/")) localStorage.removeItem(k);
    loadView().then(render);
  });
}

export function navigate(path) {
  history.pushState(null, "", path + location.hash);
  render();
}

async function render() {
  const url = new URL(location.href);
  const rest = url.pathname.replace(/^\/ui\/?/, "");
  const [page, ...args] = rest.split("/");
  const arg = decodeURIComponent(args.join("/"));
  main.dataset.ready = "false";
  main.replaceChildren(h("p", { "aria-busy": "true" }, "Loading and verifying\u2026"));
  const out = h("div", { class: "page", "data-page": page || "search" });
  view?.newPage();
  try {
    if (!view && page !== "") throw new Error("pin the log's verifier key first (above)");
    switch (page) {
      case "":
        await searchPage(out, view, url.searchParams.get("q") || "", url.searchParams.get("before") || "");
        break;
      case "entry":
        await entryPage(out, view, arg);
        break;
      case "chain":
        await chainPage(out, view, arg);
        break;
      case "agent":
        await agentPage(out, view, arg);
        break;
      case "blast-radius":
        await radiusPage(out, view, url.searchParams);
        break;
      case "log":
        await logPage(out, view);
        break;
      default:
        out.append(h("h1", {}, "Not found"), h("p", {}, `No page ${url.pathname}.`));
    }
  } catch (e) {
    out.append(errorBox(e));
  }
  const banner = bannerText(out);
  if (banner) out.prepend(h("p", { class: "banner-failed", role: "alert", id: "verification-failed" }, banner));
  main.replaceChildren(out);
  const title = out.querySelector("h1");
  document.title = title ? `${title.textContent} \u2014 warrant explorer` : "warrant explorer";
  main.dataset.ready = "true";
  // For measurements: the time from navigation to this page shown, every
  // check done (performance.getEntriesByName("explorer-ready")).
  performance.mark("explorer-ready");
}

// bannerText says why facts on the page are not verified: no key pinned,
// the log unreachable (a network or CORS error: nothing was checked), or
// checks that failed. What the server merely claims (data-claim, e.g.
// witness names) is marked on its own and raises no banner.
function bannerText(out) {
  const bad = [...out.querySelectorAll('[data-verified="false"]')].filter((el) => !el.closest("[data-claim]"));
  if (!bad.length) return "";
  if (!view) return "\u2717 No log key pinned: nothing on this page is verified. Pin the log's verifier key above.";
  const n = bad.length;
  const facts = `${n} fact${n > 1 ? "s" : ""}`;
  const reasons = bad.map((el) => el.dataset.reason).filter(Boolean);
  if (reasons.length && reasons.every((r) => r === "unavailable")) {
    return `\u2717 Could not reach the log (network or CORS error): ${facts} on this page could not be verified. Nothing was checked; this alone is no sign of tampering. Check the log API origin and that the log allows this page's origin.`;
  }
  return `\u2717 ${facts} on this page FAILED verification against the pinned key. Do not rely on what is marked NOT VERIFIED: the server, or something between it and you, sent data the log's key does not vouch for, or that does not answer what this page asked for.`;
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-nav]");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"));
  main.focus();
});
window.addEventListener("popstate", render);
// A link with another fragment to this same page does not reload it.
window.addEventListener("hashchange", async () => {
  await offerFragmentKey().catch(() => {});
  await loadView();
  render();
});

(async () => {
  setupKeyForm();
  try {
    await offerFragmentKey();
  } catch (e) {
    const err = document.getElementById("key-error");
    err.hidden = false;
    err.textContent = `The link's key was not pinned: ${e.message}`;
  }
  try {
    await loadView();
  } catch (e) {
    main.replaceChildren(errorBox(e));
  }
  await render();
})();

// dom.js: building the page. No innerHTML anywhere: every value from the
// log is set as text, so nothing it holds can become markup or script.

export function h(tag, attrs, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// link is an in-app link: the router handles it without a reload.
export function link(path, ...children) {
  return h("a", { href: path, "data-nav": true }, ...children);
}

// mark sets a fact's verification state, as data-verified and as text a
// reader sees (never colour alone), and returns the element.
export function mark(el, ok) {
  el.dataset.verified = ok ? "true" : "false";
  el.classList.add(ok ? "verified" : "unverified");
  return el;
}

// badge says in words whether the fact beside it was verified.
// A failure carries its reason code (data-reason), from which the page's
// banner tells an unreachable log from data that failed its checks.
export function badge(ok, error) {
  return ok
    ? h("span", { class: "badge ok", "data-verified": "true" }, "\u2713 verified")
    : h("span", { class: "badge bad", "data-verified": "false", "data-reason": error?.reason, role: "alert" }, `\u2717 NOT VERIFIED: ${error?.message || error || "check failed"}`);
}

// fact is a verified block: its content, marked, with a badge.
export function fact(tag, attrs, ok, error, ...children) {
  return mark(h(tag, attrs, badge(ok, error), ...children), ok);
}

export function dl(rows) {
  return h("dl", {}, rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function downloadButton(label, filename, type, content) {
  return h("button", {
    type: "button",
    class: "download",
    onclick: () => {
      const url = URL.createObjectURL(new Blob([content], { type }));
      const a = h("a", { href: url, download: filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    },
  }, label);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert", "data-verified": "false", "data-reason": err?.reason }, `Error: ${err?.message || err}`);
}

export function list(v) {
  return Array.isArray(v) ? v.join(", ") : v;
}

export function shortID(id) {
  return id && id.startsWith("sha256:") ? id.slice(0, 19) + "\u2026" : id;
}

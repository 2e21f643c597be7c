// graph.js: a blast radius as a picture. A simple layered tree layout
// (depth down, leaves side by side, parents centred over their children),
// drawn as SVG with presentation attributes only (so the downloaded file
// stands alone and the page needs no inline style), and written as DOT.
// Each state has its own shape and a word in its label, so nothing is told
// by colour alone.

import { h } from "./dom.js";

const W = 170, H = 46, GAPX = 24, GAPY = 70, PAD = 20;

// Shapes and words per node state.
export const STATES = {
  active: { word: "accepted", dot: "box", fill: "#e8f5e9", stroke: "#1b5e20" },
  revoked: { word: "REVOKED", dot: "box", dotStyle: "diagonals", fill: "#fdecea", stroke: "#b71c1c" },
  expired: { word: "expired", dot: "box", dotStyle: "dotted", fill: "#f5f5f5", stroke: "#616161" },
  denied: { word: "DENIED", dot: "octagon", fill: "#fff3e0", stroke: "#e65100" },
  revocation: { word: "revocation", dot: "invtriangle", fill: "#fce4ec", stroke: "#880e4f" },
  token: { word: "token", dot: "ellipse", fill: "#e3f2fd", stroke: "#0d47a1" },
  token_denied: { word: "token DENIED", dot: "ellipse", dotStyle: "dashed", fill: "#fff3e0", stroke: "#e65100" },
};

// GRID is the number of leaf children from which they are packed in a
// grid under their parent rather than side by side: a delegation that
// handed out hundreds of tasks stays readable.
const GRID = 7;

// layout assigns x, y to every node of a forest (roots: [{children}]) and
// returns the picture's size and the grids of packed leaves.
export function layout(roots) {
  let slot = 0;
  let maxY = 0;
  const grids = [];
  const place = (n, depth) => {
    n.depth = depth;
    n.y = PAD + depth * (H + GAPY);
    maxY = Math.max(maxY, n.y + H);
    const kids = n.visibleChildren || [];
    if (kids.length === 0) {
      n.x = PAD + slot * (W + GAPX);
      slot++;
      return;
    }
    const leaves = kids.filter((c) => !(c.visibleChildren || []).length);
    const inner = kids.filter((c) => (c.visibleChildren || []).length);
    const xs = [];
    if (leaves.length >= GRID) {
      const cols = Math.min(6, Math.ceil(Math.sqrt(leaves.length)));
      const x0 = PAD + slot * (W + GAPX);
      const y0 = n.y + H + GAPY;
      leaves.forEach((c, i) => {
        c.depth = depth + 1;
        c.x = x0 + (i % cols) * (W + GAPX);
        c.y = y0 + Math.floor(i / cols) * (H + 14);
        c.inGrid = true;
        maxY = Math.max(maxY, c.y + H);
      });
      const width = cols * (W + GAPX) - GAPX;
      grids.push({ parent: n, x: x0 - 8, y: y0 - 8, width: width + 16, height: Math.ceil(leaves.length / cols) * (H + 14) + 2, count: leaves.length });
      xs.push(x0 + (width - W) / 2);
      slot += cols;
    } else {
      for (const c of leaves) {
        place(c, depth + 1);
        xs.push(c.x);
      }
    }
    for (const c of inner) {
      place(c, depth + 1);
      xs.push(c.x);
    }
    n.x = (Math.min(...xs) + Math.max(...xs)) / 2;
  };
  for (const r of roots) place(r, 0);
  return { width: PAD * 2 + Math.max(slot, 1) * (W + GAPX) - GAPX, height: maxY + PAD, grids };
}

function shape(n, st) {
  const { x, y } = n;
  const common = { fill: st.fill, stroke: st.stroke, "stroke-width": n.cut ? 4 : 1.5 };
  switch (n.state) {
    case "denied": {
      const c = 10;
      const pts = [[x + c, y], [x + W - c, y], [x + W, y + c], [x + W, y + H - c], [x + W - c, y + H], [x + c, y + H], [x, y + H - c], [x, y + c]];
      return [h("svg:polygon", { ...common, points: pts.map((p) => p.join(",")).join(" ") })];
    }
    case "revocation":
      return [h("svg:polygon", { ...common, points: `${x},${y} ${x + W},${y} ${x + W / 2},${y + H}` })];
    case "token":
    case "token_denied":
      return [h("svg:ellipse", { ...common, cx: x + W / 2, cy: y + H / 2, rx: W / 2, ry: H / 2, "stroke-dasharray": n.state === "token_denied" ? "6 3" : null })];
    case "revoked":
      return [h("svg:rect", { ...common, x, y, width: W, height: H }), h("svg:line", { x1: x, y1: y + H, x2: x + W, y2: y, stroke: st.stroke, "stroke-width": 1.5 })];
    case "expired":
      return [h("svg:rect", { ...common, x, y, width: W, height: H, rx: 12, "stroke-dasharray": "2 3" })];
    default:
      return [h("svg:rect", { ...common, x, y, width: W, height: H, rx: 3 })];
  }
}

function truncate(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "\u2026" : s;
}

// svg draws the laid-out forest; nodes are links to their entries,
// focusable and named for assistive tools.
export function svg(roots, size, title) {
  const nodes = [];
  const walk = (n) => {
    nodes.push(n);
    (n.visibleChildren || []).forEach(walk);
  };
  roots.forEach(walk);
  // A grid of leaves gets one edge, to its frame.
  const edges = nodes.flatMap((n) => (n.visibleChildren || []).filter((c) => !c.inGrid).map((c) =>
    h("svg:line", { x1: n.x + W / 2, y1: n.y + H, x2: c.x + W / 2, y2: c.y, stroke: "#555", "stroke-width": 1.2, "marker-end": "url(#arrow)" })));
  for (const g of size.grids || []) {
    edges.push(h("svg:line", { x1: g.parent.x + W / 2, y1: g.parent.y + H, x2: g.x + g.width / 2, y2: g.y, stroke: "#555", "stroke-width": 1.2, "marker-end": "url(#arrow)" }),
      h("svg:rect", { x: g.x, y: g.y, width: g.width, height: g.height, fill: "none", stroke: "#888", "stroke-dasharray": "4 3", rx: 6 }),
      h("svg:text", { x: g.x + g.width - 6, y: g.y - 4, "text-anchor": "end", "font-family": "sans-serif", "font-size": 11, fill: "#333" }, `${g.count} entries under ${g.parent.name}`));
  }
  const els = nodes.map((n) => {
    const st = STATES[n.state];
    const label = `${st.word}${n.cut ? " \u2014 would be cut" : ""}${n.outside ? " (outside time range)" : ""}`;
    return h("svg:a", { href: `/ui/entry/${n.entry.index}`, "data-nav": true, class: `node ${n.state}${n.cut ? " cut" : ""}`,
      "data-index": String(n.entry.index), "data-state": n.state, "data-verified": n.entry.verified ? "true" : "false",
      "aria-label": `${n.name}: ${label}, entry ${n.entry.index}${n.entry.verified ? ", verified" : ", NOT VERIFIED"}`, opacity: n.outside ? 0.45 : null },
    h("svg:title", {}, `${n.name} (${label}; entry ${n.entry.index})`),
    ...shape(n, st),
    h("svg:text", { x: n.x + W / 2, y: n.y + 18, "text-anchor": "middle", "font-family": "sans-serif", "font-size": 12, fill: "#000" }, truncate(n.name, 24)),
    h("svg:text", { x: n.x + W / 2, y: n.y + 34, "text-anchor": "middle", "font-family": "sans-serif", "font-size": 11, "font-weight": "bold", fill: "#000" },
      `${n.entry.verified ? "\u2713" : "\u2717 UNVERIFIED"} ${label.length > 22 ? st.word + (n.cut ? " \u2702" : "") : label}`));
  });
  return h("svg:svg", { width: size.width, height: size.height, viewBox: `0 0 ${size.width} ${size.height}`,
    role: "img", "aria-labelledby": "graph-title", id: "graph" },
  h("svg:title", { id: "graph-title" }, title),
  h("svg:defs", {}, h("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" },
    h("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#555" }))),
  h("svg:rect", { x: 0, y: 0, width: size.width, height: size.height, fill: "#fff" }),
  ...edges, ...els);
}

function dotQuote(s) {
  return '"' + String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") + '"';
}

// dot writes the forest in Graphviz DOT.
export function dot(roots, title) {
  const lines = [`digraph ${dotQuote(title)} {`, "  rankdir=TB;", '  node [fontname="sans-serif"];'];
  const walk = (n) => {
    const st = STATES[n.state];
    const style = ["filled", st.dotStyle].filter(Boolean).join(",");
    lines.push(`  e${n.entry.index} [label=${dotQuote(`${n.name}\n${st.word}${n.cut ? " (would be cut)" : ""}\nentry ${n.entry.index}`)}, shape=${st.dot}, style=${dotQuote(style)}, fillcolor=${dotQuote(st.fill)}, color=${dotQuote(st.stroke)}];`);
    for (const c of n.visibleChildren || []) {
      lines.push(`  e${n.entry.index} -> e${c.entry.index};`);
      walk(c);
    }
  };
  roots.forEach(walk);
  lines.push("}");
  return lines.join("\n") + "\n";
}

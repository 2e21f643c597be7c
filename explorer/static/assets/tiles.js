// tiles.js: reading the C2SP tlog-tiles API (GET /tile/0/<N>[.p/<W>] and
// /tile/entries/<N>[.p/<W>]), which the log serves for mirrors and caches,
// to check that it agrees with entries verified through the RPCs.

import { leafHash, equal } from "./verify.js";

// tilePath writes a tile index as C2SP tlog-tiles does: groups of three
// digits, all but the last prefixed "x" (1234067 -> x001/x234/067).
export function tilePath(n) {
  let s = String(n).padStart(3, "0");
  while (s.length % 3) s = "0" + s;
  const groups = s.match(/.{3}/g);
  return groups.map((g, i) => (i < groups.length - 1 ? "x" + g : g)).join("/");
}

// tileSuffix is ".p/<W>" for the partial last tile of a tree of size, or "".
function tileSuffix(n, size) {
  const full = size / 256n;
  return n === full && size % 256n !== 0n ? `.p/${size % 256n}` : "";
}

async function get(api, path) {
  const resp = await fetch(`${api.base}${path}`, { credentials: "omit", referrerPolicy: "no-referrer" });
  if (!resp.ok) throw new Error(`GET ${path}: HTTP ${resp.status}`);
  return new Uint8Array(await resp.arrayBuffer());
}

// checkTiles fetches the level-0 tile and the entry bundle holding a
// verified entry e (in a tree of size) and requires the tile's hash and the
// bundle's leaf at its position to be that entry's.
export async function checkTiles(api, e, size) {
  const n = e.index / 256n;
  const j = Number(e.index % 256n);
  const name = tilePath(n) + tileSuffix(n, size);
  const tile = await get(api, `/tile/0/${name}`);
  if (!equal(tile.subarray(32 * j, 32 * j + 32), await leafHash(e.leaf))) throw new Error(`the hash in /tile/0/${name} is not the entry's leaf hash`);
  const bundle = await get(api, `/tile/entries/${name}`);
  let o = 0;
  for (let k = 0; k <= j; k++) {
    if (o + 2 > bundle.length) throw new Error(`/tile/entries/${name} ends early`);
    const len = (bundle[o] << 8) | bundle[o + 1];
    if (k === j && !equal(bundle.subarray(o + 2, o + 2 + len), e.leaf)) throw new Error(`the leaf in /tile/entries/${name} is not the entry's`);
    o += 2 + len;
  }
  return { tile: `/tile/0/${name}`, bundle: `/tile/entries/${name}` };
}

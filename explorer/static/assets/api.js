// api.js: the log's public read API from the browser: Connect RPCs in the
// Connect protocol's JSON encoding over POST, and GET /checkpoint. Nothing
// here is trusted: log.js verifies every answer before a page shows it.

export class ApiError extends Error {
  constructor(code, reason, message) {
    super(`${reason || code}: ${message}`);
    this.code = code;
    this.reason = reason || code;
  }
}

export class Api {
  // base is the log's origin ("" for the origin this page came from).
  constructor(base) {
    this.base = base || "";
  }

  async rpc(method, body) {
    let resp;
    try {
      resp = await fetch(`${this.base}/warrant.v1.LedgerService/${method}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new ApiError("unavailable", "unavailable", `cannot reach the log at ${this.base || location.origin}: ${e.message}`);
    }
    let j;
    try {
      j = await resp.json();
    } catch {
      throw new ApiError("unknown", "unknown", `${method}: HTTP ${resp.status} without a JSON answer`);
    }
    if (!resp.ok) {
      const reason = j?.details?.[0]?.debug?.reason;
      throw new ApiError(j.code || String(resp.status), reason, j.message || `HTTP ${resp.status}`);
    }
    return j;
  }

  async checkpointText() {
    let resp;
    try {
      resp = await fetch(`${this.base}/checkpoint`, { credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
    } catch (e) {
      throw new ApiError("unavailable", "unavailable", `cannot reach the log at ${this.base || location.origin}: ${e.message}`);
    }
    if (!resp.ok) throw new ApiError(String(resp.status), "unavailable", "GET /checkpoint failed");
    return resp.text();
  }

  // pages calls a paginated List method from start until it ends or max
  // entries.
  async pages(method, body, max, start = "0") {
    const out = [];
    for (;;) {
      const r = await this.rpc(method, { ...body, startIndex: start, pageSize: 100 });
      out.push(...(r.entries || []));
      if (!r.nextStartIndex || r.nextStartIndex === "0" || out.length >= max) {
        return { entries: out, truncated: !!r.nextStartIndex && r.nextStartIndex !== "0" };
      }
      start = r.nextStartIndex;
    }
  }
}

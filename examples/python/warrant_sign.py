#!/usr/bin/env python3
"""A warrant delegation signer in standard-library Python, written from
docs/formats.md alone: canonical JSON, DSSE PAE, Ed25519, key ids, the
canonical envelope, and an Append call over raw HTTP (Connect JSON).

    python3 warrant_sign.py --check VECTORS_DIR
        re-encodes and signs the vectors' Ed25519 delegations and prints
        what it produced as one JSON object (a test compares it with the
        vectors).
    python3 warrant_sign.py --key KEY.pem --payload PAYLOAD.json [--server URL]
        signs the delegation described by PAYLOAD.json (members as in
        docs/formats.md) with an Ed25519 PKCS #8 key, prints the envelope,
        and with --server appends it and prints the server's answer.

Ed25519 is the RFC 8032 reference algorithm: slow, not constant-time, fine
for an example, wrong for production keys.
"""

import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request

PAYLOAD_TYPE_DELEGATION = "application/vnd.warrant.delegation.v1+json"

# ---- Ed25519 (RFC 8032, section 6) -------------------------------------

_p = 2**255 - 19
_q = 2**252 + 27742317777372353535851937790883648493
_d = -121665 * pow(121666, _p - 2, _p) % _p
_sqrt_m1 = pow(2, (_p - 1) // 4, _p)


def _add(P, Q):
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % _p
    B = (P[1] + P[0]) * (Q[1] + Q[0]) % _p
    C = 2 * P[3] * Q[3] * _d % _p
    D = 2 * P[2] * Q[2] % _p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def _mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _add(Q, P)
        P = _add(P, P)
        s >>= 1
    return Q


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(_d * y * y + 1, _p - 2, _p)
    x = pow(x2, (_p + 3) // 8, _p)
    if (x * x - x2) % _p != 0:
        x = x * _sqrt_m1 % _p
    if (x & 1) != sign:
        x = _p - x
    return x


_gy = 4 * pow(5, _p - 2, _p) % _p
_gx = _recover_x(_gy, 0)
_G = (_gx, _gy, 1, _gx * _gy % _p)


def _compress(P):
    zinv = pow(P[2], _p - 2, _p)
    x, y = P[0] * zinv % _p, P[1] * zinv % _p
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _expand(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public(seed):
    return _compress(_mul(_expand(seed)[0], _G))


def ed25519_sign(seed, msg):
    a, prefix = _expand(seed)
    A = _compress(_mul(a, _G))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % _q
    R = _compress(_mul(r, _G))
    h = int.from_bytes(hashlib.sha512(R + A + msg).digest(), "little") % _q
    return R + int.to_bytes((r + h * a) % _q, 32, "little")


# ---- keys ---------------------------------------------------------------

_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


def seed_from_pkcs8_pem(pem):
    """The 32-byte seed of an Ed25519 PKCS #8 PEM key (as warrant keygen writes)."""
    body = "".join(l for l in pem.strip().splitlines() if not l.startswith("-----"))
    der = base64.b64decode(body)
    if len(der) != 48 or not der.startswith(_ED25519_PKCS8_PREFIX):
        raise ValueError("not an Ed25519 PKCS #8 private key")
    return der[16:]


def key_id(seed):
    """sha256: and the hex SHA-256 of the public key's SPKI DER."""
    spki = _ED25519_SPKI_PREFIX + ed25519_public(seed)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


# ---- canonical JSON (docs/formats.md, "Canonical JSON") -----------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif c < 0x20 or ch in "<>&" or c in (0x2028, 0x2029):
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# Delegation members in schema order: (name, kind, optional).
_DELEGATION = [
    ("id", "str", False), ("issuer", "str", False), ("delegate", "str", False),
    ("root_subject", "str", False), ("parent", "str", True), ("task", "str", False),
    ("scopes", "set", True), ("data_classes", "set", True), ("destinations", "set", True),
    ("not_before", "str", False), ("expires_at", "str", False), ("nonce", "str", False),
    ("trace_id", "str", True), ("a2a_task_id", "str", True), ("mcp_request_id", "str", True),
    ("purpose", "str", True),
]


def canonical_delegation(d):
    """The canonical payload bytes of a delegation given as a dict."""
    unknown = set(d) - {name for name, _, _ in _DELEGATION}
    if unknown:
        raise ValueError("unknown members: %s" % sorted(unknown))
    parts = []
    for name, kind, optional in _DELEGATION:
        v = d.get(name, [] if kind == "set" else "")
        if optional and not v:
            continue
        if kind == "set":
            items = sorted(set(v), key=lambda x: x.encode("utf-8"))
            enc = "[" + ",".join(json_string(x) for x in items) + "]"
        else:
            enc = json_string(v)
        parts.append(json_string(name) + ":" + enc)
    return ("{" + ",".join(parts) + "}").encode("utf-8")


# ---- DSSE ---------------------------------------------------------------

def pae(payload_type, payload):
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def envelope(payload_type, payload, seeds):
    """The canonical envelope of payload signed by every seed."""
    sigs = sorted((key_id(s), ed25519_sign(s, pae(payload_type, payload))) for s in seeds)
    b64 = lambda b: base64.b64encode(b).decode("ascii")
    return (
        '{"payloadType":' + json_string(payload_type)
        + ',"payload":' + json_string(b64(payload))
        + ',"signatures":['
        + ",".join('{"keyid":' + json_string(k) + ',"sig":' + json_string(b64(s)) + "}" for k, s in sigs)
        + "]}"
    )


# ---- the API over raw HTTP (docs/formats.md, "Calling the API") ---------

def append(server, env):
    """POSTs env to Append; returns (HTTP status, decoded JSON answer)."""
    body = json.dumps({"envelope": base64.b64encode(env.encode("utf-8")).decode("ascii")}).encode()
    req = urllib.request.Request(
        server.rstrip("/") + "/warrant.v1.LedgerService/Append", data=body, method="POST",
        headers={"Content-Type": "application/json", "Connect-Protocol-Version": "1"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        # A denial or refusal: {"code", "message", "details": [{"type",
        # "value", "debug"}]}; the first detail's debug holds the reason.
        return e.code, json.load(e)


def check(vectors):
    with open(vectors + "/keys.json", encoding="utf-8") as f:
        keys = {k["name"]: k for k in json.load(f)["keys"]}
    with open(vectors + "/envelopes.json", encoding="utf-8") as f:
        envs = json.load(f)["envelopes"]
    with open(vectors + "/canonical_json.json", encoding="utf-8") as f:
        strings = json.load(f)["strings"]
    out = {"key_ids": {}, "envelopes": {}, "strings": [json_string(c["value"]) for c in strings]}
    for name, k in keys.items():
        if k["type"] == "ed25519":
            out["key_ids"][name] = key_id(seed_from_pkcs8_pem(k["private_pkcs8_pem"]))
    for e in envs:
        if e["payload_type"] != PAYLOAD_TYPE_DELEGATION or not e["deterministic"]:
            continue
        payload = canonical_delegation(json.loads(e["payload_text"]))
        seeds = [seed_from_pkcs8_pem(keys[s]["private_pkcs8_pem"]) for s in e["signers"]]
        out["envelopes"][e["name"]] = envelope(PAYLOAD_TYPE_DELEGATION, payload, seeds)
    return out


def main(argv):
    args = dict(zip(argv[1::2], argv[2::2]))
    if "--check" in args:
        json.dump(check(args["--check"]), sys.stdout, ensure_ascii=True)
        print()
        return 0
    if "--key" not in args or "--payload" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args["--key"], encoding="ascii") as f:
        seed = seed_from_pkcs8_pem(f.read())
    with open(args["--payload"], encoding="utf-8") as f:
        payload = canonical_delegation(json.load(f))
    env = envelope(PAYLOAD_TYPE_DELEGATION, payload, [seed])
    if "--server" not in args:
        print(env)
        return 0
    status, answer = append(args["--server"], env)
    print(json.dumps({"status": status, "answer": answer}))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

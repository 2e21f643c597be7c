// An agent written without warrant's code. Given a warrant server, a
// delegation and the delegate's private key, it
//
//   1. discovers the token endpoint and the JWKS from the server's RFC 8414
//      metadata,
//   2. makes its own DPoP proof (RFC 9449) with the `jose` library,
//   3. exchanges the delegation for an access token (RFC 8693) with a plain
//      form-encoded fetch,
//   4. verifies the token from the JWKS alone (RFC 9068: typ at+jwt, iss,
//      aud, exp) and that it is bound to its own key (cnf.jkt is the RFC 7638
//      thumbprint of its public key),
//   5. checks that the endpoint refuses the same proof replayed and a proof
//      made for another URL,
//
// and prints one JSON object: {"ok": true, ...} or {"ok": false, "step",
// "error"} (exit 1). Usage:
//
//   node exchange.js --server URL --delegation ID --key FILE --resource URI [--scope "a b"]
//
// FILE is the private key as warrant keeps it (PKCS#8 PEM, from `warrant
// keygen`), or a private JWK (JSON). Ed25519 keys sign EdDSA proofs, ECDSA
// P-256 keys ES256.

import { readFileSync } from 'node:fs';
import { createPrivateKey, randomUUID } from 'node:crypto';
import {
  SignJWT,
  importPKCS8,
  importJWK,
  exportJWK,
  calculateJwkThumbprint,
  createRemoteJWKSet,
  jwtVerify,
  decodeProtectedHeader,
} from 'jose';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const DELEGATION_ID = 'urn:warrantlog:params:oauth:token-type:delegation-id';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

class StepError extends Error {
  constructor(step, message) {
    super(message);
    this.step = step;
  }
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || i + 1 >= argv.length) {
      throw new StepError('usage', `unexpected argument ${a}`);
    }
    out[a.slice(2)] = argv[++i];
  }
  for (const name of ['server', 'delegation', 'key', 'resource']) {
    if (!out[name]) throw new StepError('usage', `--${name} is required`);
  }
  return out;
}

// loadKey reads a PKCS#8 PEM or a private JWK and returns the signing key,
// its alg and its public JWK.
async function loadKey(path) {
  const text = readFileSync(path, 'utf8');
  let jwk;
  if (text.trimStart().startsWith('{')) {
    jwk = JSON.parse(text);
  } else {
    // Node's own parser only names the key type; jose imports it.
    const k = createPrivateKey(text);
    const pkcs8 = k.export({ type: 'pkcs8', format: 'pem' });
    const alg = algOf(k.asymmetricKeyType, k.asymmetricKeyDetails?.namedCurve);
    const priv = await importPKCS8(pkcs8, alg, { extractable: true });
    jwk = await exportJWK(priv);
  }
  const alg = jwk.kty === 'OKP' && jwk.crv === 'Ed25519' ? 'EdDSA'
    : jwk.kty === 'EC' && jwk.crv === 'P-256' ? 'ES256' : null;
  if (!alg) throw new StepError('key', `unsupported key ${jwk.kty}/${jwk.crv}`);
  const { d, ...pub } = jwk;
  if (!d) throw new StepError('key', 'the JWK is not a private key');
  const priv = await importJWK(jwk, alg);
  // The proof's jwk is the public key with only its required members.
  const publicJwk = pub.kty === 'OKP'
    ? { kty: pub.kty, crv: pub.crv, x: pub.x }
    : { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y };
  return { priv, alg, publicJwk };
}

function algOf(type, curve) {
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'ec' && curve === 'prime256v1') return 'ES256';
  throw new StepError('key', `unsupported key type ${type} ${curve ?? ''}`);
}

// proof makes a DPoP proof JWT (RFC 9449 section 4.2).
async function proof(key, method, htu, nonce) {
  const claims = { htm: method, htu, jti: randomUUID() };
  if (nonce) claims.nonce = nonce;
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.priv);
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: { accept: 'application/json' } });
  if (!resp.ok) throw new StepError('discovery', `${url}: HTTP ${resp.status}`);
  return resp.json();
}

// post sends the exchange with the given proof and returns the status,
// headers and JSON body.
async function post(endpoint, form, dpop) {
  const resp = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', dpop, accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
  });
  let body;
  try {
    body = await resp.json();
  } catch {
    throw new StepError('exchange', `HTTP ${resp.status} without a JSON body`);
  }
  return { status: resp.status, headers: resp.headers, body };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const server = args.server.replace(/\/+$/, '');
  const key = await loadKey(args.key);
  const jkt = await calculateJwkThumbprint(key.publicJwk, 'sha256');

  const meta = await getJSON(`${server}/.well-known/oauth-authorization-server`);
  for (const f of ['issuer', 'token_endpoint', 'jwks_uri']) {
    if (typeof meta[f] !== 'string') throw new StepError('discovery', `metadata lacks ${f}`);
  }
  if (!(meta.dpop_signing_alg_values_supported ?? []).includes(key.alg)) {
    throw new StepError('discovery', `the server does not list ${key.alg} among its DPoP algs`);
  }

  const form = {
    grant_type: TOKEN_EXCHANGE,
    subject_token: args.delegation,
    subject_token_type: DELEGATION_ID,
    resource: args.resource,
  };
  if (args.scope) form.scope = args.scope;

  let dpop = await proof(key, 'POST', meta.token_endpoint);
  let answer = await post(meta.token_endpoint, form, dpop);
  // A server that wants a nonce says so once (RFC 9449 section 8).
  if (answer.body.error === 'use_dpop_nonce' && answer.headers.get('dpop-nonce')) {
    dpop = await proof(key, 'POST', meta.token_endpoint, answer.headers.get('dpop-nonce'));
    answer = await post(meta.token_endpoint, form, dpop);
  }
  if (answer.status !== 200) {
    throw new StepError('exchange', `HTTP ${answer.status}: ${answer.body.error}: ${answer.body.error_description ?? ''}`);
  }
  const tr = answer.body;
  if (tr.token_type !== 'DPoP' || tr.issued_token_type !== ACCESS_TOKEN || typeof tr.access_token !== 'string') {
    throw new StepError('exchange', `not a DPoP access token answer: ${JSON.stringify(tr)}`);
  }

  const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
  let verified;
  try {
    verified = await jwtVerify(tr.access_token, jwks, {
      typ: 'at+jwt',
      issuer: meta.issuer,
      audience: args.resource,
      algorithms: ['ES256'],
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
    });
  } catch (e) {
    throw new StepError('verify', `${e.code ?? 'error'}: ${e.message}`);
  }
  const claims = verified.payload;
  if (claims.cnf?.jkt !== jkt) {
    throw new StepError('verify', `cnf.jkt ${claims.cnf?.jkt} is not this key's thumbprint ${jkt}`);
  }
  // A token altered by one bit no longer verifies.
  const [h, p, s] = tr.access_token.split('.');
  const flipped = `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`;
  let tampered = 'accepted';
  try {
    await jwtVerify(flipped, jwks, { issuer: meta.issuer, audience: args.resource });
  } catch (e) {
    tampered = e.code ?? 'rejected';
  }

  // The endpoint refuses a proof used twice and one made for another URL.
  const replayed = await post(meta.token_endpoint, form, dpop);
  const otherURL = await post(meta.token_endpoint, form, await proof(key, 'POST', `${server}/elsewhere`));

  return {
    ok: true,
    alg: key.alg,
    jkt,
    token_type: tr.token_type,
    expires_in: tr.expires_in,
    scope: tr.scope ?? null,
    issuance_index: tr.warrant?.index ?? null,
    header: decodeProtectedHeader(tr.access_token),
    claims,
    tampered_token: tampered,
    replayed_proof: { status: replayed.status, error: replayed.body.error ?? null },
    other_url_proof: { status: otherURL.status, error: otherURL.body.error ?? null },
  };
}

main().then(
  (r) => process.stdout.write(JSON.stringify(r) + '\n'),
  (e) => {
    process.stdout.write(JSON.stringify({ ok: false, step: e.step ?? 'internal', error: e.message }) + '\n');
    process.exitCode = 1;
  },
);

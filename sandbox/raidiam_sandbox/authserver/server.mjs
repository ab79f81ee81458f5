// Local stand-in for Raidiam's authorisation server: the real node `oidc-provider` (8.x) behind two
// HTTPS listeners on 127.0.0.1, the issuer listener (plain TLS) and an mTLS listener that serves the
// `mtls_endpoint_aliases`. Test-only: it trusts one sandbox CA and keeps everything in memory.
//
// Usage: node server.mjs <config.json>   (the config format is described in ../runner.py)

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const HOST = config.host ?? '127.0.0.1';
if (HOST !== '127.0.0.1') throw new Error('the sandbox only ever binds 127.0.0.1');

const AUDIENCE = config.audience;
const SCOPES = config.scopes;
const DEFAULT_TTL = config.access_token_ttl ?? 300;
// Raidiam publishes these aliases; all are the same path on the mTLS host.
const MTLS_ALIASES = {
  token_endpoint: '/token',
  revocation_endpoint: '/token/revocation',
  introspection_endpoint: '/token/introspection',
  device_authorization_endpoint: '/device/auth',
  registration_endpoint: '/reg',
  userinfo_endpoint: '/me',
  pushed_authorization_request_endpoint: '/request',
  backchannel_authentication_endpoint: '/backchannel',
};
const LISTENER = Symbol('sandbox listener');

// ---- counters and faults ------------------------------------------------------------------------

const newStats = () => ({
  token_requests: 0,
  // null-prototype maps: client ids come from requests and could be '__proto__'
  token_requests_by_client: Object.create(null),
  token_responses_by_status: Object.create(null),
  discovery_requests: 0,
  jwks_requests: 0,
  tls_handshakes: { issuer: 0, mtls: 0 },
  tls_handshake_failures: { issuer: 0, mtls: 0 },
});
// token_failures: the next n token requests get 503 temporarily_unavailable; token_failure_every: n > 0
// fails every n-th token request (by the token_requests counter) the same way, until set back to 0.
const newFaults = () => ({ token_ttl: null, token_failures: 0, token_failure_every: 0, latency_ms: 0 });
let stats = newStats();
let faults = newFaults();

const bump = (obj, key) => { obj[key] = (obj[key] ?? 0) + 1; };

// ---- listeners ----------------------------------------------------------------------------------

const tls = {
  cert: readFileSync(config.server_cert),
  key: readFileSync(config.server_key),
  minVersion: 'TLSv1.2',
  noDelay: true,
  keepAlive: true,
  keepAliveInitialDelay: 1000,
};
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const servers = {
  issuer: https.createServer(tls, (req, res) => handler(req, res)),
  // Only certificates issued by the sandbox CA complete the handshake.
  mtls: https.createServer(
    { ...tls, ca: readFileSync(config.ca_cert), requestCert: true, rejectUnauthorized: true },
    (req, res) => handler(req, res),
  ),
};
for (const [name, server] of Object.entries(servers)) {
  server.keepAliveTimeout = 30_000;
  server.on('secureConnection', (socket) => {
    socket[LISTENER] = name;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    stats.tls_handshakes[name] += 1;
  });
  server.on('tlsClientError', () => { stats.tls_handshake_failures[name] += 1; });
}

const listen = (server, port) => new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, HOST, () => resolve(server.address().port));
});
const issuerPort = await listen(servers.issuer, config.issuer_port ?? 0);
const mtlsPort = await listen(servers.mtls, config.mtls_port ?? 0);
const issuer = `https://${HOST}:${issuerPort}`;
const mtlsBaseUrl = `https://${HOST}:${mtlsPort}`;

// ---- oidc-provider ------------------------------------------------------------------------------

// The client certificate comes from the TLS socket of the mTLS listener, never from a header.
const peerCertificate = (ctx) => {
  const socket = ctx.req.socket;
  if (socket[LISTENER] !== 'mtls') return undefined;
  return socket.getPeerX509Certificate() ?? undefined;
};

// Distinguished names compare in RFC 4514 string form; Node gives one RDN per line, most general first.
const normaliseDn = (dn) => dn.split(/(?<!\\),/).map((rdn) => {
  const i = rdn.indexOf('=');
  return `${rdn.slice(0, i).trim().toUpperCase()}=${rdn.slice(i + 1).trim()}`;
}).join(',');
const certificateDn = (cert) => normaliseDn(cert.subject.split('\n').reverse().join(','));

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: JSON.parse(readFileSync(config.signing_jwks, 'utf8')),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', ...SCOPES],
  responseTypes: ['code id_token'],
  clientAuthMethods: ['private_key_jwt', 'tls_client_auth'],
  clientDefaults: {
    grant_types: ['client_credentials'],
    response_types: [],
    id_token_signed_response_alg: 'PS256',
  },
  enabledJWA: {
    clientAuthSigningAlgValues: ['PS256', 'RS256', 'ES256'],
    idTokenSigningAlgValues: ['PS256'],
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    clientCredentials: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: peerCertificate,
      certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
      certificateSubjectMatches(ctx, property, expected) {
        if (property !== 'tls_client_auth_subject_dn') return false;
        const cert = peerCertificate(ctx);
        return cert !== undefined && certificateDn(cert) === normaliseDn(expected);
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resource, client) {
        if (resource !== AUDIENCE) throw new errors.InvalidTarget();
        const allowed = new Set((client.scope ?? '').split(' '));
        return {
          scope: SCOPES.filter((s) => allowed.has(s)).join(' '),
          audience: AUDIENCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'PS256' } },
        };
      },
    },
  },
  formats: {
    customizers: {
      // A private_key_jwt client that comes over the mTLS listener also gets a certificate-bound
      // token (as at Raidiam); tls_client_auth clients are bound by their registered metadata.
      jwt(ctx, token, jwt) {
        const cert = ctx && peerCertificate(ctx);
        if (cert && !jwt.payload.cnf) jwt.payload.cnf = { 'x5t#S256': thumbprint(cert) };
      },
    },
  },
  ttl: {
    ClientCredentials: () => faults.token_ttl ?? DEFAULT_TTL,
  },
  discovery: {
    mtls_endpoint_aliases: Object.fromEntries(
      Object.entries(MTLS_ALIASES).map(([key, path]) => [key, `${mtlsBaseUrl}${path}`]),
    ),
  },
});

function thumbprint(cert) {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

// ---- sandbox middleware: admin endpoints, counters, injected faults ------------------------------

const readBody = async (req) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
};

// Best-effort client id of a token request that oidc-provider did not get to parse (injected failure).
const clientIdOfForm = (text) => {
  const form = new URLSearchParams(text);
  if (form.get('client_id')) return form.get('client_id');
  try {
    const payload = form.get('client_assertion').split('.')[1];
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).sub ?? 'unknown';
  } catch {
    return 'unknown';
  }
};

const FAULT_KEYS = new Set(Object.keys(newFaults()));
async function admin(ctx) {
  const route = `${ctx.method} ${ctx.path}`;
  if (route === 'GET /__sandbox/stats') {
    ctx.body = stats;
  } else if (route === 'POST /__sandbox/reset') {
    stats = newStats();
    faults = newFaults();
    ctx.body = { stats, faults };
  } else if (route === 'GET /__sandbox/faults') {
    ctx.body = faults;
  } else if (route === 'PUT /__sandbox/faults') {
    let update;
    try {
      update = JSON.parse(await readBody(ctx.req));
    } catch {
      update = undefined;
    }
    const entries = update && typeof update === 'object' && !Array.isArray(update) ? Object.entries(update) : [[]];
    if (!entries.every(([k, v]) => FAULT_KEYS.has(k) && (v === null || (Number.isFinite(v) && v >= 0)))) {
      ctx.status = 400;
      ctx.body = {
        error: 'invalid_request',
        error_description: `expected a JSON object with some of ${[...FAULT_KEYS]} (numbers >= 0 or null)`,
      };
      return;
    }
    // null restores a fault's default (token_ttl: the configured TTL; counts: 0)
    update = Object.fromEntries(entries.map(([k, v]) => [k, v ?? newFaults()[k]]));
    faults = { ...faults, ...update };
    ctx.body = faults;
  } else {
    ctx.status = 404;
    ctx.body = { error: 'not_found' };
  }
  ctx.set('cache-control', 'no-store');
}

provider.use(async (ctx, next) => {
  const listener = ctx.req.socket[LISTENER];
  if (ctx.path.startsWith('/__sandbox/') && listener === 'issuer') {
    await admin(ctx);
    return;
  }
  if (faults.latency_ms > 0) await sleep(faults.latency_ms);
  if (ctx.path === '/.well-known/openid-configuration') stats.discovery_requests += 1;
  if (ctx.path === '/jwks') stats.jwks_requests += 1;
  if (ctx.path !== '/token') {
    await next();
    return;
  }

  stats.token_requests += 1;
  let clientId;
  const every = faults.token_failure_every;
  if (faults.token_failures > 0 || (every > 0 && stats.token_requests % every === 0)) {
    if (faults.token_failures > 0) faults.token_failures -= 1;
    clientId = clientIdOfForm(await readBody(ctx.req));
    ctx.status = 503;
    ctx.set('cache-control', 'no-store');
    ctx.body = {
      error: 'temporarily_unavailable',
      error_description: 'the sandbox was told to fail this token request (token_failures fault)',
    };
  } else {
    await next();
    clientId = ctx.oidc?.client?.clientId ?? ctx.oidc?.authorization?.clientId ?? 'unknown';
  }
  bump(stats.token_requests_by_client, clientId);
  bump(stats.token_responses_by_status, String(ctx.status));
});

// Errors are logged with oidc-provider's detail (never with tokens or assertions) to ease debugging.
const logError = (ctx, err) => {
  const clientId = ctx?.oidc?.client?.clientId ?? ctx?.oidc?.authorization?.clientId ?? '-';
  console.error(`${ctx?.method} ${ctx?.path} client=${clientId} error=${err.error ?? err.message}`
    + ` detail=${err.error_detail ?? err.error_description ?? ''}`);
};
provider.on('grant.error', logError);
provider.on('server_error', logError);

handler = provider.callback();

// ---- ready file, shutdown -----------------------------------------------------------------------

const readyFile = config.ready_file;
if (readyFile) {
  writeFileSync(`${readyFile}.tmp`, JSON.stringify({ issuer, mtls_base_url: mtlsBaseUrl, pid: process.pid }));
  renameSync(`${readyFile}.tmp`, readyFile);
}
console.log(`sandbox authorisation server ready: issuer ${issuer}, mTLS ${mtlsBaseUrl}, pid ${process.pid}`);

let stopping = false;
function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  console.log(`sandbox authorisation server stopping (${reason})`);
  if (readyFile) rmSync(readyFile, { force: true });
  for (const server of Object.values(servers)) {
    server.close();
    server.closeAllConnections();
  }
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Do not outlive the process that started us: it holds our stdin open and EOF means it is gone.
if (config.exit_on_stdin_eof) {
  process.stdin.on('end', () => shutdown('stdin closed: parent process exited'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

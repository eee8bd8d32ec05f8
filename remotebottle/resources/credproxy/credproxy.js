'use strict';
// remotebottle's credential proxy. Serves `/<route>/<rest>` by forwarding to the
// route's upstream with the route's headers injected; whatever credential the agent
// sent is dropped. The route table (with the secret header values) is a file in the
// bottle's tmpfs vault; SIGHUP reloads it. Bodies are streamed, never logged.
//
// A route with a `policy` (the `anthropic-base-url` role) passes only what
// anthropic_policy.js allows; every refusal is logged as an event "refused".
//
// usage: node credproxy.js ROUTES_JSON PORT [FROM]
// FROM limits who is served: a subnet (the bottle's internal network, e.g. 172.20.0.0/16:
// only connections arriving on that network), or `peer:IP` (only connections from that
// address: the bottle's egress proxy, when the agent reaches this proxy through it).

const fs = require('fs');
const http = require('http');
const https = require('https');
const policy = require('./anthropic_policy.js');

const [routesFile, portArg, fromArg] = process.argv.slice(2);
const port = Number(portArg || 8080);
const peerOnly = fromArg && fromArg.startsWith('peer:') ? fromArg.slice(5) : null;
const subnetArg = fromArg && !peerOnly ? fromArg : null;

function ipv4(text) {
  const parts = String(text).replace(/^::ffff:/, '').split('.').map(Number);
  if (parts.length !== 4 || parts.some((n) => !(n >= 0 && n <= 255))) return null;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function inSubnet(address, cidr) {
  const [base, bits] = cidr.split('/');
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  const ip = ipv4(address);
  return ip !== null && ((ip & mask) >>> 0) === ((ipv4(base) & mask) >>> 0);
}

function allowedFrom(socket) {
  if (peerOnly) return String(socket.remoteAddress).replace(/^::ffff:/, '') === peerOnly;
  return !subnetArg || inSubnet(socket.localAddress, subnetArg);
}

// Credentials from the agent never pass; hop-by-hop headers are the connection's own.
const DROPPED = new Set([
  'authorization', 'x-api-key', 'proxy-authorization', 'cookie', 'host',
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'transfer-encoding', 'forwarded', 'x-forwarded-for', 'x-forwarded-host',
]);
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding',
]);

function log(fields) {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...fields }) + '\n');
}

function loadRoutes() {
  const table = JSON.parse(fs.readFileSync(routesFile, 'utf8'));
  const routes = new Map();
  for (const route of table.routes) {
    const upstream = new URL(route.upstream);
    if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') {
      throw new Error(`route ${route.name}: upstream must be http(s)`);
    }
    const inject = {};
    for (const [name, value] of Object.entries(route.inject || {})) {
      inject[name.toLowerCase()] = value;
    }
    routes.set(route.name, { upstream, inject, policy: route.policy || null });
  }
  return routes;
}

let routes = loadRoutes();

// Kept-alive upstream connections: a TLS handshake per request would cost far more.
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

process.on('SIGHUP', () => {
  try {
    routes = loadRoutes();
    log({ event: 'reloaded', routes: [...routes.keys()] });
  } catch (err) {
    // Keep serving the table we have; the operator sees the failure here.
    log({ event: 'reload-failed', error: String(err.message) });
  }
});

function refuse(res, status, message, kind = 'cred_proxy_error') {
  const body = JSON.stringify({ type: 'error', error: { type: kind, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function targetOf(route, rest, search) {
  const base = route.upstream.pathname.replace(/\/+$/, '');
  const target = new URL(route.upstream.href);
  target.pathname = `${base}/${rest}`;
  target.search = search;
  return target;
}

function serve(req, res) {
  const started = Date.now();
  if (!allowedFrom(req.socket)) {
    log({ method: req.method, status: 403, error: 'not from the bottle' });
    refuse(res, 403, 'the credential proxy serves the bottle\'s agent only');
    return;
  }
  const incoming = new URL(req.url, 'http://cred-proxy');
  const match = /^\/([^/]+)(?:\/(.*))?$/.exec(incoming.pathname);
  let name = '';
  try {
    name = match ? decodeURIComponent(match[1]) : '';
  } catch {
    refuse(res, 400, 'malformed route name');
    return;
  }
  // Encoded separators and dot-segments could walk out of the route's base path upstream.
  if (/%2f|%5c|%2e%2e/i.test(match && match[2] ? match[2] : '')) {
    log({ route: name, method: req.method, status: 400 });
    refuse(res, 400, 'encoded path separators are not allowed');
    return;
  }
  const route = routes.get(name);
  if (!route) {
    log({ route: name, method: req.method, status: 404 });
    refuse(res, 404, `no credential route named ${JSON.stringify(name)}`);
    return;
  }
  const rest = match[2] || '';
  if (route.policy) {
    servePolicy(req, res, name, route, rest, incoming.search, started);
    return;
  }
  const headers = {};
  for (const [key, value] of Object.entries(req.headers)) {
    if (!DROPPED.has(key) && !(key in route.inject)) headers[key] = value;
  }
  forward(req, res, name, route, targetOf(route, rest, incoming.search), headers, null, started);
}

// Refused, logged with the reason (never the body), answered in the Messages API's shape.
function refusePolicy(res, name, method, rest, reason) {
  log({ event: 'refused', route: name, method, path: rest.slice(0, 200), reason });
  refuse(res, 403, `the bottle's credential proxy refused this request: ${reason}`, 'permission_error');
}

function servePolicy(req, res, name, route, rest, search, started) {
  const allowed = policy.endpoint(req.method, rest, search);
  if (!allowed) {
    refusePolicy(res, name, req.method, rest, `${req.method} /${rest}${search} is not an endpoint Claude Code uses`);
    return;
  }
  const filtered = policy.filterHeaders(req.headers, route.policy);
  if (filtered.stripped.length) {
    log({ event: 'stripped', route: name, betas: filtered.stripped.map((b) => b.slice(0, 80)) });
  }
  const target = targetOf(route, rest, search);
  if (!allowed.body) {
    forward(req, res, name, route, target, filtered.headers, Buffer.alloc(0), started);
    return;
  }
  const encoding = String(req.headers['content-encoding'] || 'identity').toLowerCase();
  if (encoding !== 'identity') {
    refusePolicy(res, name, req.method, rest, `a ${encoding.slice(0, 20)}-encoded body cannot be checked`);
    return;
  }
  const chunks = [];
  let size = 0;
  let over = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > policy.MAX_BODY_BYTES) over = true;
    else chunks.push(chunk);
  });
  req.on('end', () => {
    if (over) {
      refusePolicy(res, name, req.method, rest, `the body is over ${policy.MAX_BODY_BYTES} bytes`);
      return;
    }
    const raw = Buffer.concat(chunks);
    let body;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      refusePolicy(res, name, req.method, rest, 'the body is not JSON');
      return;
    }
    const problem = policy.checkBody(body, route.policy);
    if (problem) {
      refusePolicy(res, name, req.method, rest, problem);
      return;
    }
    forward(req, res, name, route, target, filtered.headers, raw, started);
  });
}

// Send the request upstream with the route's headers injected; stream the answer back.
// `body`: the bytes to send, or null to stream the agent's request body through.
function forward(req, res, name, route, target, passed, body, started) {
  const headers = { ...passed, ...route.inject, host: target.host };
  if (body) {
    delete headers['transfer-encoding'];
    headers['content-length'] = String(body.length);
  }

  const client = target.protocol === 'https:' ? https : http;
  const options = { method: req.method, headers, agent: agents[target.protocol] };
  const upstream = client.request(target, options, (up) => {
    const back = {};
    for (const [key, value] of Object.entries(up.headers)) {
      if (!HOP_BY_HOP.has(key)) back[key] = value;
    }
    res.writeHead(up.statusCode || 502, back);
    res.flushHeaders();
    up.pipe(res);
    up.on('end', () => log({ route: name, method: req.method, status: up.statusCode, ms: Date.now() - started }));
  });
  upstream.on('error', (err) => {
    log({ route: name, method: req.method, status: 502, error: err.code || 'error' });
    if (!res.headersSent) refuse(res, 502, `upstream of route ${name} unreachable (${err.code || 'error'})`);
    else res.destroy();
  });
  res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
  if (body) upstream.end(body);
  else req.pipe(upstream);
}

const server = http.createServer((req, res) => {
  try {
    serve(req, res);
  } catch (err) {
    // One bad request must never take the route away from the agent for the session.
    log({ method: req.method, status: 400, error: String(err && err.message) });
    if (!res.headersSent) refuse(res, 400, 'bad request');
    else res.destroy();
  }
});
process.on('uncaughtException', (err) => log({ event: 'error', error: String(err && err.message) }));

server.keepAliveTimeout = 75000;
server.requestTimeout = 0; // streamed responses may last as long as a turn does
server.listen(port, '0.0.0.0', () => log({ event: 'listening', port, routes: [...routes.keys()] }));

'use strict';
// remotebottle's credential proxy. Serves `/<route>/<rest>` by forwarding to the
// route's upstream with the route's headers injected; whatever credential the agent
// sent is dropped. The route table (with the secret header values) is a file in the
// bottle's tmpfs vault; SIGHUP reloads it. Bodies are streamed, never logged.
//
// usage: node credproxy.js ROUTES_JSON PORT

const fs = require('fs');
const http = require('http');
const https = require('https');

const [routesFile, portArg] = process.argv.slice(2);
const port = Number(portArg || 8080);

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
    routes.set(route.name, { upstream, inject });
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

function refuse(res, status, message) {
  const body = JSON.stringify({ type: 'error', error: { type: 'cred_proxy_error', message } });
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

const server = http.createServer((req, res) => {
  const started = Date.now();
  const incoming = new URL(req.url, 'http://cred-proxy');
  const match = /^\/([^/]+)(?:\/(.*))?$/.exec(incoming.pathname);
  const name = match ? decodeURIComponent(match[1]) : '';
  const route = routes.get(name);
  if (!route) {
    log({ route: name, method: req.method, status: 404 });
    refuse(res, 404, `no credential route named ${JSON.stringify(name)}`);
    return;
  }
  const target = targetOf(route, match[2] || '', incoming.search);
  const headers = {};
  for (const [key, value] of Object.entries(req.headers)) {
    if (!DROPPED.has(key) && !(key in route.inject)) headers[key] = value;
  }
  Object.assign(headers, route.inject);
  headers.host = target.host;

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
  req.pipe(upstream);
});

server.keepAliveTimeout = 75000;
server.requestTimeout = 0; // streamed responses may last as long as a turn does
server.listen(port, '0.0.0.0', () => log({ event: 'listening', port, routes: [...routes.keys()] }));

'use strict';
// What the credential proxy lets through to the Messages API on a route with the
// `anthropic-base-url` role: what Claude Code itself sends (recorded from real
// `claude -p` runs), and nothing that makes the API reach out on the agent's behalf.
// Server-side tools and connectors (web fetch/search, code execution, MCP servers),
// URL and file sources, and the beta headers that enable them are refused unless the
// manifest grants them. Unknown headers are dropped, unknown betas stripped.

const ENDPOINTS = [
  ['POST', /^v1\/messages$/, 'json'],
  ['POST', /^v1\/messages\/count_tokens$/, 'json'],
  ['GET', /^v1\/models$/, null],
  ['GET', /^v1\/models\/[A-Za-z0-9._:@-]{1,100}$/, null],
  ['HEAD', /^api\/hello$/, null],
  ['GET', /^api\/hello$/, null],
];
const QUERIES = new Set(['', '?beta=true']);

// Request headers passed upstream; every other header is dropped.
const HEADERS = new Set([
  'accept', 'accept-encoding', 'anthropic-beta', 'anthropic-dangerous-direct-browser-access',
  'anthropic-version', 'content-length', 'content-type', 'user-agent', 'x-app',
  'x-claude-code-session-id', 'x-stainless-arch', 'x-stainless-lang', 'x-stainless-os',
  'x-stainless-package-version', 'x-stainless-retry-count', 'x-stainless-runtime',
  'x-stainless-runtime-version', 'x-stainless-timeout', 'x-stainless-helper-method',
]);

// Betas that change how the model answers, not what the API may reach.
const SAFE_BETAS = [
  'claude-code-', 'oauth-', 'interleaved-thinking-', 'context-management-', 'per-turn-control-',
  'mid-conversation-tool-changes-', 'thinking-token-count-', 'advanced-tool-use-', 'effort-',
  'extended-cache-ttl-', 'prompt-caching-', 'token-efficient-tools-', 'fine-grained-tool-streaming-',
  'output-128k-', 'context-1m-', 'structured-outputs-', 'token-counting-',
];
// Betas that a grant turns on, by grant name.
const GRANTED_BETAS = {
  web_fetch: ['web-fetch-'],
  web_search: ['web-search-'],
  code_execution: ['code-execution-', 'files-api-', 'skills-'],
  mcp_servers: ['mcp-client-'],
};

const BODY_FIELDS = new Set([
  'model', 'messages', 'system', 'max_tokens', 'metadata', 'stop_sequences', 'stream',
  'temperature', 'top_p', 'top_k', 'tools', 'tool_choice', 'thinking', 'context_management',
  'output_config', 'service_tier',
]);
// Fields that only a grant allows.
const GRANTED_FIELDS = { mcp_servers: 'mcp_servers', container: 'code_execution' };

const MAX_BODY_BYTES = 32 * 1024 * 1024;

function granted(policy, name) {
  return Array.isArray(policy.grants) && policy.grants.includes(name);
}

// `web_search_20250305` -> `web_search`: a server tool's type names its family.
function toolFamily(type) {
  return String(type).replace(/_\d{8}$/, '');
}

function endpoint(method, rest, search) {
  if (!QUERIES.has(search)) return null;
  const found = ENDPOINTS.find(([m, re]) => m === method && re.test(rest));
  return found ? { body: found[2] } : null;
}

function filterBetas(value, policy) {
  const kept = [];
  const stripped = [];
  for (const beta of String(value).split(',').map((b) => b.trim()).filter(Boolean)) {
    const grantedPrefixes = Object.entries(GRANTED_BETAS)
      .filter(([grant]) => granted(policy, grant))
      .flatMap(([, prefixes]) => prefixes);
    // The agent holds an OAuth-shaped placeholder; upstream, an API key goes without the beta.
    const wrongLogin = policy.apiKey === true && beta.startsWith('oauth-');
    const ok = !wrongLogin && [...SAFE_BETAS, ...grantedPrefixes].some((p) => beta.startsWith(p));
    (ok ? kept : stripped).push(beta);
  }
  return { kept: kept.join(','), stripped };
}

// The headers to send upstream (before injection), and what was taken out.
function filterHeaders(headers, policy) {
  const out = {};
  const dropped = [];
  let stripped = [];
  for (const [key, value] of Object.entries(headers)) {
    if (!HEADERS.has(key)) {
      dropped.push(key);
    } else if (key === 'anthropic-beta') {
      const betas = filterBetas(value, policy);
      stripped = betas.stripped;
      if (betas.kept) out[key] = betas.kept;
    } else {
      out[key] = value;
    }
  }
  return { headers: out, dropped, stripped };
}

// A reason to refuse a content block anywhere in `node`, or null.
function forbiddenContent(node, policy, where) {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i += 1) {
      const found = forbiddenContent(node[i], policy, `${where}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (!node || typeof node !== 'object') return null;
  const type = typeof node.type === 'string' ? node.type : '';
  const serverTools = granted(policy, 'web_fetch') || granted(policy, 'web_search')
    || granted(policy, 'code_execution');
  if (type === 'server_tool_use' && !serverTools) {
    return `${where}: server tool use is not granted`;
  }
  if (type.startsWith('mcp_') && !granted(policy, 'mcp_servers')) {
    return `${where}: ${type} needs the mcp_servers grant`;
  }
  if (type === 'container_upload' && !granted(policy, 'code_execution')) {
    return `${where}: container_upload needs the code_execution grant`;
  }
  if (type.endsWith('_tool_result') && type !== 'tool_result') {
    const family = type.replace(/_tool_result$/, '').replace(/^(bash|text_editor)_/, '');
    if (!granted(policy, family)) return `${where}: ${type} is not granted`;
  }
  const source = node.source;
  if (source && typeof source === 'object' && (source.type === 'url' || source.type === 'file')) {
    return `${where}.source: a ${source.type} source makes the API fetch it on the agent's behalf`;
  }
  for (const [key, value] of Object.entries(node)) {
    if (value && typeof value === 'object') {
      const found = forbiddenContent(value, policy, `${where}.${key}`);
      if (found) return found;
    }
  }
  return null;
}

// A reason to refuse a Messages API JSON body, or null.
function checkBody(body, policy) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'the body is not a JSON object';
  for (const key of Object.keys(body)) {
    const grant = GRANTED_FIELDS[key];
    if (grant) {
      if (!granted(policy, grant)) return `field ${key} needs the ${grant} grant`;
    } else if (!BODY_FIELDS.has(key)) {
      return `field ${JSON.stringify(key).slice(0, 60)} is not one Claude Code sends`;
    }
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) return 'tools is not a list';
    for (let i = 0; i < body.tools.length; i += 1) {
      const tool = body.tools[i];
      if (!tool || typeof tool !== 'object') return `tools[${i}] is not an object`;
      if (tool.type !== undefined && tool.type !== 'custom' && !granted(policy, toolFamily(tool.type))) {
        return `tools[${i}]: server tool ${JSON.stringify(String(tool.type)).slice(0, 60)} is not granted`;
      }
    }
  }
  return forbiddenContent(body.messages, policy, 'messages')
    || forbiddenContent(body.system, policy, 'system');
}

module.exports = { MAX_BODY_BYTES, endpoint, filterHeaders, checkBody };

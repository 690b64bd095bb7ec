#!/usr/bin/env node
// A tiny static server for www/ (no dependencies): `node scripts/serve.mjs [port]`.
// Port 0 picks a free one; the first line printed is the URL (tests read it).
// The pages are cross-origin isolated (COOP + COEP), which lets the CPU backend run on
// threads; DPO_ISOLATION=off leaves the headers out, as an embedding page that does not send
// them would (the trainer then runs on one thread).
import { createServer } from 'node:http';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../www/', import.meta.url)));
const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
const isolation = process.env.DPO_ISOLATION === 'off' ? {}
  : { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

// The pages' Content-Security-Policy, read from index.html's <meta> so that it is written
// once (tests/browser/csp.test.mjs checks every page carries the same). Sent as a header on
// every response too: a worker takes its policy from its script's response, not from the page.
const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/
  .exec(readFileSync(join(root, 'index.html'), 'utf8'))?.[1];
if (!csp) throw new Error('www/index.html has no Content-Security-Policy <meta>');

// Browsers refuse module scripts and wasm streaming compilation under the wrong type.
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

// Sent gzip-compressed to a browser that accepts it, as a real server would (so that the
// transferred bytes the tests measure are a deployment's): compressed once per file version.
const compressible = new Set(['.html', '.js', '.mjs', '.css', '.json', '.jsonl', '.wasm', '.svg', '.txt']);
const gzipped = new Map();
function gzipOf(file) {
  const key = `${file.full}:${file.mtimeMs}:${file.size}`;
  if (!gzipped.has(key)) gzipped.set(key, gzipSync(readFileSync(file.full)));
  return gzipped.get(key);
}

function fileFor(urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return null;
  }
  const full = normalize(join(root, path));
  // No escaping the root through "..".
  if (full !== root && !full.startsWith(root + sep)) return null;
  try {
    const stat = statSync(full);
    if (stat.isDirectory()) return fileFor(join(path, 'index.html'));
    return stat.isFile() ? { full, size: stat.size, mtimeMs: stat.mtimeMs } : null;
  } catch {
    return null;
  }
}

const server = createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405).end();
    return;
  }
  const file = fileFor(req.url ?? '/');
  if (!file) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  // Revalidation answers 304: the service worker's first-visit copy of the site then costs
  // no second download of what the page just fetched.
  const etag = `W/"${file.size.toString(36)}-${Math.round(file.mtimeMs).toString(36)}"`; // weak: gzip or not
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag, 'cache-control': 'no-cache', vary: 'accept-encoding' }).end();
    return;
  }
  const gzip = compressible.has(extname(file.full)) && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
  const body = gzip ? gzipOf(file) : null;
  res.writeHead(200, {
    'content-type': types[extname(file.full)] ?? 'application/octet-stream',
    'content-length': body ? body.length : file.size,
    ...(body ? { 'content-encoding': 'gzip' } : {}),
    vary: 'accept-encoding',
    etag,
    // Always revalidate: a rebuilt wasm must never meet a cached dpo.js.
    'cache-control': 'no-cache',
    'content-security-policy': csp,
    ...isolation,
  });
  if (req.method === 'HEAD') res.end();
  else if (body) res.end(body);
  else createReadStream(file.full).pipe(res);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}/`);
  console.log(isolation['cross-origin-opener-policy'] ? 'cross-origin isolated (COOP + COEP)' : 'not cross-origin isolated (DPO_ISOLATION=off)');
});

#!/usr/bin/env node
// A tiny static server for www/ (no dependencies): `node scripts/serve.mjs [port]`.
// Port 0 picks a free one; the first line printed is the URL (tests read it).
import { createServer } from 'node:http';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../www/', import.meta.url)));
const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);

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
    return stat.isFile() ? { full, size: stat.size } : null;
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
  res.writeHead(200, {
    'content-type': types[extname(file.full)] ?? 'application/octet-stream',
    'content-length': file.size,
    // Always revalidate: a rebuilt wasm must never meet a cached dpo.js.
    'cache-control': 'no-cache',
    'content-security-policy': csp,
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file.full).pipe(res);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}/`);
});

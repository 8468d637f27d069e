// Browser-test harness: a static server for dist/ that is also the browser's HTTP proxy, so every
// request the browser makes — from pages, workers, the service worker or the browser itself —
// passes through it and is logged. Requests for any other origin are logged and refused.

import { createServer } from 'node:http';
import { readFile, stat, mkdir, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { extname, join, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');
export const distDir = join(repoRoot, 'dist');
export const artifactsDir = join(repoRoot, 'tests', 'artifacts');
export const fixturesDir = join(repoRoot, 'models', 'fixtures');

/** The tiny fixture models, served as hub repos: `{origin}/hub/{repo}/resolve/{revision}/{path}`. */
export const HUB_REPOS = {
  'tiny/sd2': join(fixturesDir, 'tiny-sd2'),
  'tiny/sd1': join(fixturesDir, 'tiny-sd1'),
  'tiny/sdxs': join(fixturesDir, 'tiny-sdxs'),
  // SDXS-512's real layout, with its AutoencoderTiny as vae/.
  'tiny/sdxs-512': join(fixturesDir, 'tiny-sdxs-512'),
  // A decoder-only repo laid out like madebyollin/taesd (config and weights at the root).
  'tiny/taesd': join(fixturesDir, 'tiny-sd1', 'vae'),
};

/** The registry's default repos (the app's own choices), served from the tiny fixtures. */
export const PRODUCT_HUB = {
  'stabilityai/sd-turbo': join(fixturesDir, 'tiny-sd2'),
  'madebyollin/taesd': join(fixturesDir, 'tiny-sd1', 'vae'),
};

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * Serves `root` on 127.0.0.1 and acts as the browser's proxy.
 * Unknown paths without an extension get index.html, as a static host's SPA fallback would.
 * `rewrite(path, body)` may change a file on the way out (used to publish a "new version").
 */
export async function startServer({ root = distDir, rewrite = null, hub = HUB_REPOS } = {}) {
  const requests = [];
  // What the app's own pages, workers and service worker asked for (see `trackContext`).
  const appRequests = [];
  // `breaks`: path → bytes after which that file's next download is cut off (once).
  const state = { offline: false, rewrite, breaks: new Map() };
  const server = createServer(async (request, response) => {
    const host = request.headers.host;
    // A proxied request carries an absolute URL; a direct one only a path.
    const url = new URL(request.url, `http://${host}`);
    const entry = { method: request.method, url: url.href, origin: url.origin, at: Date.now(), range: request.headers.range, bodyBytes: 0 };
    requests.push(entry);
    // What a request carried to the server: the privacy tests prove it is nothing.
    request.on('data', (chunk) => { entry.bodyBytes += chunk.length; });
    if (url.origin !== origin || state.offline) {
      entry.refused = true;
      response.writeHead(502).end();
      return;
    }
    const hubFile = resolveHub(hub, url.pathname);
    if (hubFile) {
      await serveBytes(request, response, hubFile, state.breaks, url.pathname);
    } else if (url.pathname.startsWith('/fixtures/')) {
      await serveBytes(request, response, join(fixturesDir, normalize(decodeURIComponent(url.pathname.slice('/fixtures/'.length))).replace(/^(\.\.[/\\])+/, '')), state.breaks, url.pathname);
    } else {
      await serveFile(root, url.pathname, response, state.rewrite);
    }
  });
  // HTTPS through a proxy arrives as CONNECT host:port: log it, never tunnel it.
  server.on('connect', (request, socket) => {
    requests.push({ method: 'CONNECT', url: `https://${request.url}`, origin: `https://${request.url}`, at: Date.now(), refused: true });
    socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    port: server.address().port,
    requests,
    appRequests,
    /** While offline, every request fails as if the network were down. */
    setOffline(offline) {
      state.offline = offline;
    },
    setRewrite(rewrite) {
      state.rewrite = rewrite;
    },
    /** The next download of `pathname` stops after `bytes` bytes (the connection drops). */
    breakDownload(pathname, bytes) {
      state.breaks.set(pathname, bytes);
    },
    /** Every request the browser sent to another origin, less Chromium's own background traffic. */
    foreignRequests() {
      return requests.filter((entry) => entry.origin !== origin && !isChromiumBackground(entry.origin));
    },
    /** Every request a page, worker or service worker of the app sent to another origin. */
    foreignAppRequests() {
      return appRequests.filter((entry) => new URL(entry.url).origin !== origin);
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** `/hub/{owner}/{name}/resolve/{revision}/{path}` → the fixture file, as the hub lays URLs out. */
function resolveHub(hub, pathname) {
  const match = /^\/hub\/([^/]+\/[^/]+)\/resolve\/[^/]+\/(.+)$/.exec(decodeURIComponent(pathname));
  if (!match || !hub[match[1]]) return null;
  return join(hub[match[1]], normalize(match[2]).replace(/^(\.\.[/\\])+/, ''));
}

/**
 * A model file as the hub and its CDN serve it: HEAD with the length, `Range: bytes=a-b` with 206,
 * and a dropped connection where a test asked for one.
 */
async function serveBytes(request, response, file, breaks, pathname) {
  if (!(await isFile(file))) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  // Streamed from disk: the full-size benchmark model is gigabytes.
  const size = (await stat(file)).size;
  const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', 'cache-control': 'no-cache' };
  let start = 0;
  let end = size;
  let status = 200;
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
  if (range) {
    start = Number(range[1]);
    end = range[2] === '' ? size : Math.min(Number(range[2]) + 1, size);
    if (start >= size || start >= end) {
      response.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end - 1}/${size}`;
  }
  headers['content-length'] = String(end - start);
  if (request.method === 'HEAD' || end === start) {
    response.writeHead(status, headers).end();
    return;
  }
  const cut = request.method === 'GET' ? breaks.get(pathname) : undefined;
  response.writeHead(status, headers);
  if (cut !== undefined) {
    breaks.delete(pathname);
    const partial = createReadStream(file, { start, end: Math.min(end, start + cut) - 1 });
    partial.on('data', (chunk) => response.write(chunk));
    // Drop the connection mid-body, as a network failure would.
    partial.on('end', () => setTimeout(() => response.socket?.destroy(), 50));
    return;
  }
  createReadStream(file, { start, end: end - 1 }).pipe(response);
}

async function serveFile(root, pathname, response, rewrite) {
  let path = normalize(decodeURIComponent(pathname)).replace(/^(\.\.[/\\])+/, '');
  if (path.endsWith('/')) path += 'index.html';
  let file = join(root, path);
  if (!(await isFile(file)) && extname(path) === '') {
    path = '/index.html';
    file = join(root, path);
  }
  if (!(await isFile(file))) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  let body = await readFile(file);
  if (rewrite) body = rewrite(path, body) ?? body;
  response
    .writeHead(200, {
      'content-type': MIME[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
    })
    .end(body);
}

async function isFile(path) {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Chromium itself talks to Google's update and account services in the background, whatever
 * page is open (seen even with every background-networking switch off). Those requests come from
 * the browser process, not from the app: `trackContext` shows that no page, worker or service
 * worker of the app made them, and they are refused at the proxy all the same.
 */
const CHROMIUM_BACKGROUND_HOSTS = new Set([
  'accounts.google.com',
  'update.googleapis.com',
  'clients2.google.com',
  'clientservices.googleapis.com',
  'optimizationguide-pa.googleapis.com',
  'safebrowsing.googleapis.com',
  'redirector.gvt1.com',
  // Autofill's server query, sent by the browser when a page shows a form field.
  'content-autofill.googleapis.com',
  // Google Cloud Messaging's check-in, sent by the browser once a service worker is registered
  // (Debian's Chromium 148, 2026-12-03), whatever the worker does.
  'android.clients.google.com',
]);

function isChromiumBackground(origin) {
  return CHROMIUM_BACKGROUND_HOSTS.has(new URL(origin).hostname);
}

/** Logs every request of a context's pages, workers and service workers into `server.appRequests`. */
export function trackContext(server, context) {
  context.on('request', (request) => {
    server.appRequests.push({ url: request.url(), type: request.resourceType(), fromServiceWorker: request.serviceWorker() !== null });
  });
  return context;
}

/**
 * Debian's Chromium, headless, with every request sent through `server` (loopback included).
 * `webgpu: false` leaves out the one flag that enables WebGPU on this machine.
 */
export async function launchBrowser(server, { webgpu = true } = {}) {
  const args = [
    '--no-sandbox',
    '--disable-gpu-sandbox',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    `--proxy-server=http://127.0.0.1:${server.port}`,
    // Chromium bypasses proxies for loopback unless told not to.
    '--proxy-bypass-list=<-loopback>',
  ];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
}

/** Collects console errors, page errors and failed requests of a page. */
export function watchPage(page) {
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console.error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  return problems;
}

/**
 * What only a broken template puts on screen: a Rust closure, markup or attribute fragments (a
 * `>` inside an attribute's closure ends a Leptos tag and spills the rest as text), a story
 * placeholder nobody filled in.
 */
const TEMPLATE_LEAKS = [
  /move \|/, /=>/, /\|\|/, /\.get\(\)/, /\b[a-z]+ - [a-z]+ ?=/, /\btestid\b/, /\baria\b/, /\b(prop|on|attr|class|style):[a-z]/,
  /\b[a-z-]+=[a-z"']/i, /<\/?[a-z][a-z0-9-]*[\s/>]/i, /\{[A-Za-z_ ]*\}/, /\bview!/,
];

/** Console messages of a Rust panic (and the trap that follows it). */
const PANICS = /panicked at|RuntimeError|unreachable|already been disposed/;

/**
 * Checks the screen a parent sees now — no template text on it, no panic in the console so far —
 * then saves a screenshot named `name`.
 */
export async function checkScreen(page, problems, name) {
  const text = await page.locator('body').innerText();
  for (const pattern of TEMPLATE_LEAKS) {
    const found = text.match(pattern);
    assert.equal(found, null, `${name}: template text on screen: "${found?.[0]}" in …${text.slice(Math.max(0, (found?.index ?? 0) - 60), (found?.index ?? 0) + 60)}…`);
  }
  // Emoji render as empty boxes where no emoji font is installed: the app draws its own icons.
  assert.equal(text.match(/\p{Extended_Pictographic}/u), null, `${name}: an emoji on screen`);
  assert.deepEqual(problems.filter((problem) => PANICS.test(problem)), [], `${name}: the app panicked`);
  await screenshot(page, name);
}

/** The app has mounted: the navigation is on screen. */
export async function waitForApp(page) {
  await page.getByRole('navigation', { name: 'Main' }).waitFor({ state: 'visible', timeout: 30_000 });
}

export async function screenshot(page, name) {
  await mkdir(artifactsDir, { recursive: true });
  await page.screenshot({ path: join(artifactsDir, `${name}.png`), fullPage: true });
}

export async function saveArtifact(name, data) {
  await mkdir(artifactsDir, { recursive: true });
  await writeFile(join(artifactsDir, name), typeof data === 'string' ? data : JSON.stringify(data, null, 2));
}

/** The tensors of a safetensors file (f32 only), as `{ name: { shape, data: Float32Array } }`. */
export async function readSafetensors(file) {
  const bytes = await readFile(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new Error(`${file}: ${name} is ${info.dtype}, not F32`);
    const [start, end] = info.data_offsets;
    const data = bytes.subarray(8 + headerLength + start, 8 + headerLength + end);
    tensors[name] = { shape: info.shape, data: new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)) };
  }
  return tensors;
}

/** ‖a − b‖ / ‖b‖. */
export function relativeL2(actual, expected) {
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i += 1) {
    difference += (actual[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return Math.sqrt(difference / norm);
}

/** Opens the bench page with `params` and returns the JSON it writes into `#result`. */
export async function runBench(page, origin, params, { timeout = 240_000 } = {}) {
  const query = new URLSearchParams(params).toString();
  await page.goto(`${origin}/bench.html?${query}`);
  const result = page.locator('#result');
  await page.waitForFunction(() => document.getElementById('result')?.textContent.trim().length > 0, null, { timeout });
  return JSON.parse(await result.textContent());
}

// The browser's memory while streaming a full-size model into the engine worker (issue 5):
// serves dist-release/ and FOLDER as a hub repo, opens /bench?load_only=1 on WebGPU (SwiftShader), prints the
// bench JSON: `wasm_heap_peak_bytes` is the worker's wasm heap after loading (it never shrinks).
//
//   node tests/bench/heap.mjs /tmp/bench-models/sd-turbo-full
import { join } from 'node:path';
import { startServer, launchBrowser, runBench, repoRoot } from '../e2e/harness.mjs';

const folder = process.argv[2];
if (!folder) {
  console.error('usage: node tests/bench/heap.mjs MODEL_FOLDER');
  process.exit(2);
}
// The release build (`cargo xtask bench heap` makes it).
const server = await startServer({ root: join(repoRoot, 'dist-release'), hub: { 'bench/model': folder } });
const browser = await launchBrowser(server);
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`[page] ${message.text()}`));
  const result = await runBench(page, server.origin, {
    model: `${server.origin}/hub/bench/model/resolve/main`,
    backend: 'webgpu',
    load_only: '1',
  }, { timeout: 1_800_000 });
  const weights = server.requests.filter((entry) => entry.url.endsWith('.safetensors') && entry.method === 'GET');
  console.log(JSON.stringify({ ...result, weight_requests: weights.length }));
} finally {
  await browser.close();
  await server.close();
}

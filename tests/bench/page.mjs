// Runs the bench page once in headless Chromium (WebGPU on SwiftShader) against a model folder
// served as a hub repo, and prints the page's JSON: per-stage timings, the worker's wasm heap
// (`wasm_heap_peak_bytes`: wasm memory never shrinks, so its size is its peak), the adapter.
//
//   node tests/bench/page.mjs MODEL_FOLDER [key=value ...]     (bench page parameters)
//
// `lm=hub` points the language-model modes at the same folder; `TODDLER_DIST=dist` runs the
// tests' debug bundle instead of dist-release/.
//
// `cargo xtask bench browser` and `cargo xtask bench heap` build dist-release/ and run this.
import { join } from 'node:path';
import { startServer, launchBrowser, runBench, repoRoot } from '../e2e/harness.mjs';

const [folder, ...pairs] = process.argv.slice(2);
if (!folder) {
  console.error('usage: node tests/bench/page.mjs MODEL_FOLDER [key=value ...]');
  process.exit(2);
}
const server = await startServer({ root: join(repoRoot, process.env.TODDLER_DIST ?? 'dist-release'), hub: { 'bench/model': folder } });
const params = {
  model: `${server.origin}/hub/bench/model/resolve/main`,
  backend: 'webgpu',
  ...Object.fromEntries(pairs.map((pair) => pair.split(/=(.*)/s).slice(0, 2))),
};
if (params.lm === 'hub') params.lm = params.model;
for (const key of ['noise', 'embedding']) {
  // A local file for these is served from the fixtures route.
  if (params[key] && !params[key].includes('://')) params[key] = `${server.origin}/fixtures/${params[key]}`;
}
const browser = await launchBrowser(server);
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`[page] ${message.text()}`));
  const result = await runBench(page, server.origin, params, { timeout: 1_800_000 });
  const weightRequests = server.requests.filter((entry) => entry.url.endsWith('.safetensors') && entry.method === 'GET');
  if (result.latents) result.latents = { shape: result.latents.shape };
  console.log(JSON.stringify({ ...result, weight_requests: weightRequests.length }));
} finally {
  await browser.close();
  await server.close();
}

// The engine beside ONNX Runtime Web (npm `onnxruntime-web`, the peer a web developer would
// pick) on the same UNet, in one headless Chromium: time per UNet step on WebGPU (SwiftShader)
// and on the CPU (the engine's wasm fallback against ORT's wasm backend, one thread each).
//
//   node tests/bench/ort.mjs MODEL_FOLDER UNET.onnx LATENT_SIDE [RUNS] [BACKENDS]
//
// UNET.onnx comes from models/export_unet_onnx.py (same folder, same latent side); the engine
// runs the bench page of dist-release/ (`cargo xtask bench ort` builds both and runs this).
// Both sides: a warm-up run first, then the best of RUNS; the engine's step is a 2-step
// generation's fastest step, ORT's one `session.run` with the output read back. BACKENDS is
// `webgpu,cpu` (the default), `webgpu` or `cpu`.
import { mkdtemp, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startServer, launchBrowser, runBench, repoRoot } from '../e2e/harness.mjs';

const [folder, onnx, sideText, runsText = '5', backendsText = 'webgpu,cpu'] = process.argv.slice(2);
if (!folder || !onnx || !sideText) {
  console.error('usage: node tests/bench/ort.mjs MODEL_FOLDER UNET.onnx LATENT_SIDE [RUNS] [BACKENDS]');
  process.exit(2);
}
const side = Number(sideText);
const runs = Number(runsText);
const contextDim = JSON.parse(
  await (await import('node:fs/promises')).readFile(join(folder, 'unet', 'config.json'), 'utf8'),
).cross_attention_dim;

// One folder served as the site: the release app (for the engine's bench page), ORT's files,
// the ONNX model and ORT's page.
const site = await mkdtemp(join(tmpdir(), 'ort-bench-'));
const dist = join(repoRoot, 'dist-release');
for (const entry of await readdir(dist)) await symlink(join(dist, entry), join(site, entry));
await symlink(join(repoRoot, 'xtask/npm/node_modules/onnxruntime-web/dist'), join(site, 'ort'));
await symlink(resolve(onnx), join(site, 'unet.onnx'));
await writeFile(join(site, 'ort-bench.html'), `<!doctype html><meta charset="utf-8"><pre id="result"></pre>
<script type="module">
import * as ort from '/ort/ort.webgpu.min.mjs';
const params = new URLSearchParams(location.search);
const [side, dim, runs, ep] = ['side', 'dim', 'runs', 'ep'].map((key) => params.get(key));
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = '/ort/';
const random = (count) => Float32Array.from({ length: count }, () => Math.random() * 2 - 1);
try {
  const session = await ort.InferenceSession.create('/unet.onnx', { executionProviders: [ep] });
  const feeds = {
    sample: new ort.Tensor('float32', random(4 * side * side), [1, 4, +side, +side]),
    timestep: new ort.Tensor('float32', Float32Array.of(999), [1]),
    encoder_hidden_states: new ort.Tensor('float32', random(77 * dim), [1, 77, +dim]),
  };
  const step = async () => {
    const started = performance.now();
    const output = await session.run(feeds);
    await output.out_sample.getData();
    return performance.now() - started;
  };
  const first = await step();
  const times = [];
  for (let run = 0; run < runs; run += 1) times.push(await step());
  document.getElementById('result').textContent = JSON.stringify({ ep, first_ms: first, best_ms: Math.min(...times), times });
} catch (error) {
  document.getElementById('result').textContent = JSON.stringify({ ep, error: String(error) });
}
</script>`);

const server = await startServer({ root: site, hub: { 'bench/model': resolve(folder) } });
const browser = await launchBrowser(server);
const waitForResult = async (page) => {
  await page.waitForFunction(() => document.getElementById('result')?.textContent.trim().length > 0, null, { timeout: 1_800_000 });
  return JSON.parse(await page.locator('#result').textContent());
};
const rows = [];
try {
  const backends = [['webgpu', 'webgpu'], ['cpu', 'wasm']]
    .filter(([backend]) => backendsText.split(',').includes(backend));
  for (const [backend, ep] of backends) {
    const enginePage = await browser.newPage();
    const engine = await runBench(enginePage, server.origin, {
      model: `${server.origin}/hub/bench/model/resolve/main`,
      prompt: 'a toddler in a yellow raincoat',
      steps: String(Math.max(2, runs)),
      guidance: '0',
      width: String(side * 8),
      height: String(side * 8),
      seed: '0',
      warmup: '1',
      backend,
    }, { timeout: 1_800_000 });
    await enginePage.close();
    if (engine.error) throw new Error(`engine on ${backend}: ${engine.error}`);
    const ortPage = await browser.newPage();
    await ortPage.goto(`${server.origin}/ort-bench.html?side=${side}&dim=${contextDim}&runs=${runs}&ep=${ep}`);
    const peer = await waitForResult(ortPage);
    await ortPage.close();
    if (peer.error) throw new Error(`ORT ${ep}: ${peer.error}`);
    const engineStep = Math.min(...engine.timings_ms.unet);
    rows.push({
      backend,
      adapter: engine.adapter,
      precision: engine.precision,
      engine_step_ms: Math.round(engineStep),
      ort_step_ms: Math.round(peer.best_ms),
      engine_over_ort: Number((engineStep / peer.best_ms).toFixed(2)),
      engine_steps_ms: engine.timings_ms.unet.map(Math.round),
      ort_runs_ms: peer.times.map(Math.round),
      ort_first_ms: Math.round(peer.first_ms),
    });
    console.log(JSON.stringify(rows.at(-1)));
  }
} finally {
  await browser.close();
  await server.close();
}

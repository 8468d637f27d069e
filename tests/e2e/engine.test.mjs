// The engine in its Web Worker, in a real browser: generation on WebGPU (SwiftShader) and on the
// CPU fallback matches diffusers' latents, and the page stays responsive while it draws.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, trackContext, watchPage, saveArtifact, readSafetensors, relativeL2, runBench, fixturesDir,
} from './harness.mjs';
import { readFile } from 'node:fs/promises';

let server;
let browser;
let golden;
let runs;

before(async () => {
  server = await startServer();
  browser = await launchBrowser(server);
  golden = await readSafetensors(join(fixturesDir, 'image-golden.safetensors'));
  runs = JSON.parse(await readFile(join(fixturesDir, 'pipeline-runs.json'), 'utf8'));
  // The SDXS-512-layout fixture keeps its run and golden beside it (models/make_sdxs_fixtures.py).
  runs['tiny-sdxs-512'] = JSON.parse(await readFile(join(fixturesDir, 'tiny-sdxs-512-run.json'), 'utf8'));
  const sdxs = await readSafetensors(join(fixturesDir, 'tiny-sdxs-512-golden.safetensors'));
  golden['tiny-sdxs-512.pipeline.latents'] = sdxs['pipeline.latents'];
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** The bench parameters of a fixture's diffusers run (pipeline-runs.json). */
function benchParams(name, backend) {
  const run = runs[name];
  const repo = name.replace('tiny-', 'tiny/');
  return {
    model: `${server.origin}/hub/${repo}/resolve/main`,
    prompt: run.prompt,
    negative: run.negative_prompt ?? '',
    steps: String(run.num_inference_steps),
    guidance: String(run.guidance_scale),
    width: '32',
    height: '32',
    seed: '0',
    noise: `${server.origin}/fixtures/${name}-noise.safetensors`,
    backend,
  };
}

// Same tolerance as the native pipeline parity test: the worker runs the same engine code.
const TOLERANCE = 1e-3;

for (const backend of ['webgpu', 'cpu']) {
  for (const name of ['tiny-sd2', 'tiny-sdxs', 'tiny-sdxs-512']) {
    test(`${name} in the worker on ${backend} matches diffusers' latents`, async () => {
      const context = trackContext(server, await browser.newContext());
      const page = await context.newPage();
      const problems = watchPage(page);
      const result = await runBench(page, server.origin, benchParams(name, backend));
      await saveArtifact(`bench-${name}-${backend}.json`, { ...result, latents: { shape: result.latents?.shape } });
      await context.close();
      assert.equal(result.error, undefined, `bench failed: ${result.error}`);
      assert.equal(result.backend, backend);
      const expected = golden[`${name}.pipeline.latents`];
      assert.deepEqual(result.latents.shape, expected.shape);
      const error = relativeL2(result.latents.data, expected.data);
      console.log(`${name} ${backend} (${result.adapter}): relative L2 ${error.toExponential(2)}, timings ${JSON.stringify(result.timings_ms)}`);
      assert.ok(error <= TOLERANCE, `relative L2 ${error}`);
      assert.equal(result.timings_ms.unet.length, runs[name].num_inference_steps);
      assert.ok(result.wasm_heap_peak_bytes > 0);
      // Chosen automatically: f16 exactly where the adapter computes in it (SwiftShader does not).
      assert.equal(result.precision, backend === 'webgpu' && result.f16 ? 'f16' : 'f32');
      assert.deepEqual(problems, []);
    });
  }
}

test('asked for f16 on a GPU without shader-f16, the worker draws in f32 and still matches', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  const result = await runBench(page, server.origin, { ...benchParams('tiny-sd2', 'webgpu'), dtype: 'f16' });
  await context.close();
  assert.equal(result.error, undefined, `bench failed: ${result.error}`);
  assert.equal(result.f16, false, 'SwiftShader offers no shader-f16');
  assert.equal(result.precision, 'f32');
  const error = relativeL2(result.latents.data, golden['tiny-sd2.pipeline.latents'].data);
  assert.ok(error <= TOLERANCE, `relative L2 ${error}`);
  assert.deepEqual(problems, []);
});

test("a LoRA file loads in the worker and draws what diffusers' load_lora_weights draws", async () => {
  const loraGolden = await readSafetensors(join(fixturesDir, 'loras', 'lora-golden.safetensors'));
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  const result = await runBench(page, server.origin, {
    ...benchParams('tiny-sd2', 'webgpu'),
    lora: `${server.origin}/fixtures/loras/tiny-sd2-peft.safetensors`,
    lora_scale: '0.5',
  });
  await context.close();
  assert.equal(result.error, undefined, `bench failed: ${result.error}`);
  const error = relativeL2(result.latents.data, loraGolden['tiny-sd2-peft@0.5'].data);
  console.log(`LoRA at 0.5 in the worker: relative L2 ${error.toExponential(2)}`);
  assert.ok(error <= TOLERANCE, `relative L2 ${error}`);
  assert.deepEqual(problems, []);
});

test('the page stays responsive while the worker draws, and Cancel stops the drawing', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  // A main-thread heartbeat every 20 ms: a long gap means the page froze.
  await page.addInitScript(() => {
    window.heartbeat = { last: performance.now(), longest: 0, beats: 0 };
    setInterval(() => {
      const now = performance.now();
      window.heartbeat.longest = Math.max(window.heartbeat.longest, now - window.heartbeat.last);
      window.heartbeat.last = now;
      window.heartbeat.beats += 1;
    }, 20);
  });
  const params = new URLSearchParams(benchParams('tiny-sdxs', 'webgpu')).toString();
  await page.goto(`${server.origin}/bench.html?${params}`);
  await page.getByTestId('bench-status').filter({ hasText: 'step 1 of 3' }).waitFor({ timeout: 240_000 });
  // Mid-drawing, the page answers a click at once.
  const clickStarted = Date.now();
  await page.getByTestId('bench-cancel').click();
  const clickMs = Date.now() - clickStarted;
  await page.waitForFunction(() => document.getElementById('result')?.textContent.trim().length > 0, null, { timeout: 120_000 });
  const result = JSON.parse(await page.locator('#result').textContent());
  const heartbeat = await page.evaluate(() => window.heartbeat);
  await context.close();
  console.log(`longest main-thread gap ${heartbeat.longest.toFixed(0)} ms over ${heartbeat.beats} beats; cancel click ${clickMs} ms`);
  assert.equal(result.error, 'cancelled');
  // The engine's wasm is compiled and run in the worker; the page's longest pause stays short.
  assert.ok(heartbeat.longest < 500, `the page froze for ${heartbeat.longest} ms`);
  assert.ok(heartbeat.beats > 50);
  assert.deepEqual(problems, []);
});

test('without WebGPU the worker draws on the CPU and says why, in plain words', async () => {
  const plainBrowser = await launchBrowser(server, { webgpu: false });
  try {
    const context = trackContext(server, await plainBrowser.newContext());
    const page = await context.newPage();
    const result = await runBench(page, server.origin, benchParams('tiny-sd2', 'webgpu'));
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.backend, 'cpu');
    assert.match(result.fallback_reason, /slower/);
    const error = relativeL2(result.latents.data, golden['tiny-sd2.pipeline.latents'].data);
    assert.ok(error <= TOLERANCE, `relative L2 ${error}`);
  } finally {
    await plainBrowser.close();
  }
});

test('an engine worker that dies mid-load is reported at once in plain words, not waited on', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  // Once the UNet's weights start to stream, the worker dies as a wasm trap (out of memory, a
  // lost GPU) kills it: an uncaught RuntimeError.
  page.on('worker', (worker) => {
    if (!worker.url().includes('engine-worker')) return;
    worker.evaluate(() => {
      const fetchFirst = self.fetch.bind(self);
      self.fetch = (request, ...rest) => {
        if (String(request?.url ?? request).includes('unet/diffusion_pytorch_model')) {
          setTimeout(() => { throw new WebAssembly.RuntimeError('unreachable'); });
        }
        return fetchFirst(request, ...rest);
      };
    }).catch(() => {});
  });
  const result = await runBench(page, server.origin, benchParams('tiny-sd2', 'webgpu'), { timeout: 60_000 });
  await context.close();
  assert.match(result.error ?? '', /The picture engine stopped unexpectedly/, JSON.stringify(result));
  assert.match(result.error, /Nothing you made is lost/);
  assert.match(result.error, /RuntimeError: unreachable/);
  assert.deepEqual(problems.filter((problem) => !problem.includes('RuntimeError: unreachable')), []);
});

test('a separate decoder (TAESD layout) loads from its own repo, and loading reports progress', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.addInitScript(() => {
    window.statuses = [];
    new MutationObserver(() => {
      const status = document.querySelector('[data-testid=bench-status]')?.textContent;
      if (status && status !== window.statuses.at(-1)) window.statuses.push(status);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  const first = server.requests.length;
  const result = await runBench(page, server.origin, {
    ...benchParams('tiny-sd2', 'cpu'),
    decoder: `${server.origin}/hub/tiny/taesd/resolve/main`,
  });
  const requests = server.requests.slice(first);
  const statuses = await page.evaluate(() => window.statuses);
  await context.close();
  assert.equal(result.error, undefined, result.error);
  // The decoder does not change the latents.
  assert.ok(relativeL2(result.latents.data, golden['tiny-sd2.pipeline.latents'].data) <= TOLERANCE);
  const decoderRequests = requests.filter((entry) => entry.url.includes('/hub/tiny/taesd/resolve/main/diffusion_pytorch_model'));
  assert.ok(decoderRequests.length > 0, 'the decoder came from its own repo');
  const sd2Vae = requests.filter((entry) => entry.url.includes('/hub/tiny/sd2/resolve/main/vae/diffusion') && entry.method === 'GET');
  assert.equal(sd2Vae.length, 0, "the model's own VAE weights were not downloaded");
  const loading = statuses.filter((status) => status.startsWith('loading the model…'));
  assert.ok(loading.length >= 2, `load progress: ${JSON.stringify(statuses)}`);
  assert.deepEqual(problems, []);
});

test('avatar training in the worker checkpoints, previews, and after a reload resumes from the checkpoint', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  // Two photos, 32², four steps: SwiftShader needs about 10 s a step.
  const photos = ['toddler-1.jpg', 'toddler-3.webp']
    .map((name) => `${server.origin}/fixtures/photos/${name}`)
    .join(',');
  const params = new URLSearchParams({
    model: `${server.origin}/hub/tiny/sd2/resolve/main`,
    photos, token: '<kid>', steps: '4', checkpoint_every: '2', preview_every: '4', resolution: '32', lr: '0.05', seed: '0',
    // The app checkpoints gradients from 384² up; here on purpose, so the browser runs that path.
    backend: 'webgpu', gradient_checkpointing: 'true',
  }).toString();
  await page.goto(`${server.origin}/bench.html?${params}`);
  await page.getByTestId('bench-status').filter({ hasText: /training step 3 of 4/ }).waitFor({ timeout: 300_000 });
  // The tab goes away mid-training (a reload ends the worker); the next visit goes on.
  await page.reload();
  await page.waitForFunction(() => document.getElementById('result')?.textContent.trim().length > 0, null, { timeout: 300_000 });
  const result = JSON.parse(await page.locator('#result').textContent());
  await context.close();
  console.log(`training resumed from step ${result.resumed_from}; eval loss ${result.eval_loss_before} → ${result.eval_loss_after}`);
  assert.equal(result.error, undefined, result.error);
  assert.equal(result.backend, 'webgpu');
  assert.equal(result.resumed_from, 2);
  assert.deepEqual(result.steps.map((step) => step.step), [3, 4]);
  // A preview picture at step 4, drawn with the vectors as they were then.
  assert.deepEqual(result.previews, [4]);
  assert.ok(result.steps.every((step) => Number.isFinite(step.loss)));
  assert.ok(result.embedding_bytes > 0);
  assert.equal(result.lora_bytes, 0, 'no LoRA unless asked');
  // The photos were read from the app's own origin only.
  assert.deepEqual(server.foreignAppRequests(), []);
  assert.deepEqual(problems, []);
});

test('pivotal tuning in the worker: the vectors and a LoRA learn together, and the LoRA comes back', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  const params = new URLSearchParams({
    model: `${server.origin}/hub/tiny/sd2/resolve/main`,
    photos: `${server.origin}/fixtures/photos/toddler-1.jpg,${server.origin}/fixtures/photos/toddler-2.png`,
    token: '<kid>', steps: '3', checkpoint_every: '2', preview_every: '3', resolution: '32', lr: '0.05', seed: '0',
    backend: 'cpu', lora_rank: '4',
  }).toString();
  await page.goto(`${server.origin}/bench.html?${params}`);
  await page.waitForFunction(() => document.getElementById('result')?.textContent.trim().length > 0, null, { timeout: 300_000 });
  const result = JSON.parse(await page.locator('#result').textContent());
  await context.close();
  assert.equal(result.error, undefined, result.error);
  console.log(`pivotal tuning in the worker: eval loss ${result.eval_loss_before} → ${result.eval_loss_after}, LoRA ${result.lora_bytes} bytes`);
  assert.deepEqual(result.steps.map((step) => step.step), [1, 2, 3]);
  assert.deepEqual(result.previews, [3], 'the preview draws with the LoRA as it is');
  assert.ok(result.embedding_bytes > 0);
  assert.ok(result.lora_bytes > 10_000, `${result.lora_bytes} bytes of LoRA`);
  assert.deepEqual(problems, []);
});

// The likeness score in the worker: face-api.js' detector and descriptor on burn, against
// face-api.js itself (models/faces/reference.mjs) — the same tolerances as the native test.
for (const backend of ['webgpu', 'cpu']) {
  test(`the face matcher in the worker on ${backend} finds and describes faces as face-api.js does`, async () => {
    const faceGolden = JSON.parse(await readFile(join(fixturesDir, 'faces', 'golden.json'), 'utf8'));
    const files = ['astronaut.png', 'no-face.png', 'two-faces.png'];
    const context = trackContext(server, await browser.newContext());
    const page = await context.newPage();
    const problems = watchPage(page);
    const pictures = files.map((file) => `${server.origin}/fixtures/faces/${file}`).join(',');
    // Two rounds: the first loads the models (and compiles kernels), the second is warm.
    const result = await runBench(page, server.origin, { faces: pictures, backend, rounds: '2' }, { timeout: 120_000 });
    await saveArtifact(`bench-faces-${backend}.json`, { rounds_ms: result.rounds_ms, error: result.error });
    await context.close();
    assert.equal(result.error, undefined, `bench failed: ${result.error}`);
    files.forEach((file, index) => {
      const expected = faceGolden.images.find((image) => image.file === file);
      const found = result.pictures[index];
      assert.equal(found.length, expected.faces.length, `${file}: faces found`);
      found.forEach((face, f) => {
        const reference = expected.faces[f];
        const [x, y, w, h] = reference.box;
        const inPixels = [face.x * expected.width, face.y * expected.height, face.width * expected.width, face.height * expected.height];
        [x, y, w, h].forEach((value, i) => assert.ok(Math.abs(inPixels[i] - value) < 0.02, `${file}: box ${inPixels[i]} vs ${value}`));
        assert.ok(Math.abs(face.confidence - reference.score) < 1e-4, `${file}: confidence`);
        const off = Math.max(...face.descriptor.map((value, i) => Math.abs(value - reference.descriptor[i])));
        assert.ok(off < 2e-4, `${file}: descriptor off by ${off}`);
      });
    });
    assert.deepEqual(problems, []);
  });
}

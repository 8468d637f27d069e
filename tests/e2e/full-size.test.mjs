// SD-Turbo at its real size (865 M-parameter UNet, OpenCLIP-H text encoder, SD VAE: 2.5 GB of
// fp16 files, seeded random weights made by `cargo xtask full-size-model`) in the engine worker,
// on the two paths a browser without `shader-f16` takes: WebGPU in f32 asking for nothing beyond
// WebGPU's default limits (128 MiB per binding, 256 MiB per buffer; SwiftShader grants 1 GiB), and
// the CPU fallback, whose wasm32 memory ends at 4 GiB. Each 64² picture must match the native
// engine's latents on the same files (the native engine is held to diffusers by the parity
// suites); the worker's wasm heap is reported.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  startServer, launchBrowser, trackContext, watchPage, saveArtifact, readSafetensors, relativeL2, runBench, repoRoot, HUB_REPOS,
} from './harness.mjs';

const modelFolder = process.env.TODDLER_FULL_SIZE_MODEL
  ?? join(homedir(), '.cache', 'toddlerstories', 'models', 'sd-turbo-full-random');
const targetDir = process.env.CARGO_TARGET_DIR ?? join(repoRoot, 'target');
const toddler = join(targetDir, 'debug', 'toddler');

const RUN = { prompt: 'a toddler in a red raincoat jumping in puddles', steps: '1', guidance: '0', width: '64', height: '64', seed: '0' };
// The same engine code in f32; the wasm CPU's and SwiftShader's sums round in other orders than
// the native CPU's over a 2.5 GB model with random weights.
const TOLERANCE = 1e-3;
const WASM32_LIMIT = 4 * 1024 ** 3;

let server;
let browser;
let native;

before(async () => {
  assert.ok(existsSync(join(modelFolder, 'unet', 'diffusion_pytorch_model.fp16.safetensors')),
    `no full-size model in ${modelFolder}: run \`cargo xtask full-size-model\``);
  assert.ok(existsSync(toddler), `no native engine at ${toddler}: run \`cargo test\` (or cargo build -p engine) first`);
  // The native engine's latents for the same run (CPU, f32 arithmetic on the same files).
  const latentsFile = join(tmpdir(), `full-size-native-${process.pid}.safetensors`);
  await promisify(execFile)(toddler, [
    'generate', '--model', modelFolder, '--prompt', RUN.prompt, '--steps', RUN.steps, '--guidance', RUN.guidance,
    '--width', RUN.width, '--height', RUN.height, '--seed', RUN.seed,
    '--out', join(tmpdir(), `full-size-native-${process.pid}.png`), '--latents-out', latentsFile,
  ], { timeout: 600_000 });
  native = (await readSafetensors(latentsFile)).latents;
  server = await startServer({ hub: { ...HUB_REPOS, 'full/sd-turbo': modelFolder } });
  browser = await launchBrowser(server);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function drawAtFullSize(params) {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  const result = await runBench(page, server.origin, {
    model: `${server.origin}/hub/full/sd-turbo/resolve/main`,
    ...RUN,
    // The Models screen's estimate first, for this picture, beside what it then measures.
    estimate: '1',
    stored: 'f16',
    ...params,
  }, { timeout: 1_500_000 });
  await context.close();
  return { result, problems };
}

function checkAgainstNative(name, result, problems) {
  assert.equal(result.error, undefined, `bench failed: ${result.error}`);
  assert.deepEqual(result.latents.shape, native.shape);
  assert.ok(result.latents.data.every(Number.isFinite), 'latents are finite');
  const error = relativeL2(result.latents.data, native.data);
  console.log(`full-size SD-Turbo, ${name} (${result.adapter}, ${result.precision}): relative L2 ${error.toExponential(2)} `
    + `against the native engine; timings ${JSON.stringify(result.timings_ms)}, `
    + `wasm heap ${(result.wasm_heap_peak_bytes / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(error <= TOLERANCE, `relative L2 ${error}`);
  assert.ok(result.wasm_heap_peak_bytes < WASM32_LIMIT);
  // The estimate made from the configs and a few seconds of kernels, beside the measurement.
  const { estimate, speed } = result.estimated;
  const drawn = (result.timings_ms.text + result.timings_ms.unet.reduce((sum, ms) => sum + ms, 0) + result.timings_ms.decode) / 1000;
  const memory = result.gpu_memory ? result.gpu_memory.reserved_bytes : result.wasm_heap_peak_bytes;
  console.log(`  estimated ${estimate.picture_seconds.toFixed(1)} s for the picture (drew in ${drawn.toFixed(1)} s: `
    + `${(drawn / estimate.picture_seconds).toFixed(2)}×), ${(estimate.picture_memory_bytes / 2 ** 20).toFixed(0)} MiB `
    + `(measured ${(memory / 2 ** 20).toFixed(0)} MiB); rates ${JSON.stringify(speed)}, measured in ${result.estimated.ms.toFixed(0)} ms`);
  assert.ok(drawn / estimate.picture_seconds < 4 && estimate.picture_seconds / drawn < 4, 'the estimate is within 4× of the time');
  assert.ok(Math.abs(estimate.picture_memory_bytes / memory - 1) < 0.35, 'the memory estimate is within 35%');
  assert.deepEqual(problems, []);
}

test('SD-Turbo at full size draws on the CPU fallback within wasm32 memory and matches the native engine', async () => {
  const { result, problems } = await drawAtFullSize({ backend: 'cpu' });
  await saveArtifact('full-size-cpu.json', { ...result, latents: { shape: result.latents?.shape } });
  assert.equal(result.backend, 'cpu');
  checkAgainstNative('CPU fallback', result, problems);
  // Weights held as stored (f16): 2.5 GB of weights, not the 4.9 GB f32 copies that ended the
  // worker before, with room left for a larger picture's activations.
  assert.ok(result.wasm_heap_peak_bytes < 3.3 * 1024 ** 3, `heap ${result.wasm_heap_peak_bytes}`);
});

test("SD-Turbo at full size draws on WebGPU in f32 within WebGPU's default limits and matches the native engine", async () => {
  const { result, problems } = await drawAtFullSize({ backend: 'webgpu', limits: 'default' });
  await saveArtifact('full-size-webgpu-default-limits.json', { ...result, latents: { shape: result.latents?.shape } });
  assert.equal(result.backend, 'webgpu');
  assert.equal(result.f16, false, 'SwiftShader offers no shader-f16');
  assert.equal(result.precision, 'f32');
  checkAgainstNative('WebGPU f32, default limits', result, problems);
  // The device had only WebGPU's default binding size, so wgpu's validation refused any binding
  // above 128 MiB: the picture above drew within it.
  assert.equal(result.max_binding_bytes, 128 * 2 ** 20);
  console.log(`GPU memory: ${(result.gpu_memory.reserved_bytes / 2 ** 20).toFixed(0)} MiB reserved by burn's allocator`);
  assert.ok(result.gpu_memory.reserved_bytes > 2 ** 30);
});

// One avatar step on the full-size model on the CPU fallback: textual inversion with a rank-4
// LoRA (pivotal tuning), the gradient flowing back through the 865 M-parameter UNet and the text
// encoder, within wasm32's memory. Computing in f16 (burn's CPU f16 kernels, held to the f16
// tolerances by engine/tests/cpu_half_precision.rs): in f32 every held weight's widened copy
// stays alive for the backward pass, 7.5 GB natively. At 64² to keep CI's time
// (docs/benchmarks.md has the larger sizes).
test('an avatar step with a LoRA on the full-size model runs on the CPU fallback within wasm32 memory', async () => {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  const photos = ['toddler-1.jpg', 'toddler-2.png'].map((name) => `${server.origin}/fixtures/photos/${name}`).join(',');
  const result = await runBench(page, server.origin, {
    model: `${server.origin}/hub/full/sd-turbo/resolve/main`,
    photos, token: '<kid>', steps: '1', resolution: '64', seed: '0', checkpoint_every: '1000', lora_rank: '4', backend: 'cpu', dtype: 'f16',
  }, { timeout: 1_500_000 });
  await context.close();
  await saveArtifact('full-size-avatar-cpu.json', result);
  assert.equal(result.error, undefined, `training failed: ${result.error}`);
  assert.equal(result.backend, 'cpu');
  assert.equal(result.precision, 'f16');
  assert.equal(result.steps.length, 1);
  assert.ok(Number.isFinite(result.steps[0].loss), `loss ${result.steps[0].loss}`);
  assert.ok(Number.isFinite(result.eval_loss_after));
  assert.ok(result.lora_bytes > 100_000, `${result.lora_bytes} bytes of LoRA`);
  console.log(`full-size avatar step on the CPU fallback (64², LoRA rank 4): ${result.steps[0].seconds.toFixed(1)} s, `
    + `loss ${result.steps[0].loss.toFixed(4)}, wasm heap ${(result.wasm_heap_peak_bytes / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(result.wasm_heap_peak_bytes > 0 && result.wasm_heap_peak_bytes < WASM32_LIMIT);
  assert.deepEqual(problems, []);
});

// The same step on WebGPU in f32 within WebGPU's default limits (SwiftShader: no shader-f16).
// Opt-in (TODDLER_SLOW_TESTS=1): SwiftShader computes at under a GFLOP/s; on a quiet 2-core
// machine the step took 12.6 min and the whole test, with the paired evaluation's 16 forward
// passes, 98.5 min (docs/benchmarks.md) — far beyond CI's time. It waits up to 2.5 hours.
test('an avatar step with a LoRA on the full-size model runs on WebGPU in f32 within the default limits',
  { skip: !process.env.TODDLER_SLOW_TESTS && 'set TODDLER_SLOW_TESTS=1 (about 100 minutes on SwiftShader)' }, async () => {
    const context = trackContext(server, await browser.newContext());
    const page = await context.newPage();
    const problems = watchPage(page);
    const photos = ['toddler-1.jpg', 'toddler-2.png'].map((name) => `${server.origin}/fixtures/photos/${name}`).join(',');
    const result = await runBench(page, server.origin, {
      model: `${server.origin}/hub/full/sd-turbo/resolve/main`,
      photos, token: '<kid>', steps: '1', resolution: '64', seed: '0', checkpoint_every: '1000', lora_rank: '4',
      backend: 'webgpu', limits: 'default',
    }, { timeout: 9_000_000 });
    await context.close();
    await saveArtifact('full-size-avatar-webgpu-default-limits.json', result);
    assert.equal(result.error, undefined, `training failed: ${result.error}`);
    assert.equal(result.backend, 'webgpu');
    assert.equal(result.precision, 'f32');
    assert.equal(result.steps.length, 1);
    assert.ok(Number.isFinite(result.steps[0].loss), `loss ${result.steps[0].loss}`);
    assert.ok(result.lora_bytes > 100_000, `${result.lora_bytes} bytes of LoRA`);
    console.log(`full-size avatar step on WebGPU f32, default limits (64², LoRA rank 4): ${result.steps[0].seconds.toFixed(1)} s, `
      + `loss ${result.steps[0].loss.toFixed(4)}, GPU memory ${(result.gpu_memory.reserved_bytes / 2 ** 20).toFixed(0)} MiB, `
      + `wasm heap ${(result.wasm_heap_peak_bytes / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(result.wasm_heap_peak_bytes < WASM32_LIMIT);
    assert.deepEqual(problems, []);
  });

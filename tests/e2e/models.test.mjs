// The model manager in a real browser, against a local server laid out like the Hugging Face hub
// (`/hub/{repo}/resolve/{revision}/{path}`, HEAD, Range) serving the tiny fixture models under the
// registry's repo names: download with progress, resume after a broken connection, draw from the
// stored model, delete.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, cp, writeFile, mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import {
  startServer, launchBrowser, trackContext, watchPage, waitForApp, screenshot, readSafetensors, relativeL2, runBench, fixturesDir, PRODUCT_HUB,
} from './harness.mjs';

const MODEL_FOLDER = 'stabilityai--sd-turbo--main';
const TEXT_WEIGHTS = '/hub/stabilityai/sd-turbo/resolve/main/text_encoder/model.fp16.safetensors';

let server;
let browser;
let context;
let page;
let problems;

/** The registry's entry for `repo`. */
async function registryEntry(repo) {
  const registry = JSON.parse(await readFile(join(fixturesDir, '..', 'registry.json'), 'utf8'));
  return registry.models.find((model) => model.repo === repo);
}

/** What the app shows for a byte count (model_store::format_bytes). */
function formatBytes(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(0)} MB`;
  return `${Math.ceil(bytes / 1e3).toFixed(0)} KB`;
}

// SDXS's registry entry served by a folder whose scheduler is one the engine lacks.
let foreignModel;

before(async () => {
  foreignModel = await mkdtemp(join(tmpdir(), 'foreign-scheduler-'));
  await cp(join(fixturesDir, 'tiny-sdxs'), foreignModel, { recursive: true });
  const schedulerPath = join(foreignModel, 'scheduler', 'scheduler_config.json');
  const scheduler = JSON.parse(await readFile(schedulerPath, 'utf8'));
  await writeFile(schedulerPath, JSON.stringify({ ...scheduler, _class_name: 'DPMSolverMultistepScheduler' }));
  server = await startServer({ hub: { ...PRODUCT_HUB, 'IDKiro/sdxs-512-0.9': foreignModel } });
  browser = await launchBrowser(server);
  context = trackContext(server, await browser.newContext());
  // The parent's own model host: this server (the default is the real hub, unreachable here).
  await context.addInitScript((hub) => {
    localStorage.setItem('toddler.hub_base', hub);
    // Every value the overall progress bar takes, to show the download reports as it goes.
    window.progressSeen = [];
    new MutationObserver(() => {
      const bar = document.querySelector('[data-testid=model-stabilityai-sd-turbo] [data-testid=progress-overall]');
      if (bar) window.progressSeen.push([Number(bar.value), Number(bar.max)]);
    }).observe(document, { subtree: true, childList: true, attributes: true });
  }, `${(await server).origin}/hub`);
  page = await context.newPage();
  problems = watchPage(page);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

function card() {
  return page.getByTestId('model-stabilityai-sd-turbo');
}

test('a model downloads into the device store with progress per file and overall', async () => {
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  await card().getByTestId('model-status').filter({ hasText: 'Not on this device' }).waitFor();
  // The parent hears the host's real size (not the registry's estimate) before anything downloads.
  const before = server.requests.length;
  await card().getByRole('button', { name: 'Download' }).click();
  const entry = await registryEntry('stabilityai/sd-turbo');
  const hostBytes = (await Promise.all(entry.files.map(async (file) => (await stat(join(PRODUCT_HUB['stabilityai/sd-turbo'], file.path))).size)))
    .reduce((a, b) => a + b, 0);
  const confirm = card().getByRole('button', { name: `Download ${formatBytes(hostBytes)}` });
  await confirm.waitFor();
  assert.match(await card().getByTestId('model-offer').textContent(), new RegExp(`SD-Turbo is ${formatBytes(hostBytes)} on the model host`));
  assert.notEqual(formatBytes(hostBytes), formatBytes(entry.files.reduce((sum, file) => sum + file.approx_bytes, 0)));
  const asked = server.requests.slice(before).filter((request) => request.url.includes('/hub/'));
  assert.ok(asked.length > 0 && asked.every((request) => request.method === 'HEAD'), 'only sizes were asked for');
  await screenshot(page, 'models-size-offer');
  await confirm.click();
  await card().getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor({ timeout: 60_000 });
  const seen = await page.evaluate(() => window.progressSeen);
  const [done, total] = seen.at(-1);
  assert.equal(done, total);
  const expectedTotal = (await Promise.all(
    ['model_index.json', 'text_encoder/model.fp16.safetensors', 'unet/diffusion_pytorch_model.fp16.safetensors', 'vae/diffusion_pytorch_model.fp16.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt'].map(
      async (path) => (await readFile(join(PRODUCT_HUB['stabilityai/sd-turbo'], path))).length,
    ),
  )).reduce((a, b) => a + b, 0);
  assert.ok(total >= expectedTotal, `overall total ${total} covers the weights (${expectedTotal})`);
  const distinct = new Set(seen.map(([value]) => value));
  assert.ok(distinct.size >= 5, `progress moved through ${distinct.size} values`);
  assert.ok(seen.every(([value], index) => index === 0 || value >= seen[index - 1][0]), 'progress never goes back');
  const fileBars = await card().getByTestId('progress-file').count();
  assert.equal(fileBars, 12);
  await screenshot(page, 'models-downloaded');
  // The default fast decoder comes along with the default model.
  await page.getByTestId('model-madebyollin-taesd').getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor({ timeout: 60_000 });
  // Every model byte came from the configured host, as hub `resolve` URLs.
  const modelRequests = server.requests.filter((entry) => entry.url.includes('/hub/'));
  assert.ok(modelRequests.some((entry) => entry.url.includes('/hub/madebyollin/taesd/resolve/main/')));
  assert.ok(modelRequests.every((entry) => /\/hub\/(stabilityai\/sd-turbo|madebyollin\/taesd)\/resolve\/main\//.test(entry.url)));
});

test('the worker draws from the stored model, matching diffusers', async () => {
  const golden = await readSafetensors(join(fixturesDir, 'image-golden.safetensors'));
  const runs = JSON.parse(await readFile(join(fixturesDir, 'pipeline-runs.json'), 'utf8'));
  const result = await runBench(page, server.origin, {
    model: `opfs:${MODEL_FOLDER}`,
    prompt: runs['tiny-sd2'].prompt,
    steps: '1', guidance: '0', width: '32', height: '32', seed: '0',
    noise: `${server.origin}/fixtures/tiny-sd2-noise.safetensors`,
    backend: 'cpu',
  });
  assert.equal(result.error, undefined, result.error);
  const error = relativeL2(result.latents.data, golden['tiny-sd2.pipeline.latents'].data);
  assert.ok(error <= 1e-3, `relative L2 ${error}`);
});

test('a broken download resumes where it stopped, with an HTTP Range request', async () => {
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  await card().getByTestId('model-delete').click();
  await card().getByTestId('model-status').filter({ hasText: 'Not on this device' }).waitFor();
  const cutAt = 700_000;
  server.breakDownload(TEXT_WEIGHTS, cutAt);
  await card().getByRole('button', { name: 'Download' }).click();
  await card().getByRole('button', { name: /^Download \d/ }).click();
  const message = card().getByTestId('model-error');
  await message.waitFor({ timeout: 60_000 });
  assert.match(await message.textContent(), /stopped at .* Resume/);
  await card().getByTestId('model-status').filter({ hasText: 'Partly downloaded' }).waitFor();
  await screenshot(page, 'models-interrupted');
  const before = server.requests.length;
  await card().getByTestId('model-resume').click();
  await card().getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor({ timeout: 60_000 });
  const resumed = server.requests.slice(before).filter((entry) => entry.url.endsWith(TEXT_WEIGHTS) && entry.method === 'GET');
  assert.equal(resumed.length, 1);
  const start = Number(/^bytes=(\d+)-$/.exec(resumed[0].range ?? '')?.[1]);
  assert.ok(start > 0 && start <= cutAt, `resumed from byte ${start} (cut at ${cutAt})`);
  // The files completed before the break (they come first in the list) were not fetched again.
  const refetched = server.requests.slice(before).filter((entry) => /\/(model_index|text_encoder\/config)\.json$/.test(entry.url) && entry.method === 'GET');
  assert.equal(refetched.length, 0);
  // And the resumed model is byte-for-byte right: it draws the golden picture.
  const golden = await readSafetensors(join(fixturesDir, 'image-golden.safetensors'));
  const runs = JSON.parse(await readFile(join(fixturesDir, 'pipeline-runs.json'), 'utf8'));
  const result = await runBench(page, server.origin, {
    model: `opfs:${MODEL_FOLDER}`, prompt: runs['tiny-sd2'].prompt, steps: '1', guidance: '0', width: '32', height: '32', seed: '0',
    noise: `${server.origin}/fixtures/tiny-sd2-noise.safetensors`, backend: 'cpu',
  });
  assert.equal(result.error, undefined, result.error);
  assert.ok(relativeL2(result.latents.data, golden['tiny-sd2.pipeline.latents'].data) <= 1e-3);
  assert.deepEqual(problems.filter((problem) => !problem.includes('Failed to load resource')), []);
});

test('a model the engine cannot run is refused before any of its weights download', async () => {
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  const sdxs = page.getByTestId('model-IDKiro-sdxs-512-0.9');
  await sdxs.getByTestId('model-status').filter({ hasText: 'Not on this device' }).waitFor();
  const before = server.requests.length;
  await sdxs.getByRole('button', { name: 'Download' }).click();
  await sdxs.getByRole('button', { name: /^Download \d/ }).click();
  const message = sdxs.getByRole('alert');
  await message.waitFor({ timeout: 60_000 });
  const text = await message.textContent();
  assert.match(text, /SDXS-512 cannot be used in this app/);
  assert.match(text, /DPMSolverMultistepScheduler/);
  assert.match(text, /Nothing large was downloaded/);
  await screenshot(page, 'models-refused-before-weights');
  // Only the small files were fetched; no weights, and nothing is left half-downloaded.
  const fetched = server.requests.slice(before).filter((request) => request.url.includes('/hub/IDKiro/') && request.method === 'GET');
  assert.ok(fetched.length > 0);
  assert.ok(fetched.every((request) => !request.url.endsWith('.safetensors')), fetched.map((request) => request.url).join('\n'));
  await sdxs.getByTestId('model-status').filter({ hasText: 'Not on this device' }).waitFor();
  assert.equal(await sdxs.getByTestId('progress-file').count(), 0, 'no progress is left from the refused model');
  assert.match(text, /ask for something the app cannot do/);
  // The model the parent already had is untouched, and still draws.
  await card().getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor();
  assert.deepEqual(problems.filter((problem) => !problem.includes('Failed to load resource')), []);
});

test('an engine worker that dies while it checks a model is noticed: the parent is told, nothing is lost, a fresh worker carries on', async () => {
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  await card().getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor();
  page.once('dialog', (dialog) => dialog.accept());
  await card().getByRole('button', { name: 'Delete' }).click();
  await card().getByTestId('model-status').filter({ hasText: 'Not on this device' }).waitFor();
  // The Models screen's estimates started the engine worker; once they are done, it dies on the
  // next request it takes (the download's check) as a wasm trap (out of memory, a lost GPU) kills
  // it: an uncaught RuntimeError in the worker.
  await page.waitForFunction(() => {
    const notes = document.querySelectorAll('[data-testid=model-estimate]');
    return notes.length > 0 && [...notes].every((note) => note.dataset.state !== 'measuring');
  }, null, { timeout: 120_000 });
  const worker = page.workers().find((candidate) => candidate.url().includes('engine-worker'));
  assert.ok(worker, 'the Models screen started the engine for its estimates');
  await worker.evaluate(() => {
    self.addEventListener('message', () => {
      throw new WebAssembly.RuntimeError('unreachable');
    }, { once: true });
  });
  await card().getByRole('button', { name: 'Download' }).click();
  await card().getByRole('button', { name: /^Download \d/ }).click();
  const message = card().getByRole('alert');
  await message.waitFor({ timeout: 60_000 });
  const text = await message.textContent();
  assert.match(text, /The picture engine stopped unexpectedly/);
  assert.match(text, /Nothing you made is lost/);
  assert.match(text, /RuntimeError: unreachable/);
  assert.doesNotMatch(text, /cannot be used/, 'the model is not blamed for the engine stopping');
  await screenshot(page, 'models-engine-stopped');
  // What was downloaded stays; resuming asks a fresh worker, which checks the model and it is ready.
  await card().getByTestId('model-status').filter({ hasText: 'Partly downloaded' }).waitFor();
  await card().getByRole('button', { name: 'Resume download' }).click();
  await card().getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor({ timeout: 120_000 });
  assert.equal(await card().getByRole('alert').count(), 0, 'the old message is gone once it worked');
  // The fast decoder's card says "default" once, not "(fast decoder) (default fast decoder)".
  const decoderHeading = await page.getByRole('heading', { name: /^TAESD/ }).innerText();
  assert.match(decoderHeading, /^TAESD \(fast decoder\)\s+\(default\)$/);
  // The stop was reported once as a warning; nothing else went wrong.
  assert.deepEqual(problems.filter((problem) => !problem.includes('Failed to load resource') && !problem.includes('RuntimeError: unreachable')), []);
});

// The model manager in a real browser, against a local server laid out like the Hugging Face hub
// (`/hub/{repo}/resolve/{revision}/{path}`, HEAD, Range) serving the tiny fixture models under the
// registry's repo names: download with progress, resume after a broken connection, draw from the
// stored model, delete.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
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

before(async () => {
  server = await startServer({ hub: PRODUCT_HUB });
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
  await card().getByTestId('model-download').click();
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
  await card().getByTestId('model-download').click();
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

// Before a parent downloads gigabytes, the Models screen says whether and how fast this device
// runs each picture model: the engine counts the model's work from its configs (a few KB, read
// from the host) over rates it measured here in a few seconds, kept for later visits. SD-Turbo is
// served in its real shapes (the committed layout's configs, no weights: none are read).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import {
  startServer, launchBrowser, trackContext, watchPage, waitForApp, checkScreen, screenshot, fixturesDir, PRODUCT_HUB,
} from './harness.mjs';

let server;
// Every browser a test opens, closed after the file even when a test fails (an open browser
// would keep the test process alive).
const browsers = [];
const servers = [];
const launch = async (...args) => {
  const browser = await launchBrowser(...args);
  browsers.push(browser);
  return browser;
};

before(async () => {
  // madebyollin/taesd's config: diffusers' AutoencoderTiny defaults.
  const taesd = await mkdtemp(join(tmpdir(), 'taesd-config-'));
  await writeFile(join(taesd, 'config.json'), JSON.stringify({ _class_name: 'AutoencoderTiny' }));
  server = await startServer({
    hub: {
      'stabilityai/sd-turbo': join(fixturesDir, 'sd-turbo-layout'),
      'IDKiro/sdxs-512-0.9': join(fixturesDir, 'tiny-sdxs-512'),
      'madebyollin/taesd': taesd,
    },
  });
});

after(async () => {
  await Promise.all(browsers.map((browser) => browser.close()));
  await Promise.all(servers.map((extra) => extra.close()));
  await server?.close();
});

/** A browser context whose model host is the test server (the default, the real hub, is unreachable). */
async function openContext(browser, setup = () => {}) {
  const context = trackContext(server, await browser.newContext());
  await context.addInitScript((hub) => localStorage.setItem('toddler.hub_base', hub), `${server.origin}/hub`);
  await setup(context);
  return context;
}

const SECONDS_OR_MORE = String.raw`about \d+ (second|seconds|minute|minutes|hour|hours|day|days)`;

/** The estimate note of `repo`'s card once it is worked out (measuring takes a few seconds). */
async function estimateOf(page, repo, state) {
  const note = page.getByTestId(`model-${repo.replace('/', '-')}`).getByTestId('model-estimate');
  await note.and(page.locator(`[data-state="${state}"]`)).waitFor({ timeout: 180_000 });
  return note;
}

test('without WebGPU the Models screen says how fast the processor runs each model, and keeps the measurement', async () => {
  const browser = await launch(server, { webgpu: false });
  const page = await (await openContext(browser)).newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  const note = await estimateOf(page, 'stabilityai/sd-turbo', 'fits');
  assert.match(
    await note.textContent(),
    new RegExp(String.raw`^This device runs SD-Turbo on the processor \(this browser cannot use the graphics chip\)\. `
      + String.raw`It can draw a page in ${SECONDS_OR_MORE}; learning an avatar takes ${SECONDS_OR_MORE}\. `
      + String.raw`It needs about [\d.]+ GB of memory\.$`),
  );
  const seconds = Number(await note.getAttribute('data-picture-seconds'));
  const avatarSeconds = Number(await note.getAttribute('data-avatar-seconds'));
  assert.ok(seconds > 0 && avatarSeconds > 100 * seconds, `${seconds} s a picture, ${avatarSeconds} s an avatar`);
  // The device card says the same, for the default model.
  await page.getByTestId('device-speed')
    .filter({ hasText: new RegExp(String.raw`^With SD-Turbo, this device draws a page in ${SECONDS_OR_MORE} and learns an avatar in ${SECONDS_OR_MORE}\.$`) })
    .waitFor();
  await estimateOf(page, 'IDKiro/sdxs-512-0.9', 'fits');
  await checkScreen(page, problems, 'models-estimate-processor');
  await screenshot(page, 'models-estimate-processor');

  // The rates are kept: a later visit reuses them rather than measuring again. Made ten times
  // slower by hand, every term of the estimate is ten times longer.
  const kept = await page.evaluate(() => JSON.parse(localStorage.getItem('toddler.device_speed')));
  assert.ok(kept.speed.flops_per_second > 1e7, JSON.stringify(kept));
  assert.ok(kept.speed.half_flops_per_second > 0, 'the processor also times f16, which avatars learn in');
  await page.evaluate(() => {
    const kept = JSON.parse(localStorage.getItem('toddler.device_speed'));
    for (const rate of ['flops_per_second', 'narrow_flops_per_second', 'bytes_per_second', 'half_flops_per_second']) kept.speed[rate] /= 10;
    kept.speed.seconds_per_kernel *= 10;
    localStorage.setItem('toddler.device_speed', JSON.stringify(kept));
  });
  await page.reload();
  await waitForApp(page);
  const slower = Number(await (await estimateOf(page, 'stabilityai/sd-turbo', 'fits')).getAttribute('data-picture-seconds'));
  assert.ok(Math.abs(slower / seconds - 10) < 1e-6, `${slower} s against ${seconds} s`);
  // The screens that learn and draw say it too, from the same measurement.
  await page.goto(`${server.origin}/avatars`);
  await page.getByRole('note')
    .filter({ hasText: new RegExp(String.raw`Learning an avatar takes ${SECONDS_OR_MORE} on this browser`) })
    .waitFor({ timeout: 60_000 });
  assert.deepEqual(problems, []);
  await browser.close();
});

test('where the default model cannot fit, the parent is told before the download and offered the smaller one', async () => {
  const browser = await launch(server, { webgpu: false });
  // A device with 2 GB of memory, as the browser reports it.
  const context = await openContext(browser, (context) => context.addInitScript(
    () => Object.defineProperty(Navigator.prototype, 'deviceMemory', { get: () => 2 }),
  ));
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  const note = await estimateOf(page, 'stabilityai/sd-turbo', 'too-big');
  assert.match(
    await note.textContent(),
    new RegExp(String.raw`^SD-Turbo needs about [\d.]+ GB of memory to draw, more than this browser can give it here \(2\.1 GB\)\. `
      + String.raw`SDXS-512 is smaller: it draws a page here in ${SECONDS_OR_MORE}\.$`),
  );
  assert.equal(await note.getAttribute('role'), 'note');
  await page.getByTestId('device-speed').filter({ hasText: /needs more memory than this browser can give it here; the Models screen suggests a smaller one/ }).waitFor();
  await checkScreen(page, problems, 'models-estimate-too-big');
  await screenshot(page, 'models-estimate-too-big');
  assert.deepEqual(problems, []);
  await browser.close();
});

test('with WebGPU the estimate is for the graphics chip, measured there', async () => {
  const browser = await launch(server);
  const page = await (await openContext(browser)).newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/models`);
  await waitForApp(page);
  const note = await estimateOf(page, 'stabilityai/sd-turbo', 'fits');
  // SwiftShader: no shader-f16, so full precision.
  assert.match(
    await note.textContent(),
    new RegExp(String.raw`^This device runs SD-Turbo on the graphics chip, in full precision\. It can draw a page in ${SECONDS_OR_MORE}; `),
  );
  await checkScreen(page, problems, 'models-estimate-webgpu');
  await screenshot(page, 'models-estimate-webgpu');
  assert.deepEqual(problems, []);
  await browser.close();
});

// On the processor an avatar learns in f16 (in f32 every widened weight would stay alive for the
// backward pass: 14 GB for SD-Turbo at 512²) at 256² at most, in a worker of its own (burn fixes
// the processor's float type for a worker's life; pictures are drawn there in f32).
test('without WebGPU an avatar learns on the processor in f16 at 256², in a worker of its own', async () => {
  const tinyServer = await startServer({ hub: PRODUCT_HUB });
  servers.push(tinyServer);
  const browser = await launch(tinyServer, { webgpu: false });
  const context = trackContext(tinyServer, await browser.newContext());
  await context.addInitScript((hub) => {
    localStorage.setItem('toddler.hub_base', hub);
    localStorage.setItem('toddler.avatar_resolution', '512');
    localStorage.setItem('toddler.avatar_steps', '2');
    window.engineRequests = [];
    window.workersStarted = 0;
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function record(message, ...rest) {
      if (typeof message?.json === 'string') window.engineRequests.push(JSON.parse(message.json));
      return post.call(this, message, ...rest);
    };
    const Original = Worker;
    window.Worker = function counted(...args) {
      window.workersStarted += 1;
      return new Original(...args);
    };
    window.Worker.prototype = Original.prototype;
  }, `${tinyServer.origin}/hub`);
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(`${tinyServer.origin}/models`);
  await waitForApp(page);
  const model = page.getByTestId('model-stabilityai-sd-turbo');
  await model.getByRole('button', { name: 'Download', exact: true }).click();
  await model.getByRole('button', { name: /^Download \d/ }).click();
  await model.getByText('Ready on this device').waitFor({ timeout: 120_000 });
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Avatars' }).click();
  await page.getByRole('heading', { level: 1, name: 'Avatars' }).waitFor();
  const photos = join(fixturesDir, 'photos');
  await page.getByLabel('Name', { exact: true }).fill('Mia');
  await page.getByLabel('Choose photos…').setInputFiles((await readdir(photos)).map((file) => join(photos, file)));
  const workersBefore = await page.evaluate(() => window.workersStarted);
  await page.getByRole('button', { name: 'Start learning', exact: true }).click();
  const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Mia', exact: true }) });
  await card.getByText('Ready: learned from 4 photos in 2 steps.').waitFor({ timeout: 300_000 });
  const [training] = (await page.evaluate(() => window.engineRequests)).filter((request) => request.type === 'train_avatar');
  assert.equal(training.precision, 'f16');
  assert.equal(training.training.resolution, 256, 'the processor learns at 256² at most');
  assert.ok(await page.evaluate(() => window.workersStarted) > workersBefore, 'training started a worker of its own');
  await checkScreen(page, problems, 'avatar-learned-on-processor');
  assert.deepEqual(problems, []);
  await browser.close();
});

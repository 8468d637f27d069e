// The app shell in a real browser: it loads cleanly, reports WebGPU, works offline, updates when
// asked, and never talks to any origin but its own.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  startServer, launchBrowser, trackContext, watchPage, waitForApp, screenshot, checkScreen, saveArtifact, repoRoot, fixturesDir,
} from './harness.mjs';

const SCREENS = [
  { path: '/', name: 'library', heading: 'Your bookshelf' },
  { path: '/avatars', name: 'avatars', heading: 'Avatars' },
  { path: '/story', name: 'story', heading: 'New story' },
  { path: '/book', name: 'book', heading: 'Read' },
  { path: '/models', name: 'models', heading: 'Picture model' },
  { path: '/settings', name: 'settings', heading: 'Settings' },
];
const PHOTOS = join(fixturesDir, 'photos');
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

let server;
let browser;

/** A fresh browser profile whose every request is logged. */
async function openContext(options = {}) {
  return trackContext(server, await browser.newContext(options));
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser(server);
});

after(async () => {
  await browser?.close();
  await saveArtifact('network-log.json', { proxy: server.requests, app: server.appRequests });
  await server?.close();
});

test('every screen loads with no console errors, on desktop and phone', async () => {
  for (const [layout, options] of [['desktop', { viewport: { width: 1280, height: 800 } }], ['phone', PHONE]]) {
    const context = await openContext(options);
    const page = await context.newPage();
    const problems = watchPage(page);
    for (const screen of SCREENS) {
      await page.goto(server.origin + screen.path);
      await waitForApp(page);
      await page.getByRole('heading', { level: 1, name: screen.heading }).waitFor();
      if (screen.name === 'settings' || screen.name === 'models') {
        await page.getByTestId('device-status').first().waitFor();
      }
      await checkScreen(page, problems, `${layout}-${screen.name}`);
    }
    // Navigating with the app's own links, not just by address.
    await page.getByTestId('nav-avatars').click();
    await page.getByRole('heading', { level: 1, name: 'Avatars' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/avatars');
    await context.close();
    assert.deepEqual(problems, [], `${layout}: the app logged errors`);
  }
});

test('the WebGPU check finds the adapter and reports what it can do', async () => {
  const context = await openContext();
  const page = await context.newPage();
  await page.goto(`${server.origin}/settings`);
  const status = page.getByTestId('device-status');
  await status.waitFor();
  // What the browser itself says, asked directly.
  const truth = await page.evaluate(async () => {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    return {
      vendor: adapter.info.vendor,
      architecture: adapter.info.architecture,
      f16: adapter.features.has('shader-f16'),
      maxBufferSize: adapter.limits.maxBufferSize,
    };
  });
  assert.equal(await status.getAttribute('data-state'), 'adapter');
  const name = await page.getByTestId('adapter-name').textContent();
  assert.ok(name.includes(truth.vendor) && name.includes(truth.architecture), `reported "${name}"`);
  assert.equal(await status.getAttribute('data-f16'), String(truth.f16));
  const shownBuffer = await page.getByTestId('limit-max-buffer').textContent();
  const gib = truth.maxBufferSize / 2 ** 30;
  assert.equal(shownBuffer, gib >= 1 ? `${Math.round(gib * 10) / 10} GB` : `${Math.round(truth.maxBufferSize / 2 ** 20)} MB`);
  const f16Sentence = truth.f16 ? /half precision \(shader-f16\), so/ : /shader-f16 is not available/;
  assert.match(await status.textContent(), f16Sentence);
  await screenshot(page, 'webgpu-check');
  await context.close();
});

test('the parent chooses the number precision in Settings, and the choice is kept', async () => {
  const context = await openContext();
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/settings`);
  await waitForApp(page);
  const choice = page.getByRole('combobox', { name: 'Number precision' });
  // Nothing chosen yet: the engine decides (half precision where the chip supports it).
  assert.match(await choice.locator('option:checked').textContent(), /^Automatic: half precision where/);
  await choice.selectOption({ label: 'Full precision: slower; for a graphics chip that draws wrong colours in half precision' });
  assert.equal(await page.evaluate(() => localStorage.getItem('toddler.precision')), 'f32');
  await page.reload();
  await waitForApp(page);
  assert.match(
    await page.getByRole('combobox', { name: 'Number precision' }).locator('option:checked').textContent(),
    /^Full precision/,
  );
  await checkScreen(page, problems, 'settings-precision');
  assert.deepEqual(problems, []);
  await context.close();
});

test('without WebGPU the parent is told plainly what happens', async () => {
  const noGpuBrowser = await launchBrowser(server, { webgpu: false });
  const page = await trackContext(server, await noGpuBrowser.newContext()).newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/settings`);
  const status = page.getByTestId('device-status');
  await status.waitFor();
  assert.notEqual(await status.getAttribute('data-state'), 'adapter');
  assert.match(await status.textContent(), /still works: it uses the processor instead/);
  // How long, measured on this device, is on the Models screen (tests/e2e/estimate.test.mjs).
  await screenshot(page, 'webgpu-missing');
  // The screens that draw or learn say it, briefly.
  await page.goto(`${server.origin}/avatars`);
  // No model host here to read the model's configs from: no estimate, the plain expectation.
  await page.getByRole('note').filter({ hasText: /Learning an avatar takes hours on this browser/ }).waitFor();
  await screenshot(page, 'webgpu-missing-avatars');
  await noGpuBrowser.close();
  assert.deepEqual(problems, []);
});

test('the Content-Security-Policy admits only the app and the configured model host', async () => {
  const registry = JSON.parse(await readFile(join(repoRoot, 'models', 'registry.json'), 'utf8'));
  const context = await openContext();
  const page = await context.newPage();
  await page.goto(server.origin);
  await waitForApp(page);
  const policy = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
  const directives = Object.fromEntries(policy.split(';').map((part) => {
    const [name, ...sources] = part.trim().split(/\s+/);
    return [name, sources];
  }));
  assert.deepEqual(directives['default-src'], ["'self'"]);
  // Exactly the hosts a model download touches: the hub and the CDN hosts it redirects to.
  assert.deepEqual(directives['connect-src'], ["'self'", ...registry.download_hosts]);
  assert.ok(registry.download_hosts.includes(registry.hub_base));
  // The browser enforces it: a fetch elsewhere is refused before it reaches the network.
  const outcome = await page.evaluate(async () => {
    const violation = new Promise((resolve) => document.addEventListener('securitypolicyviolation', (event) => resolve(event.blockedURI), { once: true }));
    try {
      await fetch('https://example.org/tracker');
      return 'fetched';
    } catch {
      return `blocked ${await violation}`;
    }
  });
  assert.equal(outcome, 'blocked https://example.org/tracker');

  // A model host the parent sets is admitted from the next load on (the service worker adds
  // its origin), and nothing more.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  await page.goto(`${server.origin}/settings`);
  await page.getByTestId('hub-base').fill('https://mirror.example.org/hub');
  await page.getByTestId('hub-base-save').click();
  await page.getByTestId('hub-base-message').filter({ hasText: 'Saved' }).waitFor();
  await page.reload();
  await waitForApp(page);
  const custom = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
  const customConnect = custom.split(';').map((part) => part.trim()).find((part) => part.startsWith('connect-src'));
  assert.equal(customConnect, `connect-src 'self' https://mirror.example.org ${registry.download_hosts.join(' ')}`);
  await context.close();
});

test('a full disk: a kind message, the photos stay chosen, nothing half-made is left', async () => {
  const context = await openContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/avatars`);
  await waitForApp(page);
  await page.getByTestId('no-avatars').waitFor();
  // Chromium's own quota for this origin, set below what it already uses: every write fails.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.origin, quotaSize: 1 });
  const photos = (await readdir(PHOTOS)).map((name) => join(PHOTOS, name));
  await page.getByTestId('avatar-name').fill('Mia');
  await page.getByTestId('avatar-photos').setInputFiles(photos);
  await page.getByTestId('start-training').click();
  await page.getByTestId('error').waitFor();
  await screenshot(page, 'storage-full');
  assert.match(await page.getByTestId('error').textContent(), /storage for the app is full/);
  assert.equal(await page.getByTestId('chosen-photo').count(), photos.length, 'the chosen photos are still there');
  assert.equal(await page.getByTestId('avatar-card').count(), 0);
  const leftOver = await page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const names = [];
    try {
      const avatars = await root.getDirectoryHandle('avatars');
      for await (const name of avatars.keys()) names.push(name);
    } catch { /* no avatars folder: nothing left */ }
    return names;
  });
  assert.deepEqual(leftOver, [], 'no half-stored avatar');

  // Room again: the same photos go in. (No model here, so learning waits for it, kindly.)
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.origin });
  await page.getByTestId('error').getByRole('button', { name: 'OK' }).click();
  await page.getByTestId('start-training').click();
  await page.getByTestId('error').filter({ hasText: 'not on this device yet' }).waitFor();
  await page.getByTestId('avatar-card').filter({ hasText: 'Not finished learning yet' }).waitFor();
  await context.close();
  assert.deepEqual(problems, []);
});

test("a photo's square follows the pointer and a finger: dragged to move, its corner dragged to resize", async () => {
  const context = await openContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/avatars`);
  await waitForApp(page);
  // toddler-2.png is 128×96: the default square is the full height, centred.
  await page.getByTestId('avatar-photos').setInputFiles([join(PHOTOS, 'toddler-2.png')]);
  const frame = page.locator('.crop-frame');
  const square = page.getByTestId('crop-square');
  await square.waitFor();
  const area = await frame.boundingBox();
  const percent = async () => {
    const box = await square.boundingBox();
    return [(box.x - area.x) / area.width, (box.y - area.y) / area.height, box.width / area.width].map((v) => Math.round(v * 1000) / 10);
  };
  assert.deepEqual(await percent(), [12.5, 0, 75]);

  // Dragged left past the edge: it stops there.
  let box = await square.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 - area.width, box.y + box.height / 2, { steps: 4 });
  await page.mouse.up();
  assert.deepEqual(await percent(), [0, 0, 75]);

  // Its corner dragged up and left by a quarter of the photo's height: a smaller square.
  box = await square.boundingBox();
  await page.mouse.move(box.x + box.width - 8, box.y + box.height - 8);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width - 8 - area.height / 4, box.y + box.height - 8 - area.height / 4, { steps: 4 });
  await page.mouse.up();
  const [left, top, width] = await percent();
  assert.deepEqual([left, top], [0, 0]);
  assert.ok(Math.abs(width - 56.3) < 1, `square width ${width}% of the photo`);
  await context.close();
  assert.deepEqual(problems, []);

  // On a phone, a finger drags the square (touch events, not a mouse).
  const phone = await openContext(PHONE);
  const phonePage = await phone.newPage();
  const phoneProblems = watchPage(phonePage);
  await phonePage.goto(`${server.origin}/avatars`);
  await waitForApp(phonePage);
  await phonePage.getByTestId('avatar-photos').setInputFiles([join(PHOTOS, 'toddler-2.png')]);
  const phoneSquare = phonePage.getByTestId('crop-square');
  await phoneSquare.waitFor();
  await phoneSquare.scrollIntoViewIfNeeded();
  const phoneArea = await phonePage.locator('.crop-frame').boundingBox();
  const start = await phoneSquare.boundingBox();
  const touch = await phone.newCDPSession(phonePage);
  const finger = (x, y) => [{ x, y, id: 1 }];
  const [x, y] = [start.x + start.width / 2, start.y + start.height / 2];
  await touch.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: finger(x, y) });
  for (let step = 1; step <= 4; step += 1) {
    await touch.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: finger(x - (step * phoneArea.width) / 4, y) });
  }
  await touch.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  const moved = await phoneSquare.boundingBox();
  assert.ok(Math.abs(moved.x - phoneArea.x) < 1, `the square went to the left edge (${moved.x} vs ${phoneArea.x})`);
  await phone.close();
  assert.deepEqual(phoneProblems, []);
});

test('when the app breaks, the parent sees a kind note and a way back, and nothing is lost', async () => {
  const context = await openContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const problems = watchPage(page);
  // Something made first: a blank book (no model needed).
  await page.goto(`${server.origin}/story`);
  await waitForApp(page);
  await page.getByRole('radio', { name: /A blank book/ }).check();
  await page.getByLabel("Child's name").fill('Ada');
  await page.getByRole('button', { name: 'Make the book' }).click();
  await page.waitForURL(/\/book\?id=/);
  // The bench page panics on request, as any bug would.
  await page.goto(`${server.origin}/bench.html?panic=1`);
  const note = page.getByRole('alertdialog', { name: 'Something went wrong' });
  await note.waitFor();
  await note.getByText('Your books, avatars and photos are safe on this device').waitFor();
  await screenshot(page, 'crash-note');
  assert.ok(problems.some((problem) => /asked to panic/.test(problem)), 'the panic still reaches the console');
  const reload = note.getByRole('link', { name: 'Reload' });
  assert.equal(await reload.getAttribute('href'), page.url());
  await page.goto(server.origin);
  await waitForApp(page);
  await page.getByRole('heading', { name: 'A story about Ada' }).waitFor();
  await context.close();
});

test('a new version waits until the parent chooses "Update now"', async () => {
  const context = await openContext();
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(server.origin);
  await waitForApp(page);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  const before = await page.evaluate(() => caches.keys());
  // Publish a new version: the same files with a new service-worker version.
  server.setRewrite((path, body) =>
    path === '/sw.js' ? body.toString().replace(/const VERSION = '([^']+)'/, "const VERSION = '$1-next'") : null);
  try {
    await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
    const banner = page.getByTestId('update-banner');
    await banner.waitFor();
    await screenshot(page, 'update-ready');
    // Nothing changes until the parent agrees.
    assert.deepEqual(await page.evaluate(() => caches.keys()).then((keys) => keys.filter((key) => before.includes(key))), before);
    await Promise.all([page.waitForEvent('load'), banner.getByRole('button', { name: 'Update now' }).click()]);
    await waitForApp(page);
    const after = await page.evaluate(() => caches.keys());
    assert.deepEqual(after, [`${before[0]}-next`]);
    assert.equal(await page.getByTestId('update-banner').count(), 0);
  } finally {
    server.setRewrite(null);
    await context.close();
  }
  assert.deepEqual(problems, []);
});

test('the service worker controls the page and an offline reload still renders the app', async () => {
  const context = await openContext();
  const page = await context.newPage();
  await page.goto(`${server.origin}/settings`);
  await waitForApp(page);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
  server.setOffline(true);
  await context.setOffline(true);
  try {
    await page.reload();
    await waitForApp(page);
    await page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor();
    // A screen not yet visited, opened by address while offline.
    await page.goto(`${server.origin}/avatars`);
    await page.getByRole('heading', { level: 1, name: 'Avatars' }).waitFor();
    await screenshot(page, 'offline-avatars');
  } finally {
    server.setOffline(false);
    await context.setOffline(false);
    await context.close();
  }
});

test('control: without the service worker an offline reload shows no app', async () => {
  const context = await openContext({ serviceWorkers: 'block' });
  const page = await context.newPage();
  await page.goto(server.origin);
  await waitForApp(page);
  server.setOffline(true);
  await context.setOffline(true);
  try {
    await page.reload().catch(() => {});
    await assert.rejects(page.getByRole('navigation', { name: 'Main' }).waitFor({ timeout: 3_000 }));
  } finally {
    server.setOffline(false);
    await context.setOffline(false);
    await context.close();
  }
});

// Runs last: node:test runs a file's tests in order.
// The one exception: the Models screen reads each model's configuration (a few KB, nothing about
// the parent) from the model host to say how fast this device would run it.
test('no request in the whole run went to an origin other than the app, but model configs from the model host', async () => {
  const registry = JSON.parse(await readFile(join(repoRoot, 'models', 'registry.json'), 'utf8'));
  const hub = new URL(registry.hub_base);
  const isConfigRead = (entry) => entry.url.startsWith(`${hub.origin}/`) && entry.url.endsWith('/config.json');
  const isHubTunnel = (entry) => entry.method === 'CONNECT' && entry.url === `https://${hub.host}:443`;
  // Both logs really are in the path: they saw the app's own files, the service worker's too.
  assert.ok(server.requests.some((entry) => entry.url === `${server.origin}/toddler-app_bg.wasm`));
  assert.ok(server.appRequests.some((entry) => entry.fromServiceWorker));
  // At the network level: whatever the browser sent went to the app's origin (or was Chromium's
  // own), or was the model host's tunnel for those configs (refused here: no internet).
  assert.deepEqual(server.foreignRequests().filter((entry) => !isHubTunnel(entry)), []);
  // And no page, worker or service worker of the app asked for any other origin, or for anything
  // of the model host's but a model's configuration.
  assert.ok(server.foreignAppRequests().some(isConfigRead), 'the Models screen read the configs');
  assert.deepEqual(server.foreignAppRequests().filter((entry) => !isConfigRead(entry)), []);
});

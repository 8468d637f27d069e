// Controls for the harness itself: each check of app.test.mjs must fail when its property breaks.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, trackContext, watchPage, checkScreen } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({ root: join(import.meta.dirname, 'fixtures') });
  browser = await launchBrowser(server);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('control: console errors and uncaught exceptions are caught', async () => {
  const page = await browser.newPage();
  const problems = watchPage(page);
  await page.goto(`${server.origin}/console-error.html`);
  await page.waitForTimeout(200);
  assert.deepEqual(problems, ['console.error: something went wrong', 'uncaught: uncaught']);
  await page.close();
});

test('control: requests to other origins reach both logs, over HTTP and HTTPS', async () => {
  const page = await trackContext(server, await browser.newContext()).newPage();
  await page.goto(`${server.origin}/foreign-request.html`);
  await page.waitForFunction(() => performance.getEntriesByType('resource').length >= 2);
  const foreign = server.foreignRequests().map((entry) => entry.url);
  assert.ok(foreign.includes('http://tracker.example/collect?photo=1'), JSON.stringify(foreign));
  assert.ok(foreign.includes('https://cdn.example:443'), JSON.stringify(foreign));
  const fromPage = server.foreignAppRequests().map((entry) => entry.url);
  assert.deepEqual(fromPage.sort(), ['http://tracker.example/collect?photo=1', 'https://cdn.example/pixel.png']);
  await page.close();
});

test('control: template text on screen and panics in the console fail the screen check', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.origin}/template-leak.html`);
  await assert.rejects(checkScreen(page, [], 'control-template-leak'), /template text on screen/);
  await page.setContent('<p>No picture yet</p><div aria-hidden="true">🙂</div>');
  await assert.rejects(checkScreen(page, [], 'control-emoji'), /an emoji on screen/);
  await page.goto(`${server.origin}/console-error.html`);
  await checkScreen(page, [], 'control-clean');
  const panicked = ['console.error: panicked at app/src/pages/avatars.rs:1:1: Tried to access a reactive value that has already been disposed.'];
  await assert.rejects(checkScreen(page, panicked, 'control-panic'), /the app panicked/);
  await page.close();
});

// A parent's whole journey in a real browser (SwiftShader WebGPU, the tiny fixture model served
// by the hub mimic under the registry's repo name): get the model, make an avatar from photos,
// make a book from a template, illustrate it (two choices a page, pick, lock, redraw), read it,
// print preview, download the pictures, export the avatar; reload and everything is still there.
// At the network level nothing the parent made leaves the app: only model files are fetched,
// and no request carries a body.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir, readFile } from 'node:fs/promises';
import { startServer, launchBrowser, trackContext, watchPage, waitForApp, screenshot, fixturesDir, PRODUCT_HUB } from './harness.mjs';

const PHOTOS = join(fixturesDir, 'photos');
// A plain wall, 400×300: nothing in it to learn from.
const BLANK_PHOTO = new URL('./fixtures/blank-wall.png', import.meta.url).pathname;
const TITLE = 'Splash! Bath Time for Mia';

let server;
let browser;
let context;
let page;
let problems;

before(async () => {
  server = await startServer({ hub: PRODUCT_HUB });
  browser = await launchBrowser(server);
  context = trackContext(server, await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } }));
  await context.addInitScript((hub) => {
    localStorage.setItem('toddler.hub_base', hub);
    // Sizes the tiny model draws in seconds on SwiftShader (the app's defaults are 512² and 300 steps).
    localStorage.setItem('toddler.picture_size', '64');
    localStorage.setItem('toddler.avatar_resolution', '64');
    localStorage.setItem('toddler.avatar_steps', '2');
    // The parent's confirmation dialogs: yes.
    window.confirm = () => true;
  }, `${server.origin}/hub`);
  page = await context.newPage();
  problems = watchPage(page);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the whole journey: model, avatar, story, pictures, reading, printing, export', { timeout: 900_000 }, async () => {
  await page.goto(server.origin);
  await waitForApp(page);
  await page.getByRole('heading', { level: 1, name: 'Your bookshelf' }).waitFor();
  await screenshot(page, 'journey-01-empty-shelf');

  // Before the model is here, making an avatar says what to do.
  await page.goto(`${server.origin}/models`);
  const card = page.getByTestId('model-stabilityai-sd-turbo');
  await card.getByTestId('model-download').click();
  await card.getByTestId('model-status').filter({ hasText: 'Ready on this device' }).waitFor({ timeout: 120_000 });
  await screenshot(page, 'journey-02-model');

  // Too few photos: a kind message, nothing started.
  await page.goto(`${server.origin}/avatars`);
  await page.getByTestId('avatar-name').fill('Mia');
  const photos = (await readdir(PHOTOS)).map((name) => join(PHOTOS, name));
  await page.getByTestId('avatar-photos').setInputFiles(photos.slice(0, 1));
  await page.getByTestId('start-training').click();
  await page.getByTestId('error').filter({ hasText: 'Choose 3 to 10 photos' }).waitFor();
  await screenshot(page, 'journey-03-too-few-photos');
  await page.getByTestId('error').getByRole('button', { name: 'OK' }).click();

  // A file that is not a picture: named and left out. A blank photo: advice under it, and the
  // parent removes it.
  await page.getByTestId('avatar-photos').setInputFiles([
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo') },
    { name: 'wall.png', mimeType: 'image/png', buffer: await readFile(BLANK_PHOTO) },
  ]);
  await page.getByTestId('error').filter({ hasText: 'notes.txt is not a picture' }).waitFor();
  await page.getByTestId('error').getByRole('button', { name: 'OK' }).click();
  const chosen = page.getByTestId('chosen-photo');
  const blank = chosen.filter({ has: page.getByAltText('Photo 2') });
  await blank.getByTestId('photo-advice').filter({ hasText: "can't make out a clear subject" }).waitFor();
  await screenshot(page, 'journey-03-photo-advice');
  await blank.getByRole('button', { name: 'Remove photo 2' }).click();

  // The rest of the photos; the first square made smaller and moved onto the face by keyboard.
  await page.getByTestId('avatar-photos').setInputFiles(photos.slice(1));
  assert.equal(await chosen.count(), photos.length);
  const square = chosen.first().getByTestId('crop-square');
  const before = await square.getAttribute('style');
  await square.focus();
  for (const key of ['-', '-', 'ArrowUp', 'ArrowRight']) await page.keyboard.press(key);
  assert.notEqual(await square.getAttribute('style'), before, 'the keys move and resize the square');
  assert.equal(await chosen.getByTestId('photo-advice').count(), 0, 'the fixture photos are clear');
  await screenshot(page, 'journey-03-photos-cropped');
  assert.equal(await page.getByTestId('slow-device').count(), 0, 'WebGPU is here: no slow-device note');
  await page.getByTestId('start-training').click();
  await page.getByTestId('training').waitFor();
  await page.getByTestId('training-preview').waitFor({ timeout: 300_000 });
  await screenshot(page, 'journey-04-training');
  const avatarCard = page.getByTestId('avatar-card').filter({ hasText: 'fits the photos' });
  await avatarCard.waitFor({ timeout: 300_000 });
  assert.equal(await avatarCard.getAttribute('data-token'), '<mia>');
  await screenshot(page, 'journey-05-avatar');

  const exported = page.waitForEvent('download');
  await avatarCard.getByTestId('export-avatar').click();
  const avatarFile = await readFile(await (await exported).path());
  const headerLength = Number(avatarFile.readBigUInt64LE(0));
  const header = JSON.parse(avatarFile.subarray(8, 8 + headerLength).toString('utf8'));
  assert.deepEqual(header['<mia>'].shape.length, 2, 'diffusers learned_embeds: {token: [vectors, dim]}');
  assert.equal(header.__metadata__.token, '<mia>');

  // A book from a template, starring the avatar.
  await page.goto(`${server.origin}/story`);
  await page.getByTestId('template-bath-time').check();
  await page.getByTestId('child-name').fill('Mia');
  await page.getByTestId('pronouns').selectOption('she');
  await page.getByTestId('companion').fill('Daddy');
  await page.getByTestId('book-avatar').selectOption('<mia>');
  await page.getByTestId('character').fill('curly brown hair, yellow raincoat');
  await page.getByTestId('style').selectOption('crayon');
  await screenshot(page, 'journey-06-new-story');
  await page.getByTestId('create-book').click();
  await page.waitForURL(/\/book\?id=/);
  await page.getByTestId('page').first().waitFor();
  assert.equal(await page.getByTestId('page').count(), 6);
  assert.equal(await page.getByTestId('book-title').inputValue(), TITLE);
  assert.match(await page.getByTestId('page-text').nth(4).inputValue(), /Daddy/);

  // Edit a page's words, then illustrate the whole book.
  await page.getByTestId('page-text').first().fill('After a long day of play, Mia was a little bit muddy — and very happy.');
  await page.getByTestId('page-text').first().dispatchEvent('change');
  await page.getByTestId('illustrate').click();
  await page.getByTestId('illustrating').waitFor();
  await screenshot(page, 'journey-07-illustrating');
  await page.getByTestId('drawn-count').filter({ hasText: '6 of 6 pages' }).waitFor({ timeout: 600_000 });
  await page.getByTestId('illustrating').waitFor({ state: 'detached', timeout: 60_000 });
  const firstPage = page.getByTestId('page').first();
  assert.equal(await firstPage.getByTestId('variant').count(), 2);
  // Pick the second choice on page 1, keep page 2, redraw page 3.
  const seedBefore = await firstPage.getByTestId('page-picture').getAttribute('data-seed');
  await firstPage.getByTestId('variant').nth(1).click();
  await page.waitForFunction((before) => document.querySelector('[data-testid=page] [data-testid=page-picture]')?.dataset.seed !== before, seedBefore);
  const chosenSeed = await firstPage.getByTestId('page-picture').getAttribute('data-seed');
  await page.getByTestId('page').nth(1).getByTestId('page-lock').check();
  await page.getByTestId('page').nth(2).getByTestId('redraw').click();
  await page.getByTestId('illustrating').waitFor({ state: 'detached', timeout: 300_000 });
  assert.equal(await page.getByTestId('page').nth(2).getByTestId('variant').count(), 4);
  assert.ok(await page.getByTestId('page').nth(1).getByTestId('redraw').isDisabled(), 'a kept page is not redrawn');
  await screenshot(page, 'journey-08-illustrated');

  // Read: keys turn pages; the words are the book's.
  await page.getByTestId('read').click();
  await page.getByTestId('reader').waitFor();
  assert.match(await page.getByTestId('reader-text').textContent(), /very happy/);
  await screenshot(page, 'journey-09-reading');
  await page.keyboard.press('ArrowRight');
  await page.getByTestId('page-number').filter({ hasText: 'Page 2 of 6' }).waitFor();
  await page.getByTestId('reader-page').click();
  await page.getByTestId('page-number').filter({ hasText: 'Page 3 of 6' }).waitFor();
  await page.emulateMedia({ media: 'print' });
  const printed = await page.locator('.print-page').evaluateAll((pages) => pages.filter((p) => p.offsetHeight > 0 && p.querySelector('img')).length);
  assert.equal(printed, 6, 'printing lays out all six pages with their pictures');
  await screenshot(page, 'journey-10-print-preview');
  await page.emulateMedia({ media: 'screen' });

  const zipped = page.waitForEvent('download');
  await page.getByTestId('download-zip').click();
  const zip = await readFile(await (await zipped).path());
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end > 0, 'a zip archive');
  assert.equal(zip.readUInt16LE(end + 10), 7, 'the story text and six pictures');
  assert.ok(zip.includes(Buffer.from('story.txt')) && zip.includes(Buffer.from('page-06.png')));

  // Reload: the shelf, the book, its chosen pictures and the avatar are all still here.
  await page.goto(server.origin);
  await page.reload();
  await waitForApp(page);
  await page.getByTestId('book-card').filter({ hasText: TITLE }).waitFor();
  await page.getByTestId('shelf-avatars').filter({ hasText: 'Mia' }).waitFor();
  await screenshot(page, 'journey-11-shelf');
  await page.getByTestId('book-card').getByRole('link', { name: 'Edit' }).click();
  await page.getByTestId('page').first().getByTestId('page-picture').waitFor();
  assert.equal(await page.getByTestId('page').first().getByTestId('page-picture').getAttribute('data-seed'), chosenSeed);
  assert.ok(await page.getByTestId('page').nth(1).getByTestId('page-lock').isChecked());
  await page.goto(`${server.origin}/settings`);
  await page.getByTestId('storage-items').filter({ hasText: `Book: ${TITLE}` }).waitFor();
  await screenshot(page, 'journey-12-settings');
  assert.deepEqual(problems, []);
});

test('nothing the parent made left the app: only model files were fetched, no request carried a body', () => {
  const requests = server.requests.filter((entry) => !entry.refused);
  assert.ok(requests.length > 0);
  for (const entry of requests) {
    assert.ok(['GET', 'HEAD'].includes(entry.method), `${entry.method} ${entry.url}`);
    assert.equal(entry.bodyBytes, 0, `${entry.url} carried ${entry.bodyBytes} bytes`);
    assert.equal(entry.origin, server.origin, entry.url);
    // No story words, names or tokens in any address.
    assert.doesNotMatch(decodeURIComponent(entry.url), /mia|daddy|bath|muddy|raincoat/i, entry.url);
  }
  assert.deepEqual(server.foreignRequests(), []);
  assert.deepEqual(server.foreignAppRequests(), []);
  const modelFiles = requests.filter((entry) => entry.url.includes('/hub/'));
  assert.ok(modelFiles.every((entry) => /\/hub\/stabilityai\/sd-turbo\/resolve\/main\//.test(entry.url)));
});

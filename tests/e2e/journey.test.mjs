// A parent's whole journey in a real browser (SwiftShader WebGPU, the tiny fixture models served
// by the hub mimic under the registry's repo names), clicking what a parent sees by its role and
// visible name: get the model, make an avatar from photos, make a book from a template, illustrate
// it (two choices a page, pick, lock, redraw), read it from its cover, print preview, download the
// pictures, export the avatar; reload and everything is still there. Then the same parent does it
// all again in the same browser — a second child, a second book — without choosing the avatar
// anywhere, and leaves each screen while it is busy, so lifecycle races show. Every screen is
// checked for template text and console panics; the engine's requests are recorded in the page to
// prove which avatar and which decoder drew each picture. At the network level nothing the parent
// made leaves the app: only model files are fetched, and no request carries a body.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir, readFile } from 'node:fs/promises';
import { startServer, launchBrowser, trackContext, watchPage, waitForApp, checkScreen, fixturesDir, PRODUCT_HUB } from './harness.mjs';

const PHOTOS = join(fixturesDir, 'photos');
// A plain wall, 400×300: nothing in it to learn from.
const BLANK_PHOTO = new URL('./fixtures/blank-wall.png', import.meta.url).pathname;
const TITLE = 'Splash! Bath Time for Mia';
const MODEL_FOLDER = 'stabilityai--sd-turbo--main';
const DECODER_FOLDER = 'madebyollin--taesd--main';

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
    localStorage.setItem('toddler.avatar_steps', '3');
    // The parent's confirmation dialogs: yes.
    window.confirm = () => true;
    // Every request the app posts to the engine worker, as the worker reads it.
    window.engineRequests = [];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function record(message, ...rest) {
      if (typeof message?.json === 'string') window.engineRequests.push(JSON.parse(message.json));
      return post.call(this, message, ...rest);
    };
  }, `${server.origin}/hub`);
  page = await context.newPage();
  problems = watchPage(page);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const button = (name, scope = page) => scope.getByRole('button', { name, exact: true });
const link = (name, scope = page) => scope.getByRole('link', { name, exact: true });
const nav = (name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });

/** Waits until the form control `locator` holds `value` (the form keeps name and avatar in step). */
async function hasValue(locator, value) {
  const element = await locator.elementHandle();
  await page.waitForFunction(([control, wanted]) => control.value === wanted, [element, value], { timeout: 10_000 });
}

/** The requests the app posted to the engine since the page loaded. */
async function engineRequests(type) {
  return (await page.evaluate(() => window.engineRequests)).filter((request) => request.type === type);
}

/** Makes an avatar called `name` from the fixture photos, leaving the screen while it learns. */
async function makeAvatar(name, { checkAdvice = false, strongerLikeness = false } = {}) {
  await nav('Avatars').click();
  await page.getByRole('heading', { level: 1, name: 'Avatars' }).waitFor();
  const photos = (await readdir(PHOTOS)).map((file) => join(PHOTOS, file));
  const photoInput = page.getByLabel('Choose photos…');
  await page.getByLabel('Name', { exact: true }).fill(name);
  if (checkAdvice) {
    // Too few photos: a kind message, nothing started.
    await photoInput.setInputFiles(photos.slice(0, 1));
    await button('Start learning').click();
    await page.getByRole('alert').filter({ hasText: 'Choose 3 to 10 photos' }).waitFor();
    await checkScreen(page, problems, `journey-${name}-03-too-few-photos`);
    await button('OK').click();
    // A file that is not a picture: named and left out. A blank photo: advice under it, and the
    // parent removes it.
    await page.getByLabel('Add more photos…').setInputFiles([
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo') },
      { name: 'wall.png', mimeType: 'image/png', buffer: await readFile(BLANK_PHOTO) },
    ]);
    await page.getByRole('alert').filter({ hasText: 'notes.txt is not a picture' }).waitFor();
    await button('OK').click();
    const blank = page.getByTestId('chosen-photo').filter({ has: page.getByAltText('Photo 2') });
    await blank.getByText("can't make out a clear subject").waitFor();
    await checkScreen(page, problems, `journey-${name}-03-photo-advice`);
    await button('Remove photo 2').click();
    await page.getByLabel('Add more photos…').setInputFiles(photos.slice(1));
    // The first square made smaller and moved onto the face by keyboard.
    const square = page.getByRole('group', { name: /The part of photo 1 the avatar learns from/ });
    const before = await square.getAttribute('style');
    await square.focus();
    for (const key of ['-', '-', 'ArrowUp', 'ArrowRight']) await page.keyboard.press(key);
    assert.notEqual(await square.getAttribute('style'), before, 'the keys move and resize the square');
  } else {
    await photoInput.setInputFiles(photos);
  }
  assert.equal(await page.getByTestId('chosen-photo').count(), photos.length);
  assert.equal(await page.getByTestId('photo-advice').count(), 0, 'the fixture photos are clear');
  // The face finder (in the engine worker, on this device) looks at each photo: three of the
  // fixture photos are drawings too small for it, and each says so; the second has a face.
  const noFace = page.getByTestId('chosen-photo').filter({ hasText: 'No face found in this photo' });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=no-face-advice]').length === 3, null, { timeout: 180_000 });
  assert.equal(await noFace.filter({ has: page.getByAltText('Photo 2') }).count(), 0, 'photo 2 shows a face');
  assert.equal(await page.getByTestId('slow-device').count(), 0, 'WebGPU is here: no slow-device note');
  if (strongerLikeness) {
    // Its cost is said beside the choice, in time and storage.
    await page.getByText(/longer, and the avatar keeps about [\d.]+ MB/).waitFor();
    await page.getByRole('checkbox', { name: 'Stronger likeness' }).check();
  }
  await checkScreen(page, problems, `journey-${name}-03-photos`);
  await button('Start learning').click();
  const training = page.getByRole('heading', { name: `Learning what ${name} looks like` });
  await training.waitFor();
  await page.getByText(/^Step [1-3] of 3$/).waitFor({ timeout: 300_000 });
  // The parent looks at the bookshelf while the avatar learns, then comes back: learning went on.
  await nav('Library').click();
  await page.getByRole('heading', { level: 1, name: 'Your bookshelf' }).waitFor();
  await checkScreen(page, problems, `journey-${name}-04-shelf-while-learning`);
  await nav('Avatars').click();
  const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name, exact: true }) });
  const ready = strongerLikeness
    ? 'Ready: learned from 4 photos in 3 steps, with the stronger likeness.'
    : 'Ready: learned from 4 photos in 3 steps.';
  await card.getByText(ready).waitFor({ timeout: 300_000 });
  await training.waitFor({ state: 'detached' });
  await card.getByAltText(`Preview of ${name}`).waitFor();
  // How it went, in words; no percentages. The likeness: the previews of this tiny model are
  // noise, so it says there was no face rather than showing a number, and names the photos
  // without a face.
  assert.doesNotMatch(await card.textContent(), /%/);
  await card.getByText(/^Its preview shows no face the face finder could see\. No face was found in photos 1, 3, 4, so they did not count\.$/).waitFor();
  await checkScreen(page, problems, `journey-${name}-05-avatar`);
  return card;
}

/** Opens the book called `title` from the bookshelf, as the parent does (no reload). */
async function openBook(title) {
  await nav('Library').click();
  const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: title }) });
  await link('Edit', card).click();
  await page.getByRole('heading', { level: 2, name: 'Page 1' }).waitFor();
}

/** Illustrates the open book and waits until every page has a picture. */
async function illustrateAll(pages, { leaveMidway = false, title } = {}) {
  await button('Illustrate the book').click();
  const drawing = page.getByRole('button', { name: 'Stop' });
  await drawing.waitFor();
  if (leaveMidway) {
    // The parent leaves while pictures are drawn, then comes back and finishes the book.
    await page.getByText('Drawing picture 2 of').waitFor({ timeout: 300_000 });
    await nav('Library').click();
    await page.getByRole('heading', { level: 1, name: 'Your bookshelf' }).waitFor();
    await checkScreen(page, problems, 'journey-second-left-while-drawing');
    await openBook(title);
    await button('Illustrate missing pages').click();
  }
  await page.getByText(`${pages} of ${pages} pages have a picture.`).waitFor({ timeout: 600_000 });
  await drawing.waitFor({ state: 'detached', timeout: 60_000 });
}

test('the whole journey: model, avatar, story, pictures, reading from the cover, printing, export', { timeout: 900_000 }, async () => {
  await page.goto(server.origin);
  await waitForApp(page);
  await page.getByRole('heading', { level: 1, name: 'Your bookshelf' }).waitFor();
  // The app's own icons, not emoji (which some systems cannot show).
  await checkScreen(page, problems, 'journey-01-empty-shelf');

  // The default model, and with it the fast decoder.
  await nav('Models').click();
  const model = page.getByTestId('model-stabilityai-sd-turbo');
  const decoder = page.getByTestId('model-madebyollin-taesd');
  await button('Download', model).click();
  // The host's real size first, then the parent's yes.
  await model.getByText(/is \d+ (KB|MB|GB) on the model host/).waitFor();
  await model.getByRole('button', { name: /^Download \d/ }).click();
  await model.getByText('Ready on this device').waitFor({ timeout: 120_000 });
  await decoder.getByText('Ready on this device').waitFor({ timeout: 60_000 });
  await checkScreen(page, problems, 'journey-02-model');

  const card = await makeAvatar('Mia', { checkAdvice: true });
  const avatarThumb = card.locator('.thumb');
  assert.equal(await avatarThumb.evaluate((element) => element.tagName), 'IMG');
  // The previews were drawn with the fast decoder.
  const [training] = await engineRequests('train_avatar');
  assert.deepEqual(training.decoder, { kind: 'stored', folder: DECODER_FOLDER });

  const exported = page.waitForEvent('download');
  await button('Export', card).click();
  const avatarFile = await readFile(await (await exported).path());
  const headerLength = Number(avatarFile.readBigUInt64LE(0));
  const header = JSON.parse(avatarFile.subarray(8, 8 + headerLength).toString('utf8'));
  assert.deepEqual(header['<mia>'].shape.length, 2, 'diffusers learned_embeds: {token: [vectors, dim]}');
  assert.equal(header.__metadata__.token, '<mia>');

  // A book from the avatar's own card: the form opens with Mia chosen and named.
  await link('Start a story', card).click();
  await page.getByRole('heading', { level: 1, name: 'New story' }).waitFor();
  const avatarChoice = page.getByRole('combobox', { name: 'Avatar' });
  await page.getByText('Every picture will show Mia').waitFor();
  await hasValue(avatarChoice, '<mia>');
  await hasValue(page.getByLabel("Child's name"), 'Mia');
  // Choosing no avatar says plainly that the child will not be in the pictures.
  await avatarChoice.selectOption({ label: 'No avatar (a storybook toddler)' });
  await page.getByText('the pictures will show a storybook toddler, not your child').waitFor();
  await checkScreen(page, problems, 'journey-06-no-avatar-warning');
  await avatarChoice.selectOption({ label: 'Mia' });
  await page.getByRole('radio', { name: /Splash! Bath Time/ }).check();
  await page.getByRole('combobox', { name: 'Pronouns' }).selectOption({ label: 'she / her' });
  await page.getByLabel('Who comes along').fill('Daddy');
  await page.getByLabel('Character card (the same on every page)').fill('curly brown hair, yellow raincoat');
  await page.getByRole('combobox', { name: 'Style' }).selectOption({ label: 'Crayon' });
  await checkScreen(page, problems, 'journey-06-new-story');
  await button('Make the book').click();
  await page.waitForURL(/\/book\?id=/);
  await page.getByRole('heading', { level: 2, name: 'Page 1' }).waitFor();
  assert.equal(await page.getByRole('heading', { level: 2, name: /^Page \d+$/ }).count(), 6);
  assert.equal(await page.getByLabel('Title').inputValue(), TITLE);
  await page.getByText('Every picture shows Mia').waitFor();
  const texts = page.getByRole('textbox', { name: /^Text/ });
  assert.match(await texts.nth(4).inputValue(), /Daddy/);

  // Edit a page's words, then illustrate the whole book.
  await texts.first().fill('After a long day of play, Mia was a little bit muddy — and very happy.');
  await texts.first().dispatchEvent('change');
  await illustrateAll(6);
  await checkScreen(page, problems, 'journey-07-illustrated');
  const firstPage = page.getByRole('listitem').filter({ has: page.getByRole('heading', { level: 2, name: 'Page 1' }) });
  const choices = firstPage.getByRole('group', { name: 'Pictures to choose from' }).getByRole('button');
  assert.equal(await choices.count(), 2);
  // The likeness: each page is scored against Mia's photos; this tiny model draws no faces, and
  // the page says so instead of showing a number. What the score can do is explained beside it.
  await firstPage.getByText('No face found in this picture, so no likeness score').waitFor();
  await page.getByText('How the app picks a page\'s picture').click();
  await page.getByText(/It ranks pictures; it cannot tell who anyone is/).waitFor();
  for (const generate of await engineRequests('generate')) {
    const [reference, ...others] = generate.request.likeness_of;
    assert.equal(others.length, 0);
    assert.equal(reference.token, '<mia>');
    assert.equal(reference.descriptor.length, 128, 'the reference from the photo with a face');
  }
  // Every picture was drawn with Mia's avatar, its prompt naming her token, decoded by TAESD.
  const loads = await engineRequests('load');
  assert.ok(loads.length >= 1);
  for (const load of loads) {
    assert.deepEqual(load.decoder, { kind: 'stored', folder: DECODER_FOLDER });
    assert.deepEqual(load.embeddings, ['opfs:avatars/_mia_/learned_embeds.safetensors']);
  }
  const drawn = await engineRequests('generate');
  assert.equal(drawn.length, 12);
  assert.ok(drawn.every((request) => request.request.prompt.includes('<mia>')), 'every prompt names <mia>');

  // Pick the second choice on page 1, keep page 2, redraw page 3.
  const picture = firstPage.getByRole('img', { name: 'Picture for page 1' });
  const seedBefore = await picture.getAttribute('data-seed');
  await choices.nth(1).click();
  await page.waitForFunction((before) => document.querySelector('[data-testid=page] [data-testid=page-picture]')?.dataset.seed !== before, seedBefore);
  const chosenSeed = await picture.getAttribute('data-seed');
  const page2 = page.getByRole('listitem').filter({ has: page.getByRole('heading', { level: 2, name: 'Page 2' }) });
  const page3 = page.getByRole('listitem').filter({ has: page.getByRole('heading', { level: 2, name: 'Page 3' }) });
  await page2.getByRole('checkbox', { name: 'Keep this picture' }).check();
  await button('Draw new choices', page3).click();
  await button('Stop').waitFor({ state: 'detached', timeout: 300_000 });
  assert.equal(await page3.getByRole('group', { name: 'Pictures to choose from' }).getByRole('button').count(), 4);
  assert.ok(await button('Draw new choices', page2).isDisabled(), 'a kept page is not redrawn');
  await checkScreen(page, problems, 'journey-08-picked');

  // Read: the cover first, then the pages, turned by the Next button, a key and a tap.
  await button('Read').click();
  const reader = page.getByTestId('reader-page');
  const position = page.getByRole('navigation', { name: 'Pages' });
  await reader.getByRole('heading', { level: 2, name: TITLE }).waitFor();
  await reader.getByText('A story starring Mia').waitFor();
  await position.getByText('Cover').waitFor();
  assert.ok(await button('Previous page').isDisabled());
  await checkScreen(page, problems, 'journey-09-cover');
  await button('Next page').click();
  await position.getByText('Page 1 of 6').waitFor();
  assert.match(await reader.getByText(/very happy/).textContent(), /muddy/);
  await checkScreen(page, problems, 'journey-09-reading');
  await page.keyboard.press('ArrowRight');
  await position.getByText('Page 2 of 6').waitFor();
  await reader.click();
  await position.getByText('Page 3 of 6').waitFor();
  for (let number = 4; number <= 6; number += 1) {
    await button('Next page').click();
    await position.getByText(`Page ${number} of 6`).waitFor();
  }
  assert.ok(await button('Next page').isDisabled(), 'the last page has no next page');
  await button('Previous page').click();
  await position.getByText('Page 5 of 6').waitFor();

  await page.emulateMedia({ media: 'print' });
  const printed = await page.locator('.print-page').evaluateAll((sheets) => sheets.filter((sheet) => sheet.offsetHeight > 0 && sheet.querySelector('img')).map((sheet) => sheet.innerText));
  assert.equal(printed.length, 7, 'printing lays out a cover and all six pages with their pictures');
  assert.match(printed[0], new RegExp(`${TITLE}[\\s\\S]*A story starring Mia`));
  await checkScreen(page, problems, 'journey-10-print-preview');
  await page.emulateMedia({ media: 'screen' });

  const zipped = page.waitForEvent('download');
  await button('Download pictures').click();
  const zip = await readFile(await (await zipped).path());
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end > 0, 'a zip archive');
  assert.equal(zip.readUInt16LE(end + 10), 7, 'the story text and six pictures');
  assert.ok(zip.includes(Buffer.from('story.txt')) && zip.includes(Buffer.from('page-06.png')));

  // Reload: the shelf, the book, its chosen pictures and the avatar are all still here.
  await page.goto(server.origin);
  await page.reload();
  await waitForApp(page);
  const bookCard = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: TITLE }) });
  await bookCard.waitFor();
  await page.getByTestId('shelf-avatars').getByRole('link', { name: 'Mia' }).waitFor();
  await checkScreen(page, problems, 'journey-11-shelf');
  await link('Edit', bookCard).click();
  await picture.waitFor();
  assert.equal(await picture.getAttribute('data-seed'), chosenSeed);
  assert.ok(await page2.getByRole('checkbox', { name: 'Keep this picture' }).isChecked());
  await nav('Settings').click();
  await page.getByTestId('storage-items').getByText(`Book: ${TITLE}`).waitFor();
  await checkScreen(page, problems, 'journey-12-settings');
  assert.deepEqual(problems, []);
});

test('again in the same browser: a second child, a book made without choosing the avatar, finest pictures from Settings', { timeout: 900_000 }, async () => {
  await page.goto(server.origin);
  await waitForApp(page);
  const noahCard = await makeAvatar('Noah', { strongerLikeness: true });
  const [noahTraining] = (await engineRequests('train_avatar')).slice(-1);
  assert.equal(noahTraining.training.lora_rank, 4, 'the stronger likeness trains a LoRA');

  // A story started from the bookshelf, the avatar never touched: the newest avatar is the one
  // meant, and the child's name follows the avatar named like it.
  await nav('Library').click();
  await link('Start a story', page.locator('.page-header')).click();
  await page.getByRole('heading', { level: 1, name: 'New story' }).waitFor();
  const name = page.getByLabel("Child's name");
  const avatarChoice = page.getByRole('combobox', { name: 'Avatar' });
  await page.getByText('Every picture will show Noah').waitFor();
  await hasValue(name, 'Noah');
  await name.fill('Mia');
  await page.getByText('Every picture will show Mia').waitFor();
  await hasValue(avatarChoice, '<mia>');
  await name.fill('Noah');
  await page.getByText('Every picture will show Noah').waitFor();
  await page.getByRole('radio', { name: /Goes to the Zoo/ }).check();
  await checkScreen(page, problems, 'journey-second-new-story');
  await button('Make the book').click();
  await page.waitForURL(/\/book\?id=/);
  await page.getByRole('heading', { level: 2, name: 'Page 1' }).waitFor();
  const pages = await page.getByRole('heading', { level: 2, name: /^Page \d+$/ }).count();
  const title = await page.getByLabel('Title').inputValue();
  assert.equal(title, 'Noah Goes to the Zoo');
  const drawnBefore = (await engineRequests('generate')).length;
  await illustrateAll(pages, { leaveMidway: true, title });
  await checkScreen(page, problems, 'journey-second-illustrated');
  const drawn = (await engineRequests('generate')).slice(drawnBefore);
  assert.ok(drawn.length >= pages, `${drawn.length} pictures drawn`);
  assert.ok(drawn.every((request) => request.request.prompt.includes('<noah>')), 'every prompt names <noah>');
  const lastLoad = (await engineRequests('load')).at(-1);
  assert.deepEqual(lastLoad.embeddings, ['opfs:avatars/_noah_/learned_embeds.safetensors']);
  // Drawn with Noah's LoRA too, at full strength.
  assert.deepEqual(lastLoad.loras, [{ url: 'opfs:avatars/_noah_/pytorch_lora_weights.safetensors', scale: 1 }]);

  // Export: with its LoRA the avatar is one zip of diffusers' two files. Deleted and imported
  // again, it draws as before, LoRA and all.
  await nav('Avatars').click();
  const exported = page.waitForEvent('download');
  await button('Export', noahCard).click();
  const download = await exported;
  assert.equal(download.suggestedFilename(), 'Noah.zip');
  const zip = await readFile(await download.path());
  assert.ok(zip.includes(Buffer.from('learned_embeds.safetensors')) && zip.includes(Buffer.from('pytorch_lora_weights.safetensors')));
  await button('Delete', noahCard).click();
  await noahCard.waitFor({ state: 'detached' });
  await page.getByLabel('Import an avatar file…').setInputFiles({ name: 'Noah.zip', mimeType: 'application/zip', buffer: zip });
  const imported = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Noah', exact: true }) });
  await imported.getByText('Imported from a file, with the stronger likeness.').waitFor();
  await checkScreen(page, problems, 'journey-second-imported-avatar');
  // A damaged zip: said plainly, and the avatars stay as they were.
  await page.getByLabel('Import an avatar file…').setInputFiles({ name: 'Broken.zip', mimeType: 'application/zip', buffer: zip.subarray(0, 200) });
  await page.getByRole('alert').filter({ hasText: 'Broken.zip: the zip file is damaged' }).waitFor();
  await button('OK').click();
  assert.equal(await page.getByTestId('avatar-card').count(), 2);
  // An avatar file whose numbers are damaged (NaN), and one cut short: the engine reads each
  // before anything is stored, the parent is told which and why, and the avatars stay as they were.
  const values = new Float32Array(16).fill(0.25);
  values[5] = Number.NaN;
  const header = Buffer.from(JSON.stringify({ '<lily>': { dtype: 'F32', shape: [1, 16], data_offsets: [0, 64] } }));
  const nanAvatar = Buffer.concat([Buffer.from(new BigUint64Array([BigInt(header.length)]).buffer), header, Buffer.from(values.buffer)]);
  await page.getByLabel('Import an avatar file…').setInputFiles({ name: 'Lily.safetensors', mimeType: 'application/octet-stream', buffer: nanAvatar });
  const nanAlert = page.getByRole('alert').filter({ hasText: 'Lily.safetensors cannot be used as an avatar' });
  await nanAlert.waitFor({ timeout: 60_000 });
  assert.match(await nanAlert.textContent(), /cannot be used as an avatar: it holds NaN where its numbers should be, so no picture can be drawn from it/);
  await checkScreen(page, problems, 'journey-second-damaged-avatar');
  await button('OK').click();
  await page.getByLabel('Import an avatar file…').setInputFiles({ name: 'Lily.safetensors', mimeType: 'application/octet-stream', buffer: nanAvatar.subarray(0, nanAvatar.length - 10) });
  await page.getByRole('alert').filter({ hasText: 'Lily.safetensors cannot be used as an avatar: it is not an embedding file: it is cut short' }).waitFor({ timeout: 60_000 });
  await checkScreen(page, problems, 'journey-second-cut-avatar');
  await button('OK').click();
  assert.equal(await page.getByTestId('avatar-card').count(), 2);

  // Finest pictures: the model's full decoder from then on.
  await nav('Settings').click();
  await page.getByRole('combobox', { name: 'Picture quality' }).selectOption('full');
  await openBook(title);
  const lastPage = page.getByRole('listitem').filter({ has: page.getByRole('heading', { level: 2, name: `Page ${pages}` }) });
  // A picture-style LoRA made for another model: said plainly, nothing drawn; removed, and one
  // made for this model added instead.
  const styleInput = page.getByLabel('Add a style LoRA…');
  await styleInput.setInputFiles(join(fixturesDir, 'loras', 'tiny-sd1-kohya.safetensors'));
  await page.getByText('Drawn in the style “tiny-sd1-kohya”.').waitFor();
  await button('Draw new choices', lastPage).click();
  await page.getByRole('alert').filter({ hasText: 'style add-on does not fit this picture model' }).waitFor({ timeout: 300_000 });
  await checkScreen(page, problems, 'journey-second-style-refused');
  await button('OK').click();
  await button('Remove the style').click();
  await styleInput.setInputFiles(join(fixturesDir, 'loras', 'tiny-sd2-peft.safetensors'));
  await page.getByText('Drawn in the style “tiny-sd2-peft”.').waitFor();
  // Big sister Mia joins the book, drawn from her own avatar; the last page is drawn with both.
  const cast = page.getByTestId('cast');
  await cast.getByLabel('Their name').fill('Mia');
  await cast.getByRole('combobox', { name: 'Drawn from' }).selectOption('<mia>');
  await cast.getByLabel('How they look (the same words on every page)').fill('long dark hair, green dress');
  await button('Add to the book', cast).click();
  await cast.getByText('Mia (drawn from their avatar)').waitFor();
  await lastPage.getByRole('group', { name: 'In this picture' }).getByRole('checkbox', { name: 'Mia' }).waitFor();
  assert.ok(await lastPage.getByRole('checkbox', { name: 'Mia' }).isChecked(), 'the whole cast by default');
  await checkScreen(page, problems, 'journey-second-cast');
  await button('Draw new choices', lastPage).click();
  await button('Stop').waitFor({ state: 'detached', timeout: 300_000 });
  const finestLoad = (await engineRequests('load')).at(-1);
  assert.equal(finestLoad.decoder, null);
  assert.equal(finestLoad.loras.length, 2, 'the avatar\'s LoRA and the style');
  assert.deepEqual(finestLoad.loras[0], { url: 'opfs:avatars/_noah_/pytorch_lora_weights.safetensors', scale: 1 }, 'the imported LoRA draws');
  assert.match(finestLoad.loras[1].url, /^opfs:books\/[^/]+\/style-lora\.safetensors$/);
  assert.deepEqual(finestLoad.embeddings, ['opfs:avatars/_noah_/learned_embeds.safetensors', 'opfs:avatars/_mia_/learned_embeds.safetensors']);
  const withMia = (await engineRequests('generate')).at(-1).request.prompt;
  assert.match(withMia, /<noah> toddler, .*with <mia> child \(long dark hair, green dress\)/);
  await checkScreen(page, problems, 'journey-second-style');
  await checkScreen(page, problems, 'journey-second-finest');

  // Read it: the Next button turns the pages.
  await button('Read').click();
  await button('Next page').click();
  await page.getByText(`Page 1 of ${pages}`).waitFor();
  await checkScreen(page, problems, 'journey-second-reading');
  assert.deepEqual(problems, []);
});

test('nothing the parent made left the app: only model files were fetched, no request carried a body', async () => {
  const requests = server.requests.filter((entry) => !entry.refused);
  assert.ok(requests.length > 0);
  for (const entry of requests) {
    assert.ok(['GET', 'HEAD'].includes(entry.method), `${entry.method} ${entry.url}`);
    assert.equal(entry.bodyBytes, 0, `${entry.url} carried ${entry.bodyBytes} bytes`);
    assert.equal(entry.origin, server.origin, entry.url);
    // No story words, names or tokens in any address (past a registry repo's own name:
    // "SimianLuo" holds a "mia").
    const address = decodeURIComponent(entry.url).replace(/\/hub\/[^/]+\/[^/]+\/resolve\//, '/hub/…/resolve/');
    assert.doesNotMatch(address, /mia|noah|daddy|bath|muddy|raincoat/i, entry.url);
  }
  assert.deepEqual(server.foreignRequests(), []);
  assert.deepEqual(server.foreignAppRequests(), []);
  // Weights only of what the parent downloaded; of the other registry models, only the configs
  // the Models screen's estimate reads.
  const registry = JSON.parse(await readFile(join(fixturesDir, '..', 'registry.json'), 'utf8'));
  const modelFiles = requests.filter((entry) => entry.url.includes('/hub/'));
  for (const entry of modelFiles) {
    const [, repo, path] = /\/hub\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(entry.url);
    assert.ok(registry.models.some((model) => model.repo === repo), entry.url);
    if (!['stabilityai/sd-turbo', 'madebyollin/taesd'].includes(repo)) assert.match(path, /(^|\/)config\.json$/, entry.url);
  }
});

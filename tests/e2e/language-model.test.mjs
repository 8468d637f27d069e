// The story writer's language model in the engine worker: tokens stream back as they are
// written, on the CPU fallback (wasm) and on WebGPU (SwiftShader, f32), and the continuations are
// transformers' (models/make_llm_fixtures.py): the tiny Llama GGUF with every quantisation, the
// tiny sharded Qwen2 folder, and the real SmolLM2-135M-Instruct (`cargo xtask language-model`).
// A cancel stops it between tokens with the text so far.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, basename, join } from 'node:path';
import {
  startServer, launchBrowser, trackContext, watchPage, runBench, repoRoot, HUB_REPOS, saveArtifact,
} from './harness.mjs';

const llmFixtures = join(repoRoot, 'models', 'fixtures', 'llm');
const golden = JSON.parse(readFileSync(join(llmFixtures, 'llm-golden.json'), 'utf8'));
const realGolden = JSON.parse(readFileSync(join(llmFixtures, 'smollm2-135m-golden.json'), 'utf8'));
const realModel = process.env.TODDLER_SMOLLM2
  ?? join(homedir(), '.cache', 'toddlerstories', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');

let server;
let browser;

before(async () => {
  assert.ok(existsSync(realModel), `no SmolLM2-135M-Instruct at ${realModel}: run \`cargo xtask language-model\``);
  server = await startServer({
    hub: {
      ...HUB_REPOS,
      'llm/fixtures': llmFixtures,
      'llm/qwen2': join(llmFixtures, 'tiny-qwen2'),
      'llm/smollm2': dirname(realModel),
    },
  });
  browser = await launchBrowser(server);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function write(params, { timeout = 600_000, whilePage } = {}) {
  const context = trackContext(server, await browser.newContext());
  const page = await context.newPage();
  const problems = watchPage(page);
  const running = runBench(page, server.origin, params, { timeout });
  const during = whilePage ? await whilePage(page) : null;
  const result = await running;
  await context.close();
  assert.equal(result.error, undefined, `writing failed: ${result.error}`);
  assert.deepEqual(problems, []);
  return { result, during };
}

function checkRound(round, expected, name) {
  assert.deepEqual(round.ids, expected.greedy, `${name}: transformers' greedy continuation`);
  assert.equal(round.text, expected.greedy_text);
  // Every token streamed before the answer, and the streamed pieces make the text.
  assert.deepEqual(round.streamed_ids, round.ids);
  assert.equal(round.streamed_text, round.text);
  assert.equal(round.prompt_tokens, expected.ids.length);
}

const tiny = [
  ['tiny Llama GGUF (every quantisation)', { lm: 'llm/fixtures', lm_file: 'tiny-llama.gguf' }, golden['tiny-llama.gguf']],
  ['tiny Qwen2 folder (sharded bf16)', { lm: 'llm/qwen2' }, golden['tiny-qwen2']],
];

for (const backend of ['cpu', 'webgpu']) {
  test(`tiny language models write transformers' continuations on ${backend}, streaming each token`, async () => {
    for (const [name, files, expected] of tiny) {
      for (const prompt of expected.prompts) {
        const { result } = await write({
          ...files,
          lm: `${server.origin}/hub/${files.lm}/resolve/main`,
          prompt: prompt.prompt,
          max_tokens: String(prompt.greedy.length),
          backend,
        });
        const [round] = result.rounds;
        assert.equal(round.backend, backend);
        assert.equal(round.precision, 'f32');
        checkRound(round, prompt, `${name} on ${backend}`);
      }
    }
  });
}

// On SwiftShader the real model writes about a token in 10 seconds (a dispatch per kernel, 1-row
// products): measured for the record with TODDLER_SLOW_TESTS=1, beyond CI's time otherwise.
for (const backend of ['cpu', 'webgpu']) {
  const slow = backend === 'webgpu' && !process.env.TODDLER_SLOW_TESTS;
  test(`the real SmolLM2-135M writes transformers' continuation on ${backend}`, { skip: slow && 'set TODDLER_SLOW_TESTS=1' }, async () => {
    const prompt = realGolden.prompts[0];
    const { result } = await write({
      lm: `${server.origin}/hub/llm/smollm2/resolve/main`,
      lm_file: basename(realModel),
      prompt: prompt.prompt,
      max_tokens: String(prompt.greedy.length),
      backend,
      rounds: '2',
    });
    await saveArtifact(`language-model-smollm2-${backend}.json`, result);
    for (const round of result.rounds) checkRound(round, prompt, `SmolLM2-135M on ${backend}`);
    const [first, second] = result.rounds;
    assert.ok(first.load_ms > 0, 'the first round loads the model');
    assert.equal(second.load_ms, 0, 'the second finds it loaded');
    const memory = second.gpu_memory ? second.gpu_memory.reserved_bytes : second.wasm_heap_peak_bytes;
    console.log(`SmolLM2-135M on ${backend} (${second.adapter}): load ${(first.load_ms / 1000).toFixed(1)} s, `
      + `prompt ${second.prompt_tokens_per_second.toFixed(1)} tokens/s, generation ${second.tokens_per_second.toFixed(2)} tokens/s, `
      + `memory ${(memory / 2 ** 20).toFixed(0)} MiB (wasm heap ${(second.wasm_heap_peak_bytes / 2 ** 20).toFixed(0)} MiB)`);
  });
}

test('cancelling stops the writing between tokens and keeps the text so far', async () => {
  const { result } = await write({
    lm: `${server.origin}/hub/llm/smollm2/resolve/main`,
    lm_file: basename(realModel),
    prompt: realGolden.prompts[1].prompt,
    max_tokens: '200',
    backend: 'cpu',
  }, {
    whilePage: async (page) => {
      // At least three tokens written (the status moves on ten times a second).
      await page.getByTestId('bench-status').filter({ hasText: /writing: ([3-9]|\d\d+) tokens/ }).waitFor({ timeout: 300_000 });
      await page.getByRole('button', { name: 'Cancel' }).click();
    },
  });
  const [round] = result.rounds;
  assert.equal(round.stopped, true);
  assert.ok(round.ids.length >= 3 && round.ids.length < 200, `${round.ids.length} tokens written`);
  assert.deepEqual(round.ids.slice(0, 10), realGolden.prompts[1].greedy.slice(0, round.ids.length).slice(0, 10));
  assert.equal(round.streamed_text, round.text);
});

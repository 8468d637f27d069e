// The story writer's model in the browser beside wllama (npm `@wllama/wllama`: llama.cpp compiled
// to wasm, the peer a web developer would pick) on the same GGUF, in one headless Chromium, one
// thread each (no cross-origin isolation): prompt and generation tokens per second on the CPU.
//
//   node tests/bench/wllama.mjs MODEL.gguf PROMPT [NEW_TOKENS]
//
// The engine runs the bench page of dist-release/ (`cargo xtask bench wllama` builds it and runs
// this). Both: greedy, the same prompt, end tokens ignored so both write NEW_TOKENS; a first run
// warms up (and loads), the second is reported.
import { mkdtemp, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { startServer, launchBrowser, runBench, repoRoot } from '../e2e/harness.mjs';

const [model, prompt, newTokensText = '64'] = process.argv.slice(2);
if (!model || !prompt) {
  console.error('usage: node tests/bench/wllama.mjs MODEL.gguf PROMPT [NEW_TOKENS]');
  process.exit(2);
}
const newTokens = Number(newTokensText);

const site = await mkdtemp(join(tmpdir(), 'wllama-bench-'));
// TODDLER_DIST: another build of the app (the tests' debug `dist/`, say) in place of dist-release/.
const dist = process.env.TODDLER_DIST ?? join(repoRoot, 'dist-release');
for (const entry of await readdir(dist)) await symlink(join(dist, entry), join(site, entry));
await symlink(join(repoRoot, 'xtask/npm/node_modules/@wllama/wllama/esm'), join(site, 'wllama'));
await symlink(resolve(model), join(site, 'model.gguf'));
await writeFile(join(site, 'wllama-bench.html'), `<!doctype html><meta charset="utf-8"><pre id="result"></pre>
<script type="module">
import { Wllama } from '/wllama/index.js';
const params = new URLSearchParams(location.search);
try {
  const wllama = new Wllama({ default: '/wllama/wasm/wllama.wasm' });
  const loading = performance.now();
  await wllama.loadModelFromUrl(location.origin + '/model.gguf', { n_threads: 1, n_ctx: 512, useCache: false });
  const loadMs = performance.now() - loading;
  const run = () => wllama.createCompletion({
    prompt: params.get('prompt'), max_tokens: +params.get('tokens'), temperature: 0, ignore_eos: true, cache_prompt: false,
  });
  await run();
  const second = await run();
  document.getElementById('result').textContent = JSON.stringify({ load_ms: loadMs, timings: second.timings, text: second.choices[0].text });
} catch (error) {
  document.getElementById('result').textContent = JSON.stringify({ error: String(error) });
}
</script>`);

const server = await startServer({ root: site, hub: { 'bench/lm': dirname(resolve(model)) } });
const browser = await launchBrowser(server);
try {
  const enginePage = await browser.newPage();
  const engine = await runBench(enginePage, server.origin, {
    lm: `${server.origin}/hub/bench/lm/resolve/main`, lm_file: basename(model), prompt,
    max_tokens: String(newTokens), backend: 'cpu', rounds: '2',
  }, { timeout: 1_800_000 });
  if (engine.error) throw new Error(`engine: ${engine.error}`);
  const round = engine.rounds[1];
  await enginePage.close();
  const peerPage = await browser.newPage();
  await peerPage.goto(`${server.origin}/wllama-bench.html?${new URLSearchParams({ prompt, tokens: String(newTokens) })}`);
  await peerPage.waitForFunction(() => document.getElementById('result')?.textContent.trim().length > 0, null, { timeout: 1_800_000 });
  const peer = JSON.parse(await peerPage.locator('#result').textContent());
  if (peer.error) throw new Error(`wllama: ${peer.error}`);
  const rows = {
    engine: {
      prompt_tokens: round.prompt_tokens, prompt_per_second: round.prompt_tokens_per_second,
      generated: round.ids.length, generation_per_second: round.tokens_per_second,
      load_ms: engine.rounds[0].load_ms, wasm_heap_bytes: round.wasm_heap_peak_bytes,
    },
    wllama: {
      prompt_tokens: peer.timings.prompt_n, prompt_per_second: peer.timings.prompt_per_second,
      generated: peer.timings.predicted_n, generation_per_second: peer.timings.predicted_per_second,
      load_ms: peer.load_ms,
    },
  };
  console.log(JSON.stringify(rows));
  console.log(`engine time / wllama time: prompt ${(rows.wllama.prompt_per_second / rows.engine.prompt_per_second).toFixed(2)}×, `
    + `generation ${(rows.wllama.generation_per_second / rows.engine.generation_per_second).toFixed(2)}×`);
} finally {
  await browser.close();
  await server.close();
}

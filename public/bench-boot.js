// Starts the engine bench (bench.html), a module of its own so it stays out of the app's.
import init from '/toddler-bench.js';

await init({ module_or_path: '/toddler-bench_bg.wasm' });

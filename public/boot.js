// Starts the app. Trunk's own loader is an inline script, which our Content-Security-Policy
// forbids, so this file does the same job from the app's origin.
import init from '/toddler-app.js';

await init({ module_or_path: '/toddler-app_bg.wasm' });

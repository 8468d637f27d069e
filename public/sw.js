// ToddlerStories service worker: keeps the app shell available offline.
//
// `cargo xtask precache` rewrites the placeholders after every build: the files of the app shell
// (cached at install), the engine worker's files (cached the first time the engine starts: they
// are large and only needed to draw), and a version that is a hash of all their contents. A new version therefore
// installs beside the old one and waits until the parent chooses "Update now".
const VERSION = 'BUILD_VERSION';
const PRECACHE = PRECACHE_FILES;
const LAZY = LAZY_FILES;
const SHELL_CACHE = `toddler-shell-${VERSION}`;
const SHELL_PREFIX = 'toddler-shell-';

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(PRECACHE)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names
          .filter((name) => name.startsWith(SHELL_PREFIX) && name !== SHELL_CACHE)
          .map((name) => caches.delete(name)),
      );
      // The very first install takes over the open page at once; updates wait for the parent.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') {
    self.skipWaiting();
  }
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) {
    return;
  }
  // Every screen is the same single page: serve index.html for any in-app navigation. The engine
  // bench (a developer tool, never cached) is a page of its own: the network serves it.
  const inApp = request.mode === 'navigate' && url.pathname !== '/bench.html';
  const key = inApp ? '/index.html' : url.pathname;
  if (PRECACHE.includes(key)) {
    event.respondWith(
      caches.open(SHELL_CACHE).then(async (cache) => {
        const response = (await cache.match(key)) ?? (await fetch(request));
        return key === '/index.html' ? admitModelHost(response) : response;
      }),
    );
  } else if (LAZY.includes(key)) {
    event.respondWith(
      caches.open(SHELL_CACHE).then(async (cache) => {
        const cached = await cache.match(key);
        if (cached) {
          return cached;
        }
        const response = await fetch(request);
        if (response.ok) {
          await cache.put(key, response.clone());
        }
        return response;
      }),
    );
  }
});

// A model host the parent configured (Models → Model host) is admitted to the page's
// connect-src, and nothing else: the app writes it to this cache, only its origin is used.
const SETTINGS_CACHE = 'toddler-settings';

async function admitModelHost(response) {
  const stored = await caches.match('/settings/hub-base', { cacheName: SETTINGS_CACHE });
  if (!stored) {
    return response;
  }
  let origin;
  try {
    origin = new URL((await stored.text()).trim()).origin;
  } catch {
    return response;
  }
  if (!/^https?:\/\/[A-Za-z0-9.\-:\[\]]+$/.test(origin)) {
    return response;
  }
  const html = await response.text();
  return new Response(html.replace("connect-src 'self'", `connect-src 'self' ${origin}`), {
    status: response.status,
    headers: response.headers,
  });
}

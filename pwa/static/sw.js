// The courier app's service worker (served at /sw.js, registered with scope /app). It keeps the app
// shell so that the app opens with no network: the page (as last seen) and its static files. The API
// and the event stream are never cached: what they say must be current or visibly unavailable.
const CACHE = "lanshou-courier-v1";
const SHELL = [
  "/app",
  "/static/app.css",
  "/static/courier.css",
  "/static/courier.js",
  "/static/vendor/htmx/htmx.min.js",
  "/static/manifest.webmanifest",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

// Network first, the cache when the network fails: a courier with signal always sees the current page
// and files; without signal, the last ones. Each good answer refreshes the cached copy.
async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic" && !response.redirected) await cache.put(key, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(key, { ignoreSearch: true });
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (event.request.mode === "navigate" && (url.pathname === "/app" || url.pathname === "/app/")) {
    event.respondWith(networkFirst(event.request, "/app"));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(networkFirst(event.request, url.pathname));
  }
});

// Tapping a notification opens (or focuses) the app.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: "window" }).then((windows) => {
      const open = windows.find((w) => new URL(w.url).pathname.startsWith("/app"));
      return open ? open.focus() : self.clients.openWindow("/app");
    }),
  );
});

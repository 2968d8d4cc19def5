// The courier app's service worker (served at /sw.js, registered with scope /app). It keeps the app
// shell so that the app opens with no network: the page and its list (as last seen) and its static files.
// The API and the event stream are never cached: what they say must be current or visibly unavailable.
// It also shows the Web Push offers (server/webpush/service.py: offer_payload) and opens the app at the
// offer when one is tapped.
const CACHE = "lanshou-courier-v3";
const SHELL = [
  "/app",
  "/static/app.css",
  "/static/courier.css",
  "/static/courier.js",
  "/static/outbox.js",
  "/static/push.js",
  "/static/countdown.js",
  "/static/tabs.js",
  "/static/scanner.js",
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
  } else if (url.pathname === "/app/pickups") {
    // The list as last seen (per language): what the cached page shows with no network.
    event.respondWith(networkFirst(event.request, url.pathname + url.search));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(networkFirst(event.request, url.pathname));
  }
});

const VIBRATE = [300, 100, 300, 100, 300, 100, 600];

// An offer pushed while the app is in the background or closed: {type, pickup_id, title, body, tag, url}.
// One notification per pickup (its tag), which stays until answered and rings again when re-sent.
self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { body: event.data ? event.data.text() : "" };
  }
  const id = message.pickup_id;
  event.waitUntil(
    self.registration.showNotification(message.title || "新揽收任务", {
      body: message.body || "",
      tag: message.tag || (id ? `pickup-${id}` : "lanshou-offer"),
      renotify: true,
      requireInteraction: true,
      vibrate: VIBRATE,
      icon: "/static/icons/icon-192.png",
      badge: "/static/icons/icon-192.png",
      data: { pickup_id: id },
    }),
  );
});

// Opens the app at an offer, or brings the open app forward and has it show the offer there.
async function openOffer(id) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((w) => new URL(w.url).pathname.startsWith("/app"));
  if (!open) return self.clients.openWindow(id ? `/app#offer-${encodeURIComponent(id)}` : "/app");
  // Focusing is allowed while handling a click; elsewhere it is refused and the message still goes.
  const focused = await open.focus().catch(() => null);
  if (id) (focused || open).postMessage({ type: "open-offer", pickup_id: id });
  return focused;
}

// Tapping a notification opens the app at that offer.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openOffer(event.notification.data?.pickup_id));
});

// The courier app's browser side (an ES module, no build step): the on-duty tap (audio, notifications,
// wake lock), the event stream that makes an offer ring until it is answered or withdrawn, and the
// actions, sent to the courier JSON API with their client_action_id and client_at. The list itself is
// server-rendered: after every event and action it is re-read as the `pickups` partial through htmx.
// Text from the server reaches the page through htmx swaps of escaped HTML or `textContent`, never
// through innerHTML built here.

// Scanning and the collect details (the page loads it too: the same instance). Not a static import: if it
// cannot be fetched (offline, not in the service worker's shell), the rest of the app still runs.
const scannerModule = import("./scanner.js").catch(() => null);

const app = document.getElementById("app");
const strings = JSON.parse(document.getElementById("strings").textContent);
const t = (key, values = {}) =>
  (strings[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));

// Events after which the list is re-read. Only `pickup.offered` rings.
const EVENT_TYPES = [
  "pickup.offered",
  "pickup.withdrawn",
  "pickup.cancelled",
  "pickup.reassigned",
  "pickup.assigned",
  "pickup.unassigned",
  "pickup.accepted",
  "pickup.contacted",
  "pickup.collected",
  "pickup.failed",
  "pickup.chased",
  "courier.duty",
];
const STOPS_RINGING = new Set(["pickup.withdrawn", "pickup.cancelled", "pickup.reassigned", "pickup.unassigned"]);

let onDuty = app.dataset.onDuty === "true";
let lastEventId = app.dataset.lastEventId || "";
const ringing = new Set(); // pickup ids whose offer rings
const silenced = new Set(); // answered here (accepted, declined) or withdrawn: never ring again this round

// -- the alert: a two-tone square-wave siren, repeated until nothing rings --------------------------------

let audio = null;
let master = null;
let ringTimer = null;

function unlockAudio() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!audio && Context) audio = new Context();
  if (audio && audio.state === "suspended") audio.resume();
  // Tells whoever looks (a test, a support call) whether the phone can sound the alert.
  if (audio) audio.resume().then(() => { document.body.dataset.audio = audio.state; });
}

function sirenBurst() {
  if (!audio) return;
  if (!master) {
    // A private gain for this ringing: disconnecting it silences every tone already scheduled.
    master = audio.createGain();
    master.connect(audio.destination);
  }
  const start = audio.currentTime + 0.02;
  // Three high-low pairs in 0.9 s: unlike any phone's own tones, and loud (square waves, full gain).
  for (let i = 0; i < 3; i += 1) {
    for (const [frequency, offset] of [[1568, 0], [1046, 0.15]]) {
      const at = start + i * 0.3 + offset;
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.9, at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.14);
      osc.connect(gain).connect(master);
      osc.start(at);
      osc.stop(at + 0.15);
    }
  }
  if (navigator.vibrate) navigator.vibrate([300, 100, 300, 100, 300]);
}

function startRinging() {
  if (ringTimer) return;
  sirenBurst();
  ringTimer = setInterval(sirenBurst, 1300);
}

function stopRinging() {
  clearInterval(ringTimer);
  ringTimer = null;
  // Dropping the master gain silences the oscillators already scheduled at once.
  if (master) master.disconnect();
  master = null;
  if (navigator.vibrate) navigator.vibrate(0);
}

function updateRinging() {
  const on = ringing.size > 0;
  document.body.dataset.ringing = on ? "true" : "false";
  if (on) startRinging();
  else stopRinging();
}

// The list on the page is the truth about what is open: ring for every offer shown and not answered.
function ringingFromList() {
  ringing.clear();
  for (const card of document.querySelectorAll("#pickups .offer")) {
    if (!silenced.has(card.dataset.pickupId)) ringing.add(card.dataset.pickupId);
  }
  updateRinging();
}

// -- the list partial ------------------------------------------------------------------------------------

let refreshing = null;
let refreshAgain = false;
let typedBeforeSwap = null;

// What the courier has typed into the list, by input id.
function typedValues() {
  const typed = {};
  for (const input of document.querySelectorAll("#pickups input[id], #pickups select[id]")) {
    if (input.value) typed[input.id] = input.value;
  }
  return typed;
}

function restoreTyped(typed) {
  for (const [id, value] of Object.entries(typed || {})) {
    const input = document.getElementById(id);
    if (input && !input.value) input.value = value;
  }
}

// What the courier is typing survives the swap: it is read at the moment the new list replaces the old one
// (not when the request left), so a number typed while the request was out is kept too.
document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "pickups") typedBeforeSwap = typedValues();
});
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "pickups" && typedBeforeSwap) restoreTyped(typedBeforeSwap);
});

async function refreshList() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  typedBeforeSwap = null;
  const focused = document.activeElement && document.activeElement.id;
  refreshing = window.htmx
    .ajax("GET", app.dataset.listUrl, { target: "#pickups", swap: "outerHTML" })
    .catch(() => showNotice(t("courier.error.network")))
    .finally(() => {
      restoreTyped(typedBeforeSwap);
      typedBeforeSwap = null;
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      refreshing = null;
      ringingFromList();
      updateCountdowns();
      if (refreshAgain) {
        refreshAgain = false;
        refreshList();
      }
    });
  return refreshing;
}

// -- the event stream, resumed from the last event id after any drop --------------------------------------

let source = null;

function setLive(live) {
  const badge = document.getElementById("live");
  badge.dataset.state = live ? "live" : "connecting";
  badge.textContent = live ? t("courier.live") : t("courier.connecting");
}

function onEvent(event) {
  if (event.lastEventId) lastEventId = event.lastEventId;
  let data = {};
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  const id = String(data.pickup_id);
  if (event.type === "pickup.offered") {
    silenced.delete(id); // a new round of the same pickup rings again
    ringing.add(id);
    updateRinging();
    notifyInBackground(data);
  } else if (STOPS_RINGING.has(event.type)) {
    silenced.add(id);
    ringing.delete(id);
    document.getElementById(`offer-${id}`)?.remove();
    updateRinging();
  }
  refreshList();
}

function connect() {
  const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
  source = new EventSource(`/api/v1/courier/events${query}`);
  source.addEventListener("ready", (event) => {
    if (event.lastEventId) lastEventId = event.lastEventId;
    setLive(true);
  });
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
  source.addEventListener("error", () => {
    setLive(false);
    // The browser reconnects by itself (sending Last-Event-ID); a stream it gave up on is reopened here.
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      setTimeout(connect, 2000);
    }
  });
}

async function notifyInBackground(data) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  const registration = await navigator.serviceWorker?.getRegistration("/app");
  const pickup = data.pickup || {};
  registration?.showNotification(t("courier.offers"), {
    body: `${pickup.district || ""} ${pickup.street || ""}`.trim(),
    tag: `pickup-${data.pickup_id}`,
    requireInteraction: true,
    renotify: true,
    vibrate: [300, 100, 300, 100, 300],
  });
}

// -- actions -----------------------------------------------------------------------------------------------

function newActionId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function showNotice(message) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.hidden = !message;
}

async function send(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    return { ok: false, message: t("courier.error.network") };
  }
  if (response.status === 401) {
    window.location.assign(`/auth/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    return { ok: false, message: "" };
  }
  const answer = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, answer };
}

// The API speaks English to every client; the page says what went wrong in its own language.
function errorMessage(result, action) {
  if (result.message !== undefined) return result.message;
  const { status, answer } = result;
  if (action === "collect") {
    if (answer.code === "waybill_taken") return t("courier.waybill.taken");
    const waybill = (answer.errors || []).find((e) => e.field.endsWith("waybill_no"));
    if (waybill) return t(/check digit/.test(waybill.message) ? "courier.waybill.invalid" : "courier.waybill.unknown");
  }
  if (status === 409) return t("courier.error.conflict");
  return t("courier.error.other", { message: answer.message || status });
}

async function act(pickupId, action, fields, errorTarget, busy) {
  busy.forEach((el) => { el.disabled = true; el.setAttribute("aria-busy", "true"); });
  const body = { client_action_id: newActionId(), client_at: new Date().toISOString(), ...fields };
  const result = await send(`/api/v1/courier/pickups/${pickupId}/${action}`, body);
  busy.forEach((el) => { el.disabled = false; el.removeAttribute("aria-busy"); });
  if (errorTarget) {
    errorTarget.textContent = result.ok ? "" : errorMessage(result, action);
    errorTarget.hidden = result.ok;
  }
  if (result.ok || result.status === 409) await refreshList();
  return result.ok;
}

app.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.dataset.pickupId;
  const card = button.closest(".card");
  if (button.dataset.action === "decline") {
    // The API has no decline yet: the offer stops ringing here and runs out on the server.
    silenced.add(id);
    ringing.delete(id);
    card?.remove();
    updateRinging();
  } else if (button.dataset.action === "accept") {
    silenced.add(id); // answered: stop at once, whatever the server says
    ringing.delete(id);
    updateRinging();
    act(id, "accept", {}, card?.querySelector("[data-error]"), [button]);
  } else if (button.dataset.action === "contacted") {
    act(id, "contacted", {}, card?.querySelector(".fail [data-error]"), [button]);
  } else if (button.dataset.action === "scan") {
    scannerModule.then((scanner) =>
      scanner ? scanner.openScanner(button.closest("form")) : showNotice(t("courier.error.network")),
    );
  }
});

app.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-action]");
  if (!form) return;
  event.preventDefault();
  const id = form.dataset.pickupId;
  const error = form.querySelector("[data-error]");
  const busy = [...form.querySelectorAll("button, input, select")];
  if (form.dataset.action === "collect") {
    const waybill = form.elements.waybill_no.value.replace(/\s+/g, "").toUpperCase();
    if (!waybill) {
      error.textContent = t("courier.waybill.required");
      error.hidden = false;
      return;
    }
    // Pieces, weight, re-packed; the photo is uploaded first and sent as its id (scanner.js).
    busy.forEach((el) => { el.disabled = true; });
    const scanner = await scannerModule;
    const details = scanner ? await scanner.collectDetails(form) : { ok: false, message: t("courier.error.network") };
    busy.forEach((el) => { el.disabled = false; });
    if (!details.ok) {
      error.textContent = details.message;
      error.hidden = false;
      return;
    }
    if (await act(id, "collect", { waybill_no: waybill, ...details.fields }, error, busy)) scanner.forgetDetails(id);
  } else if (form.dataset.action === "fail") {
    act(id, "fail", { reason: form.elements.reason.value }, error, busy);
  }
});

// -- going on duty: one tap unlocks audio, asks to notify, keeps the screen on -----------------------------

let wakeLock = null;

async function keepScreenOn() {
  if (!onDuty || !("wakeLock" in navigator) || document.visibilityState !== "visible") return;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
  } catch {
    wakeLock = null; // refused (battery saver, not a secure context): the app still rings while open
  }
}

function renderDuty() {
  const button = document.getElementById("duty");
  button.setAttribute("aria-pressed", onDuty ? "true" : "false");
  button.textContent = onDuty ? t("courier.on_duty") : t("courier.off_duty");
  app.dataset.onDuty = onDuty ? "true" : "false";
}

document.getElementById("duty").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  unlockAudio();
  if (ringTimer) sirenBurst(); // an offer shown before the tap rings out loud now
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  const want = !onDuty;
  button.disabled = true;
  const result = await send("/api/v1/courier/duty", { on_duty: want });
  button.disabled = false;
  if (!result.ok) {
    showNotice(errorMessage(result, "duty"));
    return;
  }
  showNotice("");
  onDuty = want;
  renderDuty();
  if (onDuty) await keepScreenOn();
  else if (wakeLock) {
    wakeLock.release();
    wakeLock = null;
  }
  refreshList();
});

document.addEventListener("visibilitychange", () => {
  // The browser drops the wake lock whenever the page is hidden.
  if (document.visibilityState === "visible") keepScreenOn();
});

// A heartbeat while on duty: dispatch sees the courier as reachable.
setInterval(() => {
  if (onDuty && navigator.onLine) send("/api/v1/courier/heartbeat", {});
}, 60_000);

// -- time left on each offer -------------------------------------------------------------------------------

function updateCountdowns() {
  for (const card of document.querySelectorAll("#pickups .offer[data-expires-at]")) {
    const label = card.querySelector("[data-left]");
    if (!card.dataset.expiresAt || !label) continue;
    const seconds = Math.round((Date.parse(card.dataset.expiresAt) - Date.now()) / 1000);
    label.textContent = seconds > 0 ? t("courier.left", { s: seconds }) : t("courier.expired");
  }
}
setInterval(updateCountdowns, 1000);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/app" }).catch(() => {});
}

renderDuty();
ringingFromList();
updateCountdowns();
connect();

// The courier app's browser side (an ES module, no build step): the on-duty tap (audio, notifications,
// wake lock, Web Push), the event stream that makes an offer ring until it is answered or withdrawn, and the
// actions, written to the outbox (outbox.js) with their client_action_id and client_at and sent from there
// to the courier JSON API, so that nothing done without signal is lost. The list itself is
// server-rendered: after every event and action it is re-read as the `pickups` partial through htmx.
// Text from the server reaches the page through htmx swaps of escaped HTML or `textContent`, never
// through innerHTML built here.

import * as outbox from "./outbox.js";
import * as push from "./push.js";

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
  "pickup.declined",
  "pickup.accepted",
  "pickup.contacted",
  "pickup.collected",
  "pickup.failed",
  "pickup.chased",
  "pickup.rescheduled",
  "pickup.address_changed",
  "courier.duty",
];
// pickup.declined reaches only the courier who declined (on another screen, or from the outbox).
const STOPS_RINGING = new Set([
  "pickup.withdrawn",
  "pickup.cancelled",
  "pickup.reassigned",
  "pickup.unassigned",
  "pickup.declined",
]);

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

// What the courier typed into the list (by input id, recorded as it is typed) and the error messages
// showing on each card (by card and position): a refresh brought by an event must wipe neither. Recording
// input events, not reading the inputs at swap time, also keeps what was typed while the new list was
// on its way.
const typedByCourier = new Map();

document.addEventListener("input", (event) => {
  const input = event.target;
  if (!input.id || !input.closest?.("#pickups") || input.type === "file") return;
  typedByCourier.set(input.id, input.type === "checkbox" ? input.checked : input.value);
});

function typedValues() {
  const errors = [];
  for (const card of document.querySelectorAll("#pickups .card[id]")) {
    card.querySelectorAll("[data-error]").forEach((error, index) => {
      if (!error.hidden && error.textContent) errors.push([card.id, index, error.textContent]);
    });
  }
  return { errors };
}

function restoreTyped(typed) {
  for (const [id, value] of typedByCourier) {
    const input = document.getElementById(id);
    if (!input) typedByCourier.delete(id); // its card is gone (collected, failed, withdrawn)
    else if (input.type === "checkbox") input.checked = value;
    else input.value = value;
  }
  for (const [cardId, index, text] of typed?.errors || []) {
    const error = document.getElementById(cardId)?.querySelectorAll("[data-error]")[index];
    if (error && error.hidden) {
      error.textContent = text;
      error.hidden = false;
    }
  }
}

// What the courier is typing survives the swap.
document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "pickups") typedBeforeSwap = typedValues();
});
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "pickups") restoreTyped(typedBeforeSwap);
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
      renderPending(); // what waits in the outbox shows on the new cards
      showOffer(highlighted, false);
      reopenDeclineReasons();
      watchOffers();
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
let connected = false; // a stream was ready before: the next ready is a reconnection

function setLive(live) {
  const badge = document.getElementById("live");
  badge.dataset.state = live ? "live" : "connecting";
  badge.textContent = live ? t("courier.live") : t("courier.connecting");
}

function setLastEventId(id) {
  lastEventId = id;
  app.dataset.lastEventId = id; // where the next stream resumes; shown for whoever looks (a test, support)
}

function onEvent(event) {
  if (event.lastEventId) setLastEventId(event.lastEventId);
  let data = {};
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  const id = String(data.pickup_id);
  if (event.type === "pickup.offered") {
    silenced.delete(id); // a new round of the same pickup rings again
    seenSent.delete(id); // and is seen again
    declined.delete(id);
    ringing.add(id);
    updateRinging();
    notifyInBackground(data);
  } else if (STOPS_RINGING.has(event.type)) {
    silenced.add(id);
    ringing.delete(id);
    document.getElementById(`offer-${id}`)?.remove();
    updateRinging();
    closeNotification(id);
  }
  refreshList();
}

function disconnect() {
  if (source) source.close();
  source = null;
  setLive(false);
}

// Opens the stream from the last event id this page has: whatever happened meanwhile is replayed first.
function connect() {
  disconnect();
  const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
  const stream = new EventSource(`/api/v1/courier/events${query}`);
  source = stream;
  stream.addEventListener("ready", (event) => {
    if (event.lastEventId) setLastEventId(event.lastEventId);
    setLive(true);
    // Back in touch: send what waits, and (after a drop) re-read the list, which the replay may not cover
    // (say an action of this page that reached the server while its answer was lost).
    flushOutbox();
    if (connected) refreshList();
    connected = true;
  });
  for (const type of EVENT_TYPES) stream.addEventListener(type, onEvent);
  stream.addEventListener("error", () => {
    if (source !== stream) return;
    setLive(false);
    // The browser reconnects by itself (sending Last-Event-ID); a stream it gave up on is reopened here.
    if (stream.readyState === EventSource.CLOSED) setTimeout(() => source === stream && connect(), 2000);
  });
}

// A phone that loses its network keeps a dead connection open for minutes without noticing; the browser
// does notice going offline and back. So the stream is closed on `offline` and reopened from its last id
// on `online`, and the outbox is sent.
window.addEventListener("offline", disconnect);
window.addEventListener("online", () => {
  connect();
  flushOutbox();
});

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
    data: { pickup_id: data.pickup_id },
  });
}

// An offer answered here or withdrawn needs no notification any more (one may be up from Web Push).
async function closeNotification(id) {
  try {
    const registration = await navigator.serviceWorker?.getRegistration("/app");
    for (const n of (await registration?.getNotifications({ tag: `pickup-${id}` })) || []) n.close();
  } catch {
    // nothing shown, or no service worker: nothing to close
  }
}

// Opened from a notification (/app#offer-<id>, or the service worker's message to an open app): bring
// that offer into view and mark it.
let highlighted = null; // the pickup opened from a notification: marked again on every new list

function showOffer(id, scroll = true) {
  if (!id) return;
  highlighted = String(id);
  const card = document.getElementById(`offer-${id}`) || document.getElementById(`held-${id}`);
  if (!card) return;
  for (const other of document.querySelectorAll("#pickups [data-highlight]")) delete other.dataset.highlight;
  card.dataset.highlight = "true";
  if (scroll) card.scrollIntoView({ block: "center" });
}

function offerInAddress() {
  const fromHash = /^#offer-(\d+)$/.exec(location.hash);
  return fromHash ? fromHash[1] : new URLSearchParams(location.search).get("offer");
}

window.addEventListener("hashchange", () => showOffer(offerInAddress()));
navigator.serviceWorker?.addEventListener("message", (event) => {
  if (event.data?.type === "open-offer") {
    const id = String(event.data.pickup_id);
    showOffer(id);
    if (!document.getElementById(`offer-${id}`) && !document.getElementById(`held-${id}`)) {
      refreshList().then(() => showOffer(id));
    }
  }
});

// -- actions, through the outbox ----------------------------------------------------------------------------
//
// Every action is written to the outbox (outbox.js) and then the outbox is sent, oldest first. The action the
// courier just did is answered in place as before (a bad waybill is refused inline); one that cannot be sent
// (no network, a server error) waits, the card says so ("已收件（待同步）") and the courier goes on. Waiting
// actions are sent again when the network returns, every RETRY_MS, and when the page loads. One the server
// refuses when it finally arrives (the customer cancelled meanwhile: 409) is dropped, with a message naming
// the pickup. `seen` (the offer was on screen) is sent the same way, silently.

const RETRY_MS = 15_000;
const SILENT = new Set(["seen"]); // not the courier's doing: not counted, refusals not shown
const courierId = app.dataset.courierId || "";
const waiting = new Map(); // outbox seq -> resolve(result), for the actions this page awaits the answer of
let pending = []; // the outbox as last read (this courier's entries)
let flushing = null;
let flushAgain = false;
let retryTimer = null;

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
    return { ok: false, status: 401, message: "" };
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
  if (action === "fail" && (answer.errors || []).some((e) => e.field.endsWith("new_time"))) {
    return t("courier.fail.new_time.invalid");
  }
  if (status === 409 && answer.current_status === "cancelled") return t("courier.outbox.cancelled");
  if (status === 409) return t("courier.error.conflict");
  return t("courier.error.other", { message: answer.message || status });
}

// Show (or clear) an error message. The element was found when the courier acted; a refresh of the list
// brought by a stream event while the request was out may have swapped the card for a new one since, so
// the message goes on the element that now holds that id (every [data-error] has one: courier.html).
function showError(target, message) {
  const element = target && !target.isConnected && target.id ? document.getElementById(target.id) : target;
  if (!element) return;
  element.textContent = message;
  element.hidden = !message;
}

// Worth sending again later: the network failed, or the server did (a 4xx would only be refused again).
const sendAgain = (result) => result.status === undefined || result.status >= 500 || result.status === 401;

async function readOutbox() {
  pending = (await outbox.all()).filter((entry) => entry.courier === courierId);
  renderPending();
  return pending;
}

function refused(entry, result) {
  if (SILENT.has(entry.action)) return;
  const item = document.createElement("li");
  item.dataset.pickupId = entry.pickup_id;
  item.textContent = t("courier.outbox.refused", {
    pickup: `#${entry.pickup_id}${entry.place ? ` ${entry.place}` : ""}`,
    action: t(`courier.outbox.action.${entry.action}`),
    reason: errorMessage(result, entry.action),
  });
  document.getElementById("outbox-refused").append(item);
  document.getElementById("outbox-messages").hidden = false;
}

// Sends the waiting actions in order; stops at the first that must wait (the rest wait behind it).
async function flushOnce() {
  let changed = false;
  let stuck = false;
  for (const entry of await readOutbox()) {
    const result = await send(`/api/v1/courier/pickups/${entry.pickup_id}/${entry.action}`, entry.body);
    if (sendAgain(result)) {
      stuck = true;
      break;
    }
    await outbox.remove(entry.seq);
    const answer = waiting.get(entry.seq);
    waiting.delete(entry.seq);
    if (answer) {
      answer(result); // the page shows it where the courier did it, and re-reads the list if it changed
    } else {
      changed = true; // a replay: the list is re-read once the outbox is through
      if (!result.ok) refused(entry, result);
    }
  }
  await readOutbox();
  return { changed, stuck };
}

function flushOutbox() {
  if (flushing) {
    flushAgain = true;
    return flushing;
  }
  flushing = (async () => {
    let changed = false;
    let stuck = false;
    do {
      flushAgain = false;
      const pass = await outbox.exclusively(flushOnce);
      changed ||= pass.changed;
      stuck = pass.stuck;
    } while (flushAgain && !stuck);
    // What could not be sent now waits: its card says so and the courier goes on.
    for (const [seq, answer] of waiting) {
      waiting.delete(seq);
      answer({ ok: false, queued: true });
    }
    clearTimeout(retryTimer);
    retryTimer = stuck ? setTimeout(flushOutbox, RETRY_MS) : null;
    return changed;
  })()
    .catch(() => false)
    .finally(() => {
      flushing = null;
    });
  flushing.then((changed) => changed && refreshList());
  return flushing;
}

// What a waiting action looks like on its card, so that the courier sees it was taken.
const PENDING_HIDES = {
  accept: ".actions",
  contacted: "button[data-action=contacted]",
  arrived: "button[data-action=arrived]",
  collect: "form, button[data-action]",
  fail: "form, button[data-action]",
};

function renderPending() {
  const shown = pending.filter((entry) => !SILENT.has(entry.action));
  const count = document.getElementById("outbox-count");
  count.dataset.count = String(shown.length);
  count.textContent = shown.length ? t("courier.outbox.pending", { n: shown.length }) : "";
  count.hidden = shown.length === 0;
  for (const el of document.querySelectorAll("#pickups [data-pending-hidden]")) {
    el.hidden = false;
    delete el.dataset.pendingHidden;
  }
  for (const el of document.querySelectorAll("#pickups [data-pending-note]")) el.remove();
  for (const card of document.querySelectorAll("#pickups [data-pending]")) delete card.dataset.pending;
  for (const id of declined) {
    const card = document.getElementById(`offer-${id}`);
    if (card) {
      card.hidden = true;
      card.dataset.pendingHidden = "true";
    }
  }
  const latest = new Map(shown.map((entry) => [entry.pickup_id, entry])); // the last action per pickup
  for (const [id, entry] of latest) {
    if (entry.action === "accept" || entry.action === "decline") {
      silenced.add(id); // answered: it does not ring again, whatever the list says
      ringing.delete(id);
    }
    const card = document.getElementById(`offer-${id}`) || document.getElementById(`held-${id}`);
    if (!card) continue;
    card.dataset.pending = entry.action;
    if (entry.action === "decline") {
      card.hidden = true;
      card.dataset.pendingHidden = "true";
      continue;
    }
    for (const el of card.querySelectorAll(PENDING_HIDES[entry.action] || ":not(*)")) {
      if (el.hidden) continue;
      el.hidden = true;
      el.dataset.pendingHidden = "true";
    }
    const note = document.createElement("p");
    note.className = "pending";
    note.dataset.pendingNote = "";
    note.setAttribute("role", "status");
    note.textContent = t(`courier.pending.${entry.action}`);
    card.querySelector("header")?.after(note);
  }
  updateRinging();
}

// Writes the action to the outbox, sends what waits, and answers with what became of this one:
// {ok} sent, {ok: false, status, answer} refused, {queued: true} waiting to be sent.
async function act(pickupId, action, fields, errorTarget, busy) {
  busy.forEach((el) => { el.disabled = true; el.setAttribute("aria-busy", "true"); });
  const card = document.getElementById(`offer-${pickupId}`) || document.getElementById(`held-${pickupId}`);
  const place = card?.querySelector(".street")?.textContent.replace(/\s+/g, " ").trim() || "";
  const body = { client_action_id: newActionId(), client_at: new Date().toISOString(), ...fields };
  let result;
  try {
    const entry = await outbox.add({ courier: courierId, pickup_id: String(pickupId), action, place, body });
    const answered = new Promise((resolve) => waiting.set(entry.seq, resolve));
    flushOutbox();
    result = await answered;
  } catch {
    result = await send(`/api/v1/courier/pickups/${pickupId}/${action}`, body); // no outbox at all
  }
  busy.forEach((el) => { el.disabled = false; el.removeAttribute("aria-busy"); });
  if (SILENT.has(action)) return result;
  showError(errorTarget, !result.ok && !result.queued ? errorMessage(result, action) : "");
  if (result.queued) await readOutbox();
  else if (action !== "seen" && (result.ok || result.status === 409)) await refreshList(); // seen changes nothing shown
  return result;
}

// -- seen: the offer card was on a visible screen (alert → seen → accept times) ---------------------------

const seenSent = new Set();
const declined = new Set(); // offers declined on this page (this round)
const onScreen = new Set();
const watcher = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const id = e.target.dataset.pickupId;
      if (e.isIntersecting) onScreen.add(id);
      else onScreen.delete(id);
    }
    markSeen();
  })
  : null;

function watchOffers() {
  if (!watcher) return;
  watcher.disconnect();
  onScreen.clear();
  for (const card of document.querySelectorAll("#pickups .offer")) watcher.observe(card);
}

function markSeen() {
  if (document.visibilityState !== "visible") return;
  for (const id of onScreen) {
    if (seenSent.has(id) || !document.getElementById(`offer-${id}`)) continue;
    seenSent.add(id);
    act(id, "seen", {}, null, []);
  }
}
document.addEventListener("visibilitychange", markSeen);

// -- decline, with a reason ---------------------------------------------------------------------------------

const choosing = new Set(); // offers whose why-not buttons are showing: kept open across list refreshes

function showDeclineReasons(id, open) {
  const card = document.getElementById(`offer-${id}`);
  const box = card?.querySelector("[data-decline-reasons]");
  if (!box) return;
  box.hidden = !open;
  card.querySelector(".actions").hidden = open;
  card.querySelector("button[data-action=decline]").setAttribute("aria-expanded", open ? "true" : "false");
}

// Tapping 不接 stops the ringing and asks why, in the card; 返回 lets it ring again.
function askDeclineReason(id) {
  choosing.add(id);
  silenced.add(id);
  ringing.delete(id);
  updateRinging();
  showDeclineReasons(id, true);
  document.querySelector(`#offer-${id} [data-decline-reason]`)?.focus();
}

function reopenDeclineReasons() {
  for (const id of choosing) {
    if (document.getElementById(`offer-${id}`)) showDeclineReasons(id, true);
    else choosing.delete(id);
  }
}

app.addEventListener("click", (event) => {
  const reasonButton = event.target.closest("button[data-decline-reason], button[data-decline-back]");
  if (reasonButton) {
    const card = reasonButton.closest(".card");
    const id = card.dataset.pickupId;
    if (reasonButton.dataset.declineBack !== undefined) {
      choosing.delete(id);
      showDeclineReasons(id, false);
      silenced.delete(id);
      ringingFromList();
      return;
    }
    closeNotification(id);
    const reason = reasonButton.dataset.declineReason;
    choosing.delete(id);
    declined.add(id); // gone from this screen at once, sent or waiting; back only if offered again
    renderPending();
    act(id, "decline", { reason }, card.querySelector("[data-error]"), [...card.querySelectorAll("button")]).then(
      (result) => {
        if (result.ok || result.queued) return;
        declined.delete(id); // refused: the card comes back with the reason
        renderPending();
      },
    );
    return;
  }
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.dataset.pickupId;
  const card = button.closest(".card");
  if (button.dataset.action === "decline") {
    askDeclineReason(id);
  } else if (button.dataset.action === "accept") {
    silenced.add(id); // answered: stop at once, whatever the server says
    ringing.delete(id);
    updateRinging();
    closeNotification(id);
    act(id, "accept", {}, card?.querySelector("[data-error]"), [button]);
  } else if (button.dataset.action === "contacted" || button.dataset.action === "arrived") {
    act(id, button.dataset.action, {}, card?.querySelector(".fail [data-error]"), [button]);
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
      showError(error, t("courier.waybill.required"));
      return;
    }
    // Pieces, weight, re-packed; the photo is uploaded first and sent as its id (scanner.js).
    busy.forEach((el) => { el.disabled = true; });
    const scanner = await scannerModule;
    const details = scanner ? await scanner.collectDetails(form) : { ok: false, message: t("courier.error.network") };
    busy.forEach((el) => { el.disabled = false; });
    if (!details.ok) {
      showError(error, details.message);
      return;
    }
    const result = await act(id, "collect", { waybill_no: waybill, ...details.fields }, error, busy);
    if (result.ok || result.queued) scanner.forgetDetails(id);
  } else if (form.dataset.action === "fail") {
    // The new time the customer asked for, typed in the phone's own time zone, sent with its offset.
    const newTime = form.elements.new_time?.value;
    const fields = { reason: form.elements.reason.value };
    if (newTime) {
      const at = new Date(newTime);
      if (Number.isNaN(at.getTime()) || at <= new Date()) {
        showError(error, t("courier.fail.new_time.invalid"));
        return;
      }
      fields.new_time = at.toISOString();
    }
    act(id, "fail", fields, error, busy);
  }
});

document.getElementById("outbox-dismiss").addEventListener("click", () => {
  document.getElementById("outbox-refused").replaceChildren();
  document.getElementById("outbox-messages").hidden = true;
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
  const permission =
    "Notification" in window && Notification.permission === "default"
      ? Notification.requestPermission().catch(() => "default")
      : Promise.resolve(window.Notification?.permission);
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
  if (onDuty) {
    // Web Push, for when the app is in the background or closed; silently nothing where there is none.
    permission.then((answer) => answer === "granted" && push.subscribe());
    followPosition(); // the same tap asks for the position: offers say how far they are
    await keepScreenOn();
  } else {
    push.unsubscribe();
    stopFollowingPosition();
    if (wakeLock) {
      wakeLock.release();
      wakeLock = null;
    }
  }
  refreshList();
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  keepScreenOn(); // the browser drops the wake lock whenever the page is hidden
  flushOutbox();
  if (!source || source.readyState === EventSource.CLOSED) connect();
});

// -- where the courier is: sent with the heartbeat (GPS gives WGS-84), so dispatch can rank couriers by
// distance and each offer card says how far the pickup is. Nothing is sent where the courier said no.

let position = null;
let positionWatch = null;

function heartbeat() {
  return onDuty && navigator.onLine ? send("/api/v1/courier/heartbeat", position || {}) : Promise.resolve();
}

function followPosition() {
  if (!("geolocation" in navigator) || positionWatch !== null) return;
  positionWatch = navigator.geolocation.watchPosition(
    (fix) => {
      const first = position === null;
      position = { lat: fix.coords.latitude, lng: fix.coords.longitude, datum: "wgs84" };
      if (first) heartbeat().then(() => refreshList()); // the first fix: the cards can say how far now
    },
    () => {}, // refused or unavailable: the app works without it
    { enableHighAccuracy: false, maximumAge: 60_000, timeout: 30_000 },
  );
}

function stopFollowingPosition() {
  if (positionWatch !== null) navigator.geolocation.clearWatch(positionWatch);
  positionWatch = null;
  position = null;
}

// On a reload while on duty, follow the position again only where the courier already allowed it (no
// question without a tap).
if (onDuty && navigator.permissions?.query) {
  navigator.permissions
    .query({ name: "geolocation" })
    .then((status) => status.state === "granted" && followPosition())
    .catch(() => {});
}

// A heartbeat while on duty: dispatch sees the courier as reachable (and where).
setInterval(heartbeat, 60_000);

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
watchOffers();
ringingFromList();
updateCountdowns();
showOffer(offerInAddress());
readOutbox().then(() => {
  ringingFromList(); // an accept or decline still waiting to be sent is an answer: no ringing for it
  flushOutbox();
});
if (navigator.onLine) connect();
else refreshList(); // a page opened with no network is the cached shell: show the list as last seen

// The console's attention alerts: a sound and a count in the title bar when something needs the dispatcher.
//
// Three kinds, each switchable (the switches are kept in localStorage, per browser):
//   queue  — a pickup lands in the dispatcher's queue (nobody left to offer it to, no zone, taken back
//            with nobody on duty): seen as a row the stream brought into #rows-queue that was not there;
//   breach — a pickup's time limit is breached (the stream's pickup.sla_breached);
//   chase  — a customer (or partner) chases a pickup (pickup.chased).
// It follows the console's one stream through console.js's "console:event" DOM event; it never opens its own.
//
// The count says how many alerts came since the dispatcher last looked: it is cleared by the
// acknowledge button, and by the first click or key press after coming back to the tab (the tab was
// hidden or the window lost focus). Clearing it merely on focus would hide what happened while away
// before anyone has read it; a dispatcher looking at the page the whole time clears it with the button.
//
// Browsers refuse to play sound before the user has interacted with the page: until then the sound
// button says "click to enable sound". Each sound that played is counted on #attention (data-played,
// data-played-at, and per kind: data-played-breach, …; data-alerts-breach, … count the alerts), so that a
// test, or support on the phone, can see that it did.
(function () {
  "use strict";

  const STORAGE_KEY = "lanshou.console.attention";
  const KINDS = ["queue", "breach", "chase"];
  const SOUND_GAP_MS = 3000; // at most one sound per 3 s: ten breaches at once are one chime, not ten
  const RECENT_MS = 60000; // how long a stream event may take to bring its row into the queue

  function start() {
    const panel = document.getElementById("attention");
    if (!panel) return;
    const audio = document.getElementById("attention-audio");
    const soundButton = document.getElementById("attention-sound");
    const countEl = document.getElementById("attention-count");
    const ackButton = document.getElementById("attention-ack");
    const baseTitle = document.title;

    // -- switches -----------------------------------------------------------------------------------
    const defaults = { queue: true, breach: true, chase: true, sound: true, title: true };
    let settings = { ...defaults };
    try {
      settings = { ...defaults, ...JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}") };
    } catch (_) {
      // storage off or garbled: the defaults
    }
    for (const box of panel.querySelectorAll("input[data-attention]")) {
      box.checked = settings[box.dataset.attention] !== false;
      box.addEventListener("change", () => {
        settings[box.dataset.attention] = box.checked;
        try {
          localStorage.setItem(STORAGE_KEY, JSON.stringify(settings));
        } catch (_) {
          // private mode: the switch holds for this page only
        }
        showSound();
        showCount();
      });
    }

    // -- the count ----------------------------------------------------------------------------------
    let count = 0;
    function showCount() {
      panel.dataset.count = String(count);
      countEl.hidden = count === 0;
      ackButton.hidden = count === 0;
      countEl.textContent = (countEl.dataset.text || "{n}").replace("{n}", String(count));
      document.title = settings.title && count > 0 ? `(${count}) ${baseTitle}` : baseTitle;
    }

    function acknowledge() {
      count = 0;
      away = false;
      showCount();
    }
    ackButton.addEventListener("click", acknowledge);

    let away = document.visibilityState === "hidden";
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") away = true;
    });
    window.addEventListener("blur", () => {
      away = true;
    });

    // -- the sound ----------------------------------------------------------------------------------
    let unlocked = Boolean(navigator.userActivation && navigator.userActivation.hasBeenActive);
    let blocked = false;
    let lastSound = 0;

    function showSound() {
      let state = "off";
      if (settings.sound) state = !unlocked ? "locked" : blocked ? "blocked" : "on";
      soundButton.dataset.state = state;
      soundButton.textContent = soundButton.dataset["text" + state[0].toUpperCase() + state.slice(1)];
    }

    function bump(name) {
      panel.dataset[name] = String(parseInt(panel.dataset[name] || "0", 10) + 1);
    }

    function play(kind) {
      if (!settings.sound || !audio) return;
      const now = Date.now();
      if (now - lastSound < SOUND_GAP_MS) return;
      lastSound = now;
      audio.currentTime = 0;
      const playing = audio.play();
      if (!playing) return;
      playing.then(
        () => {
          blocked = false;
          bump("played");
          if (kind) bump("played" + kind[0].toUpperCase() + kind.slice(1)); // data-played-breach, …
          panel.dataset.playedAt = String(Date.now());
          showSound();
        },
        () => {
          // Not allowed yet (no interaction) or no audio device: say so on the button.
          blocked = unlocked;
          showSound();
        },
      );
    }

    // The first interaction unlocks sound; after coming back to the tab, it also means "I have looked".
    function interacted(event) {
      if (!unlocked) {
        unlocked = true;
        showSound();
      }
      if (away && event.target !== ackButton) acknowledge();
    }
    document.addEventListener("pointerdown", interacted, true);
    document.addEventListener("keydown", interacted, true);

    soundButton.addEventListener("click", () => {
      unlocked = true;
      blocked = false;
      if (!settings.sound) {
        settings.sound = true;
        const box = panel.querySelector('input[data-attention="sound"]');
        if (box) box.checked = true;
        try {
          localStorage.setItem(STORAGE_KEY, JSON.stringify(settings));
        } catch (_) {
          // as above
        }
      }
      showSound();
      // A short test chime, so the dispatcher hears what an alert sounds like (and the browser allows it).
      lastSound = 0;
      play();
    });

    // -- alerts -------------------------------------------------------------------------------------
    function callAttention(kind, replayed) {
      if (!settings[kind]) return;
      count += 1;
      panel.dataset.lastKind = kind;
      bump("alerts" + kind[0].toUpperCase() + kind.slice(1)); // data-alerts-breach, … (since the page opened)
      showCount();
      // What was missed while the stream was down is counted, but is old news: no sound for it.
      if (!replayed) play(kind);
    }

    // Pickups the stream named lately (id → replayed?), to tell a row the stream brought into the
    // queue from one that merely reappears there (a board refresh, the zone filter cleared).
    const recent = new Map();
    const queueIds = () =>
      new Set(Array.from(document.querySelectorAll("#rows-queue tr[id^='pickup-']"), (tr) => tr.id.slice(7)));
    let inQueue = queueIds();

    document.addEventListener("console:event", (event) => {
      const { type, pickup_id: pickupId, replayed } = event.detail || {};
      if (type === "pickup.sla_breached") callAttention("breach", replayed);
      else if (type === "pickup.chased") callAttention("chase", replayed);
      if (pickupId) {
        recent.set(String(pickupId), { replayed: Boolean(replayed), at: Date.now() });
      }
    });

    const board = document.querySelector(".main-column") || document.body;
    new MutationObserver(() => {
      const now = queueIds();
      const cutoff = Date.now() - RECENT_MS;
      for (const [id, seen] of recent) if (seen.at < cutoff) recent.delete(id);
      for (const id of now) {
        const seen = recent.get(id);
        if (!inQueue.has(id) && seen) {
          recent.delete(id);
          callAttention("queue", seen.replayed);
        }
      }
      inQueue = now;
    }).observe(board, { childList: true, subtree: true });

    showSound();
    showCount();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

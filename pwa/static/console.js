// The dispatcher's console: live rows over SSE, selection and small niceties (the map is console-map.js).
// The page works as server-rendered HTML with htmx; this file adds what htmx attributes cannot say.
(function () {
  "use strict";

  const root = document.getElementById("console");
  if (!root) return;
  const lang = root.dataset.lang || "zh-CN";
  const T = JSON.parse(document.getElementById("console-i18n").textContent);
  const ROW_BATCH_LIMIT = 40; // more changed rows than this at once: re-fetch the whole board instead
  const MAX_ROWS = 250; // per section, to keep the page light on a busy day

  function t(key, values) {
    let text = T[key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.replace("{" + k + "}", v);
    return text;
  }

  function url(path, params) {
    const u = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) if (v) u.searchParams.set(k, v);
    if (lang === "en") u.searchParams.set("lang", "en");
    return u.pathname + u.search;
  }

  function loginUrl() {
    return "/auth/login?" + new URLSearchParams({ next: url("/console") }).toString();
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const board = () => document.getElementById("board");

  // -- times ------------------------------------------------------------------------------------------
  function duration(seconds) {
    const minutes = Math.max(Math.floor(seconds / 60), 0);
    if (minutes < 1) return t("console.dur.min", { n: "<1" });
    if (minutes < 60) return t("console.dur.min", { n: minutes });
    if (minutes < 1440) return t("console.dur.hour", { h: Math.floor(minutes / 60), m: minutes % 60 });
    return t("console.dur.day", { n: Math.floor(minutes / 1440) });
  }

  function tick(scope) {
    const now = Date.now();
    for (const el of (scope || document).querySelectorAll("[data-due]")) {
      const left = (Date.parse(el.dataset.due) - now) / 1000;
      el.textContent = left >= 0 ? t("console.due.left", { d: duration(left) }) : t("console.due.over", { d: duration(-left) });
      el.classList.toggle("over", left < 0);
    }
  }

  // -- selection --------------------------------------------------------------------------------------
  function selectedBoxes() {
    return document.querySelectorAll('#board input[name="pickup_ids"]:checked');
  }

  function showSelection() {
    const label = document.getElementById("selected-count");
    if (label) label.textContent = t("console.dispatch.selected", { n: selectedBoxes().length });
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches('input[name="pickup_ids"]')) showSelection();
  });

  // -- rows -------------------------------------------------------------------------------------------
  function adjustCount(section, delta) {
    const el = document.querySelector(`#board section[data-section="${section}"] .count`);
    if (!el) return;
    const n = Math.max(parseInt(el.dataset.count || "0", 10) + delta, 0);
    el.dataset.count = String(n);
    el.textContent = String(n);
  }

  function removeRow(row) {
    adjustCount(row.dataset.section, -1);
    row.remove();
  }

  function insertSorted(tbody, row) {
    const key = row.dataset.sort;
    for (const other of tbody.rows) {
      if (other.dataset.sort > key) {
        tbody.insertBefore(row, other);
        return;
      }
    }
    tbody.appendChild(row);
  }

  function applyRow(pickupId, html) {
    const existing = document.getElementById("pickup-" + pickupId);
    if (html === null) {
      if (existing) removeRow(existing);
      return;
    }
    // The row partial is our own server's HTML, user text in it escaped by Jinja2's autoescape; a
    // <template> keeps it inert (no scripts, no image loads) until the row is in place.
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const row = template.content.querySelector("tr");
    if (!row) return;
    const filter = board() ? board().dataset.zone : "";
    if (filter && row.dataset.zone !== filter) {
      if (existing) removeRow(existing);
      return;
    }
    const tbody = document.getElementById("rows-" + row.dataset.section);
    if (!tbody) return;
    const wasChecked = existing && existing.querySelector('input[name="pickup_ids"]:checked');
    if (existing) removeRow(existing);
    const box = row.querySelector('input[name="pickup_ids"]');
    if (wasChecked && box) box.checked = true;
    insertSorted(tbody, row);
    adjustCount(row.dataset.section, +1);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
    tick(row);
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 2500);
    showSelection();
  }

  async function fetchHtml(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { "HX-Request": "true" } });
    if (response.status === 401) {
      location.href = response.headers.get("HX-Redirect") || loginUrl();
      throw new Error("signed out");
    }
    if (response.status === 404) return null;
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.text();
  }

  const changed = new Set();
  let flushing = null;

  function rowChanged(pickupId) {
    changed.add(pickupId);
    if (!flushing) flushing = setTimeout(flushRows, 120);
  }

  async function flushRows() {
    const ids = Array.from(changed);
    changed.clear();
    try {
      if (ids.length > ROW_BATCH_LIMIT) {
        await refreshBoard();
        return;
      }
      const rows = await Promise.all(ids.map((id) => fetchHtml(url(`/console/pickups/${id}/row`)).catch(() => undefined)));
      ids.forEach((id, i) => rows[i] !== undefined && applyRow(id, rows[i]));
    } finally {
      flushing = null;
      if (changed.size) flushing = setTimeout(flushRows, 120);
    }
  }

  function refreshBoard(zone) {
    const current = zone === undefined ? (board() ? board().dataset.zone : "") : zone;
    return htmx.ajax("GET", url("/console/board", { zone: current }), { target: "#board", swap: "outerHTML" });
  }

  let couriersTimer = null;
  function couriersChanged() {
    clearTimeout(couriersTimer);
    couriersTimer = setTimeout(() => htmx.trigger(document.body, "refresh-couriers"), 500);
  }

  // -- the live stream --------------------------------------------------------------------------------
  // Read with fetch rather than EventSource: EventSource needs a listener per event type, and the
  // console wants every type (new ones included) without listing them.
  const COURIER_EVENTS = /^(courier\.|pickup\.(accepted|assigned|reassigned|unassigned|collected|failed|cancelled))/;
  let lastEventId = root.dataset.lastEventId || null; // the log's newest event when the page was made
  let replayed = 0;

  let live = false;
  function setLive(on) {
    live = on;
    const el = document.getElementById("live");
    el.dataset.state = on ? "live" : "offline";
    el.textContent = on ? T["console.live"] : T["console.offline"];
  }

  function onEvent(type, data) {
    if (type === "ready") {
      setLive(true);
      // A long gap (or a replay cut at the log's page size) is cheaper and safer as one board fetch.
      if (replayed > ROW_BATCH_LIMIT) refreshBoard();
      replayed = 0;
      return;
    }
    let body = {};
    try {
      body = JSON.parse(data);
    } catch (_) {
      return;
    }
    replayed += 1;
    // Other console scripts (drawer, map, attention) follow the same stream through this DOM event
    // instead of opening their own: detail is {id, type, pickup_id, replayed} (replayed: sent again
    // after a reconnect, before `ready`).
    document.dispatchEvent(new CustomEvent("console:event", { detail: { ...body, type, replayed: !live } }));
    if (body.pickup_id) rowChanged(body.pickup_id);
    if (COURIER_EVENTS.test(type)) couriersChanged();
  }

  async function readStream(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let fields = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (fields.id !== undefined) lastEventId = fields.id;
          if (fields.event !== undefined || fields.data !== undefined) onEvent(fields.event || "message", fields.data || "");
          fields = {};
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          fields[name] = name === "data" && fields.data !== undefined ? fields.data + "\n" + value : value;
        }
      }
    }
  }

  async function stream() {
    for (;;) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        replayed = 0;
        const response = await fetch(url("/console/events"), { headers, credentials: "same-origin", cache: "no-store" });
        const type = response.headers.get("content-type") || "";
        if (response.redirected || response.status === 401) {
          location.href = loginUrl();
          return;
        }
        if (!response.ok || !type.startsWith("text/event-stream")) throw new Error("stream refused: " + response.status);
        await readStream(response);
      } catch (err) {
        console.warn("console stream:", err);
      }
      setLive(false);
      await sleep(2000);
    }
  }

  // -- wiring -----------------------------------------------------------------------------------------
  document.body.addEventListener("htmx:afterSettle", () => {
    tick(board());
    showSelection();
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    // After a successful assign/unassign the selection has done its job.
    const target = event.detail.target;
    if (target && target.id === "dispatch-form" && event.detail.xhr.status === 200) {
      for (const box of selectedBoxes()) box.checked = false;
      showSelection();
    }
  });

  // A form whose request failed (server down, or a 5xx that swaps nothing) says so inside the form,
  // instead of the button simply coming back to life.
  function formFailed(event, message) {
    const form = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (!form) return;
    let note = form.querySelector("p.msg[data-failure]");
    if (!note) {
      note = document.createElement("p");
      note.className = "msg error";
      note.setAttribute("role", "alert");
      note.dataset.failure = "";
      form.appendChild(note);
    }
    note.textContent = message;
  }
  document.body.addEventListener("htmx:sendError", (event) => formFailed(event, t("console.form.unreachable")));
  document.body.addEventListener("htmx:responseError", (event) =>
    formFailed(event, t("console.form.failed", { status: event.detail.xhr.status })),
  );

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await fetch("/auth/logout", { method: "POST", credentials: "same-origin" });
      location.href = "/auth/login";
    });
  }

  tick(document);
  setInterval(() => tick(board()), 30000);
  stream();
})();

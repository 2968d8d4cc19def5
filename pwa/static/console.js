// The dispatcher's console: live rows over SSE, selection and small niceties (the map is console-map.js).
// The page works as server-rendered HTML with htmx; this file adds what htmx attributes cannot say.
(function () {
  "use strict";

  const root = document.getElementById("console");
  if (!root) return;
  const T = JSON.parse(document.getElementById("console-i18n").textContent);
  // Changes to the board are gathered this long before the board is read again (at most one read in
  // flight): a burst of hundreds of events costs a few reads, and every read has exact counts.
  const BOARD_REFRESH_MS = 400;

  const t = window.consoleCommon.translator(T);
  const url = window.consoleCommon.url;

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

  // -- the board: search, filters, paging, live refresh -----------------------------------------------
  // The server pages and counts (server/console/board.py); the board is always read whole, so that a
  // section's badge and its "showing X–Y of N" come from one answer and never disagree. Live changes
  // read it again (the current filter and pages) rather than patching rows and counts here.
  const FILTER_KEYS = ["q", "status", "station", "zone", "courier", "partner", "attention", "sort"];
  const SECTIONS = ["queue", "offered", "held", "failed", "closed"];
  const PAGE_KEYS = SECTIONS.map((key) => key + "_page");
  const BOARD_KEYS = [...FILTER_KEYS, ...PAGE_KEYS];

  function filterFrom(params) {
    const out = {};
    for (const key of BOARD_KEYS) {
      const value = params.get(key);
      if (value) out[key] = value;
    }
    return out;
  }

  let currentFilter = filterFrom(new URLSearchParams(location.search));

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

  function setBoardStatus(text) {
    const el = document.getElementById("board-status");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  // The filter bar shows the filter in force, however it was set (the form, the map, a chip, a link).
  function syncForm() {
    const form = document.getElementById("board-filter");
    if (!form) return;
    for (const key of FILTER_KEYS) {
      const field = form.elements.namedItem(key);
      if (!field || field === document.activeElement) continue;
      const value = currentFilter[key] || (key === "sort" ? "due" : "");
      if (field.tagName === "SELECT" && value && !Array.from(field.options).some((o) => o.value === value)) {
        field.add(new Option(value, value)); // a zone or courier the list does not have (yet)
      }
      field.value = value;
    }
  }

  const flashIds = new Set();

  function swapBoard(html) {
    // The partial is our own server's HTML, user text in it escaped by Jinja2's autoescape; a <template>
    // keeps it inert until it is in place.
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.getElementById("board");
    const old = board();
    if (!fresh || !old) return;
    // Ticked rows stay ticked (the dispatch form reads them) when they are still on the page.
    const ticked = new Set(Array.from(selectedBoxes(), (box) => box.value));
    for (const box of fresh.querySelectorAll('input[name="pickup_ids"]')) if (ticked.has(box.value)) box.checked = true;
    for (const id of flashIds) {
      const row = fresh.querySelector("#pickup-" + id);
      if (row) {
        row.classList.add("flash");
        setTimeout(() => row.classList.remove("flash"), 2500);
      }
    }
    flashIds.clear();
    old.replaceWith(fresh);
    if (typeof htmx !== "undefined") htmx.process(fresh);
    tick(fresh);
    showSelection();
  }

  let boardLoad = null;
  let loadAgain = false;
  let refreshTimer = null;

  function loadBoard() {
    if (boardLoad) {
      loadAgain = true;
      return boardLoad;
    }
    boardLoad = (async () => {
      try {
        do {
          loadAgain = false;
          const filter = { ...currentFilter };
          const el = board();
          if (el) el.setAttribute("aria-busy", "true");
          const html = await fetchHtml(url("/console/board", filter));
          if (html === null) throw new Error("HTTP 404");
          if (!loadAgain) swapBoard(html); // a newer filter is on its way: skip this answer
        } while (loadAgain);
        setBoardStatus("");
        const shown = url("/console", currentFilter);
        if (location.pathname + location.search !== shown) history.replaceState(null, "", shown);
        document.dispatchEvent(new CustomEvent("console:board-filter", { detail: { ...currentFilter } }));
      } catch (err) {
        console.warn("board:", err);
        setBoardStatus(t("console.board.failed_load"));
        setTimeout(() => boardChanged(), 5000);
      } finally {
        const el = board();
        if (el) el.setAttribute("aria-busy", "false");
        boardLoad = null;
      }
    })();
    return boardLoad;
  }

  // A pickup changed (or the stream came back): read the board again soon.
  function boardChanged(pickupId) {
    if (pickupId) flashIds.add(String(pickupId));
    if (!refreshTimer) {
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        loadBoard();
      }, BOARD_REFRESH_MS);
    }
  }

  // Merge `params` into the filter (an empty value removes a key) and load the board. A change of the
  // filter itself starts every section again from its first page.
  function setFilter(params) {
    const next = { ...currentFilter };
    let filterChanged = false;
    for (const [key, raw] of Object.entries(params || {})) {
      if (!BOARD_KEYS.includes(key)) continue;
      const value = raw === null || raw === undefined ? "" : String(raw).trim();
      if ((next[key] || "") === value) continue;
      if (FILTER_KEYS.includes(key)) filterChanged = true;
      if (value) next[key] = value;
      else delete next[key];
    }
    if (filterChanged) for (const key of PAGE_KEYS) delete next[key];
    currentFilter = next;
    syncForm();
    return loadBoard();
  }

  window.consoleBoard = {
    setFilter,
    filter: () => ({ ...currentFilter }),
  };

  function clearFilter() {
    currentFilter = {};
    syncForm();
    return loadBoard();
  }

  const filterForm = document.getElementById("board-filter");
  if (filterForm) {
    filterForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = {};
      for (const key of FILTER_KEYS) {
        const field = filterForm.elements.namedItem(key);
        params[key] = field ? field.value : "";
      }
      if (params.sort === "due") params.sort = "";
      setFilter(params);
    });
    filterForm.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT") filterForm.requestSubmit();
    });
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest ? event.target.closest("[data-board-clear], a[data-board-page]") : null;
    if (!target || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    if (target.hasAttribute("data-board-clear")) clearFilter();
    else setFilter({ [target.dataset.section + "_page"]: target.dataset.boardPage });
  });

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
      // Whatever happened while the stream was away (a replay may be cut at the log's page size).
      if (replayed) boardChanged();
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
    if (body.pickup_id && board()) boardChanged(body.pickup_id); // pages without the board skip it
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

  // Taking back pickups that couriers already hold (accepted, contacted) takes work out of their hands:
  // ask first, naming how many. Offers still open are withdrawn without asking.
  document.body.addEventListener("htmx:confirm", (event) => {
    const button = event.detail.elt;
    if (!button || button.id !== "dispatch-unassign") return;
    const held = Array.from(selectedBoxes()).filter((box) => box.closest('tr[data-section="held"]')).length;
    if (!held) return;
    event.preventDefault();
    if (window.confirm(button.dataset.confirmHeld.replace("{n}", String(held)))) event.detail.issueRequest(true);
  });

  // A form whose request failed (server down, or a 5xx that swaps nothing) says so inside the form,
  // instead of the button simply coming back to life.
  function formFailed(event, message) {
    const form = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (!form) return;
    // An earlier outcome ("assigned 3 to …") would read as this attempt's: only the failure stays.
    for (const earlier of form.querySelectorAll(".msg:not([data-failure])")) earlier.remove();
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

  syncForm();
  document.dispatchEvent(new CustomEvent("console:board-filter", { detail: { ...currentFilter } }));
  tick(document);
  setInterval(() => tick(board()), 30000);
  stream();
})();

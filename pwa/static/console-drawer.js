// The console's pickup drawer: opens a pickup beside the board (its tracking code, or anywhere on its row
// but the checkbox), closes with Esc or its close button, and follows the console's own stream through
// the "console:event" DOM event that console.js dispatches (it opens no stream of its own).
// The drawer's HTML comes from the server (server/console/drawer.py, user text escaped by Jinja2's
// autoescape); its forms are htmx forms that answer with the drawer re-rendered.
(function () {
  "use strict";

  const drawer = document.getElementById("drawer");
  if (!drawer) return;
  const inConsole = Boolean(document.getElementById("console"));
  const stringsEl = document.getElementById("console-i18n");
  const strings = stringsEl ? JSON.parse(stringsEl.textContent) : {};
  const REFRESH_DELAY_MS = 250; // several events of one change (withdrawn, assigned …) → one fetch

  let current = null; // the open pickup's id, as a string
  let opener = null; // what to give focus back to on close
  let refreshTimer = null;
  let loading = 0; // a sequence number: only the latest answer is shown

  const url = window.consoleCommon.url;

  function markRow() {
    for (const row of document.querySelectorAll("#board tr.drawer-open")) row.classList.remove("drawer-open");
    if (current) {
      const row = document.getElementById("pickup-" + current);
      if (row) row.classList.add("drawer-open");
    }
  }

  async function fetchDrawer(id) {
    const response = await fetch(url("/console/pickups/" + id), {
      credentials: "same-origin",
      headers: { "HX-Request": "true" },
    });
    if (response.status === 401) {
      location.href = response.headers.get("HX-Redirect") || "/auth/login";
      throw new Error("signed out");
    }
    if (!response.ok && response.status !== 404) throw new Error("HTTP " + response.status);
    return response.text();
  }

  // Our own server's HTML, kept inert in a <template> until it is in place; htmx then wires its forms.
  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  function show(fragment) {
    drawer.replaceChildren(fragment);
    htmx.process(drawer);
  }

  async function open(id, from) {
    id = String(id);
    const seq = ++loading;
    current = id;
    opener = from || opener;
    drawer.hidden = false;
    drawer.classList.add("open", "loading");
    drawer.dataset.pickupId = id;
    markRow();
    try {
      const html = await fetchDrawer(id);
      if (seq !== loading) return;
      show(parse(html));
      const close = drawer.querySelector("[data-drawer-close]");
      if (close) close.focus({ preventScroll: true });
    } catch (err) {
      if (seq !== loading) return;
      const message = strings["console.form.unreachable"] || String(err);
      const note = document.createElement("p");
      note.className = "msg error";
      note.setAttribute("role", "alert");
      note.textContent = message;
      drawer.replaceChildren(note);
    } finally {
      if (seq === loading) drawer.classList.remove("loading");
    }
  }

  function close() {
    loading++;
    current = null;
    drawer.hidden = true;
    drawer.classList.remove("open");
    delete drawer.dataset.pickupId;
    drawer.replaceChildren();
    markRow();
    if (opener && document.contains(opener)) opener.focus({ preventScroll: true });
    opener = null;
  }

  // The stream said the open pickup changed: its facts, offers and history are read again. While the
  // status is the same the forms stay as they are (a half-typed note survives); a new status brings
  // the forms that now apply.
  async function refresh() {
    if (!current) return;
    const id = current;
    const seq = ++loading;
    let html;
    try {
      html = await fetchDrawer(id);
    } catch (_) {
      return; // the next event or a reopen tries again; the stream's own indicator says when it is down
    }
    if (seq !== loading || current !== id) return;
    const fresh = parse(html);
    const live = fresh.querySelector("#drawer-live");
    const old = drawer.querySelector("#drawer-live");
    const busy = drawer.querySelector("form.htmx-request");
    if (live && old && !busy && live.dataset.status === old.dataset.status) {
      old.replaceWith(live);
      htmx.process(live);
    } else if (!busy) {
      show(fresh);
    }
  }

  document.addEventListener("console:event", (event) => {
    const detail = event.detail || {};
    if (!current || String(detail.pickup_id) !== current) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, REFRESH_DELAY_MS);
  });

  if (inConsole) {
    // Open from the board: the tracking code, or the row itself (not its checkbox, nor another control).
    // A click with a modifier (new tab, new window) is left to the browser: the link is a page too.
    document.addEventListener("click", (event) => {
      if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const target = event.target;
      if (!(target instanceof Element)) return;
      const closer = target.closest("[data-drawer-close]");
      if (closer && drawer.contains(closer)) {
        event.preventDefault();
        close();
        return;
      }
      const link = target.closest("a.open-drawer");
      if (link) {
        event.preventDefault();
        open(link.dataset.pickupId, link);
        return;
      }
      const row = target.closest("#board tbody tr[id^='pickup-']");
      if (!row || target.closest("input, label, button, select, textarea, a")) return;
      const rowLink = row.querySelector("a.open-drawer");
      if (rowLink) open(rowLink.dataset.pickupId, rowLink);
    });

    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || drawer.hidden) return;
      // Esc in a form field leaves the field first (a second Esc closes).
      const active = document.activeElement;
      if (active && drawer.contains(active) && active.matches("input, textarea, select")) {
        active.blur();
        return;
      }
      close();
    });

    // Rows come and go as the board updates (console.js replaces a changed row, htmx the whole board):
    // keep the open pickup's row marked. Only added and removed nodes are watched, so marking a row
    // (a class change) does not wake the observer again.
    const main = document.querySelector("#console .main-column");
    if (main) new MutationObserver(() => current && markRow()).observe(main, { childList: true, subtree: true });
  } else {
    // The drawer as a page of its own (no console.js): a failed form says so, as on the console.
    const failed = (event, message) => {
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
    };
    const body = () => drawer.querySelector(".drawer-body") || document.body;
    document.body.addEventListener("htmx:sendError", (event) => failed(event, body().dataset.msgUnreachable || ""));
    document.body.addEventListener("htmx:responseError", (event) =>
      failed(event, (body().dataset.msgFailed || "").replace("{status}", event.detail.xhr.status)),
    );
  }
})();

// Couriers in the dispatcher's console: the board's courier panel follows the board's filter, and the
// couriers page (/console/couriers) follows the console's event stream. No stream of its own: console.js
// reads the one stream and passes each event on as a "console:event" DOM event.
(function () {
  "use strict";

  function param(detail, key) {
    if (!detail) return "";
    if (typeof detail.get === "function") return detail.get(key) || ""; // URLSearchParams
    return detail[key] || "";
  }

  // -- the board: the panel shows the couriers of the station / zone the board is filtered to ---------
  document.addEventListener("console:board-filter", (event) => {
    const panel = document.getElementById("couriers");
    if (!panel || typeof htmx === "undefined") return;
    const query = new URLSearchParams();
    for (const key of ["station", "zone"]) if (param(event.detail, key)) query.set(key, param(event.detail, key));
    if (document.documentElement.lang === "en") query.set("lang", "en");
    const search = query.toString();
    htmx.ajax("GET", "/console/couriers/panel" + (search ? "?" + search : ""), { target: "#couriers", swap: "outerHTML" });
  });

  // -- the couriers page ------------------------------------------------------------------------------
  const list = () => document.getElementById("courier-list");
  // Events that change what the list shows: duty, zones, capacity, and a courier's load.
  const RELEVANT = /^(courier\.|pickup\.(accepted|assigned|reassigned|unassigned|collected|failed|cancelled))/;
  let timer = null;
  document.addEventListener("console:event", (event) => {
    if (!list() || !RELEVANT.test((event.detail && event.detail.type) || "")) return;
    clearTimeout(timer);
    timer = setTimeout(() => htmx.trigger(document.body, "couriers-changed"), 400);
  });

  // A refresh of the whole list would wipe a question waiting for an answer (going off duty while
  // holding pickups) or a form on its way: leave the list alone until then.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const el = event.detail.elt;
    if (el && el.id === "courier-list" && el.querySelector("form.confirm, .htmx-request")) event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    const close = event.target.closest && event.target.closest("[data-close-editor]");
    if (!close) return;
    const editor = document.getElementById("courier-editor");
    if (!editor) return;
    event.preventDefault();
    editor.hidden = true;
    editor.replaceChildren();
  });
})();

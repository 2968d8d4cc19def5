// The customer pages (/book and /t/<code>): what a phone shows when the server cannot be reached or
// fails, and (tracking page) whether its live stream is connected. The strings come in the page's
// language from the JSON block #customer-i18n (templates/customer_net.html); no inline script (CSP).
//
// A request that fails leaves a note beside what sent it: the address pickers (.place-box), else the
// form, else the element that re-reads a part of the page (the status and actions feeds). The next
// success of the same thing takes the note away.
(function () {
  "use strict";

  const data = document.getElementById("customer-i18n");
  const T = data ? JSON.parse(data.textContent) : {};

  function region(elt) {
    if (!elt || !elt.closest) return null;
    return elt.closest(".place-box") || elt.closest("form") || elt;
  }

  function notes(place) {
    return place.querySelectorAll(":scope > p.msg[data-failure]");
  }

  function failed(event, message) {
    const place = region(event.detail.elt);
    if (!place || !place.isConnected) return;
    let note = notes(place)[0];
    if (!note) {
      note = document.createElement("p");
      note.className = "msg error net-error";
      note.setAttribute("role", "alert");
      note.dataset.failure = "";
      // In a form, just above its button (where the thumb is); elsewhere, at the end.
      const buttons = place.tagName === "FORM" ? place.querySelectorAll(":scope > button[type=submit]") : [];
      const before = buttons.length ? buttons[buttons.length - 1] : null;
      place.insertBefore(note, before);
    }
    note.textContent = message;
    note.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("htmx:sendError", (event) => failed(event, T.unreachable || ""));
  document.addEventListener("htmx:responseError", (event) =>
    failed(event, (T.failed || "").replace("{status}", String(event.detail.xhr.status))),
  );
  document.addEventListener("htmx:afterRequest", (event) => {
    if (!event.detail.successful) return;
    const place = region(event.detail.elt);
    if (place) notes(place).forEach((note) => note.remove());
  });

  // A picker swapped in by a form's answer is wired by htmx only when the swap settles; a choice made
  // in between would reach an element without its listener and fetch nothing (the pickers under it
  // would keep the old choice's options). Wiring it here, before the change bubbles to it, closes that
  // gap (htmx.process does nothing to an element that is already wired).
  document.addEventListener(
    "change",
    (event) => {
      const box = event.target.closest && event.target.closest(".place-box");
      if (box && window.htmx) window.htmx.process(box);
    },
    true,
  );

  // The tracking page's live stream: "reconnecting" while it is down (htmx-ext-sse reconnects).
  const live = document.getElementById("live");
  if (live) {
    document.addEventListener("htmx:sseError", () => {
      live.hidden = false;
    });
    document.addEventListener("htmx:sseOpen", () => {
      live.hidden = true;
    });
  }
})();

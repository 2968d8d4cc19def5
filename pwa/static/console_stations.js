// The console's stations page: re-fetch today's figures (the `rollup` block) when the console stream,
// which console.js reads and passes on as "console:event" DOM events, says pickups changed.
(function () {
  "use strict";

  const REFRESH_AFTER_MS = 3000; // a burst of events (a batch of pickups) is one re-fetch
  let timer = null;

  function refresh() {
    timer = null;
    const table = document.getElementById("rollup");
    if (!table || typeof htmx === "undefined") return;
    htmx.ajax("GET", table.dataset.refresh, { target: "#rollup", swap: "outerHTML" });
  }

  // Collapsing a level hides every row under it; which levels are collapsed outlives a refresh.
  const collapsed = new Set();
  function applyCollapsed() {
    const hiding = new Set();
    for (const row of document.querySelectorAll("#rollup tr[data-code]")) {
      // Rows come parent first, so a parent's state is known before its children's.
      row.hidden = hiding.has(row.dataset.parent);
      if (row.hidden || collapsed.has(row.dataset.code)) hiding.add(row.dataset.code);
      const toggle = row.querySelector("button.toggle");
      if (toggle) toggle.setAttribute("aria-expanded", String(!collapsed.has(row.dataset.code)));
    }
  }
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest ? event.target.closest("#rollup button.toggle") : null;
    if (!toggle) return;
    const code = toggle.dataset.toggle;
    if (collapsed.has(code)) collapsed.delete(code);
    else collapsed.add(code);
    applyCollapsed();
  });
  document.addEventListener("htmx:afterSwap", applyCollapsed);

  document.addEventListener("console:event", (event) => {
    const type = (event.detail && event.detail.type) || "";
    if (!type.startsWith("pickup.")) return;
    if (!timer) timer = setTimeout(refresh, REFRESH_AFTER_MS);
  });
})();

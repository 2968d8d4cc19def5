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

  document.addEventListener("console:event", (event) => {
    const type = (event.detail && event.detail.type) || "";
    if (!type.startsWith("pickup.")) return;
    if (!timer) timer = setTimeout(refresh, REFRESH_AFTER_MS);
  });
})();

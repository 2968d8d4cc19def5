// The courier app's two views, "Pickups" and "My day", switched by the bottom tab bar (an ES module beside
// courier.js). The view is the URL's fragment (#now, #day), so the phone's back button goes back to the
// last view; a link to a card (#held-12, from My day) shows the pickups view at that card. The view is set
// on #app, outside the list that htmx swaps, so a list refresh keeps it. A ringing offer brings the
// pickups view back at once: the courier must see what rings.

const app = document.getElementById("app");
const tabs = [...document.querySelectorAll(".tabs a[data-view]")];

function show() {
  const hash = window.location.hash;
  const view = hash === "#day" ? "day" : "now";
  app.dataset.view = view;
  for (const tab of tabs) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  const target = hash.length > 1 && hash !== "#day" && hash !== "#now" ? document.getElementById(hash.slice(1)) : null;
  if (target) target.scrollIntoView({ block: "start" });
  else document.getElementById("main").scrollTo(0, 0);
}

window.addEventListener("hashchange", show);
new MutationObserver(() => {
  if (document.body.dataset.ringing === "true" && app.dataset.view !== "now") window.location.hash = "now";
}).observe(document.body, { attributes: true, attributeFilter: ["data-ringing"] });
// What opens inside a card (decline's reasons) is scrolled into sight, so every choice shows at once.
document.addEventListener(
  "toggle",
  (event) => {
    if (event.target.open) event.target.scrollIntoView({ block: "nearest" });
  },
  true,
);
show();

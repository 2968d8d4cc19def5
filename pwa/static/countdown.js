// Time-limit countdowns on the courier's held pickups (an ES module beside courier.js): every element with
// a data-due-at (an ISO time) shows the time left to it, or how long it is overdue, each second. The server
// renders the first text; the strings come from the page's #strings block.

const strings = JSON.parse(document.getElementById("strings").textContent);
const say = (key, t) => (strings[key] || key).replace("{t}", t);

function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

function updateDueCountdowns() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-due-at]")) {
    const due = Date.parse(el.dataset.dueAt);
    if (Number.isNaN(due)) continue;
    const seconds = Math.round((due - now) / 1000);
    el.dataset.overdue = seconds < 0 ? "true" : "false";
    el.textContent = seconds >= 0 ? say("courier.due.left", duration(seconds)) : say("courier.due.over", duration(-seconds));
  }
}

document.addEventListener("htmx:afterSwap", updateDueCountdowns);
setInterval(updateDueCountdowns, 1000);
updateDueCountdowns();

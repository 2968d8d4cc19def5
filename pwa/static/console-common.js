// What the console's scripts share, loaded before them: a translator over one of the page's JSON
// catalogues, and links that keep the page's language (the console's own, else the address's ?lang=).
window.consoleCommon = (function () {
  "use strict";

  const root = document.getElementById("console");
  const lang = (root && root.dataset.lang) || new URL(location.href).searchParams.get("lang") || "zh-CN";

  function translator(strings) {
    return function t(key, values) {
      let text = strings[key] || key;
      for (const [k, v] of Object.entries(values || {})) text = text.replace("{" + k + "}", v);
      return text;
    };
  }

  function url(path, params) {
    const u = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) if (v) u.searchParams.set(k, v);
    if (lang === "en") u.searchParams.set("lang", "en");
    return u.pathname + u.search;
  }

  return { lang, translator, url };
})();

// The console's map: zones, pickups (coloured by state) and couriers (by duty and last position), live,
// and a zone drawn on the map. Data comes from /console/map/* (server/console/map.py) already in the
// datum of the tiles (data-tile-datum: wgs84 or gcj02), so nothing here converts coordinates; a drawn
// zone goes back in that datum and the server converts it to WGS-84.
// It follows the console's one event stream through the "console:event" DOM event of console.js.
(function () {
  "use strict";

  const root = document.getElementById("console");
  const el = document.getElementById("map");
  if (!root || !el || typeof L === "undefined") return;
  const lang = root.dataset.lang || "zh-CN";
  const T = JSON.parse(document.getElementById("console-map-i18n").textContent);
  const COURIER_POLL_MS = 20000; // heartbeats move couriers without an event on the stream
  const REFRESH_DELAY_MS = 300; // events come in bursts: one request per burst
  const MAX_IDS = 100; // per request (the server's limit); more changed pickups: reload them all
  const CLUSTER_BELOW_ZOOM = 16; // from this zoom on, every marker stands alone

  const t = window.consoleCommon.translator(T);
  const url = window.consoleCommon.url;

  // What users typed (zone names, courier names) reaches the page as text, never as HTML: Leaflet's
  // bindTooltip would parse a string as HTML, so it gets a node built with textContent.
  function lines(...texts) {
    const box = document.createElement("div");
    for (const text of texts) {
      if (!text) continue;
      const line = document.createElement("div");
      line.textContent = text;
      box.appendChild(line);
    }
    return box;
  }

  async function getJson(path) {
    const response = await fetch(url(path), { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  // -- the map and its layers -------------------------------------------------------------------------
  const map = L.map(el, { zoomSnap: 0.25 }).setView([28.19, 112.98], 12);
  const tiles = root.dataset.tileUrl;
  // Leaflet shows the attribution as HTML: this one is ours, not typed by a user. Without tiles (no
  // network) the map still shows every shape and marker on its plain background.
  const attribution = /openstreetmap/.test(tiles) ? "&copy; OpenStreetMap contributors" : "";
  L.tileLayer(tiles, { maxZoom: 19, attribution }).addTo(map);

  const ZONE_STYLE = { color: "#2f6fdf", weight: 1.5, fillColor: "#2f6fdf", fillOpacity: 0.08 };
  const SELECTED_STYLE = { color: "#d9480f", weight: 3, fillColor: "#fd7e14", fillOpacity: 0.22 };
  let zonesLayer = null;
  let fitted = false;

  function clusterIcon(kind) {
    return (cluster) =>
      L.divIcon({
        html: "<span>" + cluster.getChildCount() + "</span>", // a number, not user text
        className: "map-cluster map-cluster-" + kind,
        iconSize: L.point(30, 30),
      });
  }
  // Not animated: the cluster animation puts a CSS transition on every marker of the map pane for its
  // duration, leaflet-draw's invisible mouse marker included, which then lags behind the pointer and
  // lets a quick click fall through to the map (a missed vertex).
  const clusterOptions = (kind) => ({
    animate: false,
    disableClusteringAtZoom: CLUSTER_BELOW_ZOOM,
    maxClusterRadius: 40,
    showCoverageOnHover: false,
    iconCreateFunction: clusterIcon(kind),
  });
  const group = (kind) => (L.markerClusterGroup ? L.markerClusterGroup(clusterOptions(kind)) : L.layerGroup());
  const pickupsLayer = group("pickups").addTo(map);
  const couriersLayer = group("couriers").addTo(map);
  const pickupMarkers = new Map();
  const courierMarkers = new Map();

  // -- zones ------------------------------------------------------------------------------------------
  function currentZone() {
    const board = document.getElementById("board");
    return board ? board.dataset.zone || "" : "";
  }

  function highlightZone(code) {
    if (!zonesLayer) return;
    const current = code === undefined ? currentZone() : code || "";
    zonesLayer.eachLayer((layer) => {
      const selected = layer.feature.properties.code === current;
      layer.setStyle(selected ? SELECTED_STYLE : ZONE_STYLE);
      if (selected) layer.bringToFront();
    });
  }

  function filterByZone(code) {
    if (window.consoleBoard && typeof window.consoleBoard.setFilter === "function") {
      window.consoleBoard.setFilter({ zone: code });
    } else {
      history.replaceState(null, "", url("/console", { zone: code }));
      htmx.ajax("GET", url("/console/board", { zone: code }), { target: "#board", swap: "outerHTML" });
    }
    highlightZone(code);
  }

  async function loadZones() {
    try {
      const collection = await getJson("/console/map/zones");
      if (zonesLayer) zonesLayer.remove();
      const permanent = collection.features.length <= 30; // names on the map while they fit, else on hover
      zonesLayer = L.geoJSON(collection, {
        style: () => ZONE_STYLE,
        onEachFeature: (feature, layer) => {
          const p = feature.properties;
          layer.bindTooltip(lines(permanent ? p.name : `${p.name} · ${p.code}`), {
            permanent,
            sticky: !permanent,
            direction: "center",
            className: permanent ? "zone-label" : "",
          });
          layer.on("click", () => {
            if (!drawing) filterByZone(p.code);
          });
          layer.on("add", () => layer.getElement() && layer.getElement().setAttribute("data-zone", p.code));
        },
      }).addTo(map);
      zonesLayer.bringToBack();
      if (!fitted && zonesLayer.getLayers().length) {
        map.fitBounds(zonesLayer.getBounds(), { padding: [12, 12], animate: false });
        fitted = true;
      }
      highlightZone();
    } catch (err) {
      console.warn("map zones:", err);
    }
  }

  // -- pickups ----------------------------------------------------------------------------------------
  function pickupIcon(p) {
    const cls = `map-pickup sec-${p.section} st-${p.status}`;
    return L.divIcon({ className: cls, iconSize: [14, 14], iconAnchor: [7, 7], html: "" });
  }

  function showPickup(p) {
    const latlng = [p.lat, p.lng];
    const tip = lines(p.tracking_code, t("console.status." + p.status), p.zone_code || "");
    let marker = pickupMarkers.get(p.id);
    if (marker) {
      pickupsLayer.removeLayer(marker); // re-added below: the cluster group places it anew
      marker.setLatLng(latlng);
      marker.setIcon(pickupIcon(p));
      marker.setTooltipContent(tip);
    } else {
      marker = L.marker(latlng, { icon: pickupIcon(p), keyboard: false, title: p.tracking_code });
      marker.bindTooltip(tip, { direction: "top", offset: [0, -6] });
      marker.on("add", () => marker.getElement() && (marker.getElement().dataset.pickupId = String(p.id)));
      pickupMarkers.set(p.id, marker);
    }
    marker.pickup = p;
    pickupsLayer.addLayer(marker);
  }

  function dropPickup(id) {
    const marker = pickupMarkers.get(id);
    if (!marker) return;
    pickupsLayer.removeLayer(marker);
    pickupMarkers.delete(id);
  }

  function setStatus(text, kind) {
    const status = document.getElementById("map-status");
    if (!status) return;
    status.hidden = !text;
    status.textContent = text || "";
    status.className = "msg" + (kind ? " " + kind : "");
  }

  async function loadPickups() {
    try {
      const data = await getJson("/console/map/pickups");
      const seen = new Set(data.pickups.map((p) => p.id));
      for (const id of Array.from(pickupMarkers.keys())) if (!seen.has(id)) dropPickup(id);
      data.pickups.forEach(showPickup);
      if (data.truncated) setStatus(t("console.map.truncated", { n: data.pickups.length }), "");
    } catch (err) {
      console.warn("map pickups:", err);
    }
  }

  const changedPickups = new Set();
  let pickupTimer = null;
  function pickupChanged(id) {
    changedPickups.add(id);
    if (!pickupTimer) pickupTimer = setTimeout(refreshPickups, REFRESH_DELAY_MS);
  }

  async function refreshPickups() {
    const ids = Array.from(changedPickups);
    changedPickups.clear();
    try {
      if (ids.length > MAX_IDS) {
        await loadPickups();
        return;
      }
      const data = await getJson("/console/map/pickups?ids=" + ids.join(","));
      const shown = new Set(data.pickups.map((p) => p.id));
      data.pickups.forEach(showPickup);
      // Asked for but not answered: closed, moved out of scope or without a position any more.
      ids.filter((id) => !shown.has(id)).forEach(dropPickup);
    } catch (err) {
      console.warn("map pickups:", err);
    } finally {
      pickupTimer = null;
      if (changedPickups.size) pickupTimer = setTimeout(refreshPickups, REFRESH_DELAY_MS);
    }
  }

  // -- couriers ---------------------------------------------------------------------------------------
  function courierIcon(c) {
    const cls = `map-courier ${c.on_duty ? "on" : "off"}${c.stale ? " stale" : ""}`;
    return L.divIcon({ className: cls, iconSize: [16, 16], iconAnchor: [8, 8], html: "" });
  }

  function seenAgo(iso) {
    if (!iso) return "—";
    const minutes = Math.max(Math.round((Date.now() - Date.parse(iso)) / 60000), 0);
    const when = new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    return `${t("console.courier.last_seen")} ${when} (${minutes}′)`;
  }

  function showCourier(c) {
    const duty = c.on_duty ? t("console.courier.on_duty") : t("console.courier.off_duty");
    const tip = lines(c.name, c.stale && c.on_duty ? `${duty} · ${t("console.map.stale")}` : duty,
      t("console.map.open_count", { n: c.open_count }), seenAgo(c.last_seen_at));
    let marker = courierMarkers.get(c.id);
    if (marker) {
      couriersLayer.removeLayer(marker);
      marker.setLatLng([c.lat, c.lng]);
      marker.setIcon(courierIcon(c));
      marker.setTooltipContent(tip);
    } else {
      marker = L.marker([c.lat, c.lng], { icon: courierIcon(c), keyboard: false, zIndexOffset: 500 });
      marker.bindTooltip(tip, { direction: "top", offset: [0, -8] });
      marker.on("add", () => marker.getElement() && (marker.getElement().dataset.courierId = String(c.id)));
      courierMarkers.set(c.id, marker);
    }
    marker.courier = c;
    couriersLayer.addLayer(marker);
  }

  let courierTimer = null;
  async function loadCouriers() {
    clearTimeout(courierTimer);
    try {
      const data = await getJson("/console/map/couriers");
      const seen = new Set(data.couriers.map((c) => c.id));
      for (const [id, marker] of courierMarkers) {
        if (!seen.has(id)) {
          couriersLayer.removeLayer(marker);
          courierMarkers.delete(id);
        }
      }
      data.couriers.forEach(showCourier);
    } catch (err) {
      console.warn("map couriers:", err);
    } finally {
      courierTimer = setTimeout(loadCouriers, COURIER_POLL_MS);
    }
  }

  let couriersSoonTimer = null;
  function couriersSoon() {
    clearTimeout(couriersSoonTimer);
    couriersSoonTimer = setTimeout(loadCouriers, REFRESH_DELAY_MS);
  }

  // -- drawing a zone ---------------------------------------------------------------------------------
  const drawButton = document.getElementById("map-draw");
  const cancelButton = document.getElementById("map-draw-cancel");
  const form = document.getElementById("map-zone-form");
  let drawing = false;
  let drawer = null;
  let drawn = null; // the closed shape waiting for its form

  if (L.Draw && L.drawLocal) {
    const tip = L.drawLocal.draw.handlers.polygon.tooltip;
    tip.start = t("console.map.draw.start");
    tip.cont = t("console.map.draw.cont");
    tip.end = t("console.map.draw.end");
    L.drawLocal.draw.handlers.polyline.error = t("console.map.draw.crossing");
    drawer = new L.Draw.Polygon(map, {
      allowIntersection: false,
      showArea: false,
      shapeOptions: { color: "#d9480f", weight: 2, fillOpacity: 0.15 },
    });
    map.on(L.Draw.Event.DRAWSTART, () => setDrawing(true));
    map.on(L.Draw.Event.DRAWSTOP, () => {
      if (!drawn) setDrawing(false);
    });
    map.on(L.Draw.Event.CREATED, (event) => {
      drawn = event.layer.addTo(map);
      openForm();
    });
  } else if (drawButton) {
    drawButton.hidden = true;
  }

  function setDrawing(on) {
    drawing = on;
    el.classList.toggle("drawing", on);
    if (drawButton) drawButton.hidden = on;
    if (cancelButton) cancelButton.hidden = !on;
    setStatus(on && !drawn ? t("console.map.draw.hint") : "", "");
  }

  function formError(messages) {
    const box = form.querySelector(".msg.error");
    box.replaceChildren(...messages.map((m) => lines(m)));
    box.hidden = !messages.length;
  }

  function openForm() {
    form.hidden = false;
    formError([]);
    setStatus("", "");
    form.elements.code.focus();
  }

  function discard() {
    if (drawer && drawer.enabled()) drawer.disable();
    if (drawn) drawn.remove();
    drawn = null;
    form.hidden = true;
    formError([]);
    setDrawing(false);
  }

  if (drawButton && drawer) drawButton.addEventListener("click", () => drawer.enable());
  if (cancelButton) cancelButton.addEventListener("click", discard);
  if (form) {
    form.querySelector('[data-action="discard"]').addEventListener("click", discard);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!drawn) return;
      const buttons = form.querySelectorAll("button");
      const body = {
        code: form.elements.code.value.trim(),
        name: form.elements.name.value.trim(),
        station: form.elements.station.value,
        dispatch_mode: form.elements.dispatch_mode.value,
        geometry: drawn.toGeoJSON(7).geometry, // in the tiles' datum; the server converts it
      };
      const csrf = JSON.parse(root.getAttribute("hx-headers") || "{}")["x-csrftoken"] || "";
      buttons.forEach((b) => (b.disabled = true));
      form.setAttribute("aria-busy", "true");
      formError([]);
      setStatus(t("console.map.draw.saving"), "");
      try {
        let response;
        try {
          response = await fetch(url("/console/map/zones"), {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", Accept: "application/json", "x-csrftoken": csrf },
            body: JSON.stringify(body),
          });
        } catch (_) {
          setStatus("", "");
          formError([t("console.form.unreachable")]);
          return;
        }
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) {
          setStatus("", "");
          const messages = (answer.errors || []).map((e) => e.message).filter(Boolean);
          formError(messages.length ? messages : [t("console.form.failed", { status: response.status })]);
          return;
        }
        drawn.remove();
        drawn = null;
        form.reset();
        form.hidden = true;
        setDrawing(false);
        setStatus(t("console.map.draw.done", { code: answer.code }), "ok");
        await loadZones();
      } finally {
        buttons.forEach((b) => (b.disabled = false));
        form.removeAttribute("aria-busy");
      }
    });
  }

  // -- following the console ------------------------------------------------------------------------
  // Events that move a courier's load or duty; positions come with heartbeats, which the poll catches.
  const COURIER_EVENTS = /^(courier\.|pickup\.(accepted|assigned|reassigned|unassigned|collected|failed|cancelled))/;
  document.addEventListener("console:event", (event) => {
    const detail = event.detail || {};
    if (detail.pickup_id) pickupChanged(detail.pickup_id);
    if (COURIER_EVENTS.test(detail.type || "")) couriersSoon();
    if (detail.type === "zones.changed") loadZones();
  });
  document.addEventListener("console:board-filter", (event) => highlightZone((event.detail || {}).zone || ""));
  document.body.addEventListener("zones-changed", () => loadZones()); // the GeoJSON form's HX-Trigger
  document.body.addEventListener("htmx:afterSettle", () => highlightZone());

  // For the browser tests and for a curious dispatcher's console: the map and its markers.
  window.consoleMap = {
    map,
    pickup: (id) => pickupMarkers.get(id) || null,
    courier: (id) => courierMarkers.get(id) || null,
    drawer,
    reload: () => Promise.all([loadZones(), loadPickups(), loadCouriers()]),
    ready: null, // settles once the first zones, pickups and couriers are drawn
  };
  window.consoleMap.ready = window.consoleMap.reload();
})();

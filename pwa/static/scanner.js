// Collecting at the door: the camera that reads the waybill's barcode, and the details sent with collect —
// pieces, weight, re-packed and a photo shrunk on the phone. The page loads this module; courier.js imports
// it when it scans or collects (the same instance), so the rest of the app runs even if it cannot load.
//
// Barcodes: the browser's BarcodeDetector where it has one (Android Chrome), else the vendored ZXing build
// (pwa/vendor/zxing, about 360 kB), loaded only the first time the camera opens so the app shell stays small.
// Camera refused or absent: the overlay closes, the form says so in the page's language, and the courier
// types the number. The photo is drawn onto a canvas at most 1280 px on its long side and uploaded as a
// JPEG (quality 0.8) just before collect; its preview is a data: URL (the page's CSP allows data: images).

const strings = JSON.parse(document.getElementById("strings").textContent);
const t = (key, values = {}) =>
  (strings[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));

const ZXING_URL = "/static/vendor/zxing/index.min.js";
const DETECTOR_FORMATS = ["code_128", "code_39", "code_93", "itf", "ean_13", "qr_code"];
const WAYBILL_SHAPE = /^[A-Z0-9]{8,32}$/;
const PHOTO_LONG_SIDE = 1280;
const PHOTO_QUALITY = 0.8;

const overlay = document.getElementById("scanner");
const video = document.getElementById("scanner-video");
const status = document.getElementById("scanner-status");

// -- the barcode reader ------------------------------------------------------------------------------------

let zxing = null;

function loadZXing() {
  // A classic script (the UMD build sets window.ZXing): allowed by the CSP as a file from this origin.
  zxing ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = ZXING_URL;
    script.onload = () => (window.ZXing ? resolve(window.ZXing) : reject(new Error("ZXing did not load")));
    script.onerror = () => {
      zxing = null;
      reject(new Error("ZXing did not load"));
    };
    document.head.append(script);
  });
  return zxing;
}

// A function (video or image) -> text read, or null when no barcode is in sight.
async function barcodeReader() {
  if ("BarcodeDetector" in window) {
    try {
      const supported = await window.BarcodeDetector.getSupportedFormats();
      const formats = DETECTOR_FORMATS.filter((f) => supported.includes(f));
      if (formats.length) {
        const detector = new window.BarcodeDetector({ formats });
        document.body.dataset.scanner = "BarcodeDetector";
        return async (source) => (await detector.detect(source))[0]?.rawValue || null;
      }
    } catch {
      // Declared but unusable (no detection service on this device): ZXing below.
    }
  }
  const ZXing = await loadZXing();
  const hints = new Map();
  const F = ZXing.BarcodeFormat;
  hints.set(ZXing.DecodeHintType.POSSIBLE_FORMATS, [F.CODE_128, F.CODE_39, F.CODE_93, F.ITF, F.EAN_13, F.QR_CODE]);
  hints.set(ZXing.DecodeHintType.TRY_HARDER, true);
  const reader = new ZXing.MultiFormatReader();
  reader.setHints(hints);
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  document.body.dataset.scanner = "zxing";
  return async (source) => {
    const width = source.videoWidth || source.naturalWidth || source.width;
    const height = source.videoHeight || source.naturalHeight || source.height;
    if (!width || !height) return null;
    const scale = Math.min(1, 960 / Math.max(width, height)); // enough for a waybill at arm's length
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
    const luminance = new ZXing.HTMLCanvasElementLuminanceSource(canvas);
    try {
      return reader.decodeWithState(new ZXing.BinaryBitmap(new ZXing.HybridBinarizer(luminance))).getText();
    } catch {
      return null; // NotFoundException and friends: nothing readable in this frame
    } finally {
      reader.reset();
    }
  };
}

// -- the camera overlay ------------------------------------------------------------------------------------

let stream = null;
let scanning = 0; // a new number for every opening: a loop of a closed overlay stops

function closeScanner() {
  scanning += 1;
  overlay.hidden = true;
  video.srcObject = null;
  stream?.getTracks().forEach((track) => track.stop());
  stream = null;
}

function sayInForm(form, message) {
  const error = form?.querySelector("[data-error]");
  if (!error) return;
  error.textContent = message;
  error.hidden = !message;
}

export async function openScanner(startForm) {
  // The list may be re-read while the camera starts or reads: the answer goes to the form on the page now.
  const pickupId = startForm.dataset.pickupId;
  const liveForm = () => document.querySelector(`form.collect[data-pickup-id="${pickupId}"]`) || startForm;
  const run = ++scanning;
  let form = startForm;
  sayInForm(form, "");
  status.textContent = t("courier.scan.starting");
  overlay.hidden = false;
  document.getElementById("scanner-cancel").focus();
  const giveUp = (key) => {
    closeScanner();
    form = liveForm();
    sayInForm(form, t(key));
    form.elements.waybill_no.focus(); // the courier types it
  };
  if (!navigator.mediaDevices?.getUserMedia) return giveUp("courier.scan.no_camera");
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    });
  } catch (error) {
    return giveUp(error && error.name === "NotAllowedError" ? "courier.scan.denied" : "courier.scan.no_camera");
  }
  if (run !== scanning) return closeScanner(); // cancelled while the phone asked
  video.srcObject = stream;
  let read;
  try {
    await video.play();
    read = await barcodeReader();
  } catch {
    return giveUp("courier.scan.no_camera");
  }
  status.textContent = t("courier.scan.aim");
  while (run === scanning) {
    const text = await read(video).catch(() => null);
    if (run !== scanning) return;
    const waybill = (text || "").replace(/\s+/g, "").toUpperCase();
    if (WAYBILL_SHAPE.test(waybill)) {
      closeScanner();
      form = liveForm();
      const input = form.elements.waybill_no;
      input.value = waybill;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      form.querySelector("button[type=submit]")?.focus();
      return;
    }
    if (text) status.textContent = t("courier.scan.not_waybill");
    await new Promise((resolve) => setTimeout(resolve, 120));
  }
}

document.getElementById("scanner-cancel").addEventListener("click", closeScanner);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !overlay.hidden) closeScanner();
});
// The camera is not kept running behind the lock screen or another app.
document.addEventListener("visibilitychange", () => {
  if (document.hidden && !overlay.hidden) closeScanner();
});

// -- the photo: shrunk on the phone, previewed, uploaded just before collect --------------------------------

const photos = new Map(); // pickup id -> {blob, preview, photoId}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function decodeImage(file) {
  if (window.createImageBitmap) {
    try {
      return await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch {
      // Some formats only an <img> decodes: below.
    }
  }
  const image = new Image();
  image.src = await readAsDataUrl(file);
  await image.decode();
  return image;
}

export async function shrinkPhoto(file) {
  const image = await decodeImage(file);
  const width = image.naturalWidth || image.width;
  const height = image.naturalHeight || image.height;
  const scale = Math.min(1, PHOTO_LONG_SIDE / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
  image.close?.();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", PHOTO_QUALITY));
  if (!blob) throw new Error("the canvas gave no JPEG");
  return { blob, preview: canvas.toDataURL("image/jpeg", 0.5), width: canvas.width, height: canvas.height };
}

function showPreview(form, photo) {
  const preview = form.querySelector("[data-photo-preview]");
  if (!preview) return;
  if (photo) preview.src = photo.preview;
  else preview.removeAttribute("src");
  preview.hidden = !photo;
}

async function uploadPhoto(pickupId, photo) {
  let response;
  try {
    response = await fetch(`/api/v1/courier/pickups/${pickupId}/photos`, {
      method: "POST",
      headers: { "content-type": "image/jpeg", accept: "application/json" },
      body: photo.blob,
      credentials: "same-origin",
    });
  } catch {
    return { ok: false, message: t("courier.error.network") };
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) return { ok: false, message: t("courier.photo.failed", { message: answer.message || response.status }) };
  photo.photoId = answer.photo_id; // a retried collect does not upload it twice
  return { ok: true };
}

function formPickupId(form) {
  return form.dataset.pickupId;
}

document.addEventListener("change", async (event) => {
  const input = event.target;
  const form = input.closest?.("form.collect");
  if (!form) return;
  if (input.name !== "photo") return;
  const id = formPickupId(form);
  const file = input.files && input.files[0];
  if (!file) {
    photos.delete(id);
    showPreview(form, null);
    return;
  }
  try {
    const photo = await shrinkPhoto(file);
    photos.set(id, photo);
    showPreview(form, photo);
    sayInForm(form, "");
  } catch {
    photos.delete(id);
    showPreview(form, null);
    sayInForm(form, t("courier.photo.unreadable"));
  }
});

// The list is re-rendered by the server after every event: put back the photo chosen here (what was typed
// is put back by courier.js).
document.addEventListener("htmx:afterSwap", (event) => {
  if (!event.detail.target || event.detail.target.id !== "pickups") return;
  for (const form of document.querySelectorAll("#pickups form.collect")) {
    showPreview(form, photos.get(formPickupId(form)) || null);
  }
});

// The fields collect sends besides the waybill: {ok: true, fields} or {ok: false, message} (nothing sent).
export async function collectDetails(form) {
  const id = formPickupId(form);
  const fields = { repacked: form.elements.repacked.checked };
  const pieces = form.elements.pieces.value.trim();
  if (pieces) {
    const n = Number(pieces);
    if (!Number.isInteger(n) || n < 1 || n > 999) return { ok: false, message: t("courier.pieces.invalid") };
    fields.pieces = n;
  }
  const weight = form.elements.weight_kg.value.trim().replace(",", ".");
  if (weight) {
    const kg = Number(weight);
    if (!Number.isFinite(kg) || kg <= 0 || kg > 1000) return { ok: false, message: t("courier.weight.invalid") };
    fields.weight_kg = kg;
  }
  const photo = photos.get(id);
  if (photo) {
    if (!photo.photoId) {
      const uploaded = await uploadPhoto(id, photo);
      if (!uploaded.ok) return uploaded;
    }
    fields.photo_id = photo.photoId;
  }
  return { ok: true, fields };
}

// After a collect the server answered: the pickup leaves the list, and what was kept for it goes too.
export function forgetDetails(pickupId) {
  photos.delete(String(pickupId));
}

// For the browser test of the ZXing path on a still image (no camera needed).
export async function readBarcodeFrom(image) {
  return (await barcodeReader())(image);
}

// Web Push for the courier app: an offer reaches a phone whose app is in the background or closed. Going on
// duty subscribes this browser with the server's VAPID key and registers the subscription; going off duty
// unsubscribes and tells the server. Web Push is the second channel (the open, ringing app is the first):
// where there is no push service (headless browsers, phones without Google services) or the courier said
// no to notifications, every step here fails silently and the app goes on as before.

const API = "/api/v1/courier/push-subscriptions";

function keyBytes(encoded) {
  const text = atob(encoded.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((encoded.length + 3) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function base64url(buffer) {
  return btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function registration() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return null;
  return (await navigator.serviceWorker.getRegistration("/app")) || null;
}

export async function subscribe() {
  try {
    if (!("Notification" in window) || Notification.permission !== "granted") return false;
    const reg = await registration();
    if (!reg) return false;
    const answer = await fetch(`${API}/key`, { headers: { accept: "application/json" }, credentials: "same-origin" });
    if (!answer.ok) return false;
    const { public_key: publicKey } = await answer.json();
    let subscription = await reg.pushManager.getSubscription();
    // A subscription made with another key (the server's key was replaced) cannot be pushed to.
    const key = subscription?.options?.applicationServerKey;
    if (subscription && key && base64url(key) !== publicKey) {
      await subscription.unsubscribe();
      subscription = null;
    }
    subscription ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) });
    const registered = await fetch(API, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(subscription.toJSON()),
      credentials: "same-origin",
    });
    return registered.ok;
  } catch {
    return false; // no push service here: the open app still rings
  }
}

export async function unsubscribe() {
  try {
    const reg = await registration();
    const subscription = await reg?.pushManager.getSubscription();
    if (!subscription) return;
    const { endpoint } = subscription;
    await subscription.unsubscribe();
    await fetch(`${API}?endpoint=${encodeURIComponent(endpoint)}`, { method: "DELETE", credentials: "same-origin" });
  } catch {
    // off duty anyway: the server also drops subscriptions the push service answers 404/410 for
  }
}

// The courier app's outbox ("no signal, no loss"): every action is written here first, in IndexedDB, with
// the app's own id for it (client_action_id) and the time it was done (client_at), and only then sent. What
// could not be sent (no network, a server error) stays, in order, and is sent again later; the server
// applies each client_action_id once and answers a replay without redoing it, so sending twice is safe.
//
// The store is ordered by an auto-increment key, so actions go out in the order they were done. Where
// IndexedDB is missing or refused (some private modes) the outbox lives in memory: the page still works,
// it only forgets what waits when it is closed.

const DB_NAME = "lanshou-courier";
const STORE = "outbox";

let dbPromise = null;
const memory = []; // the fallback store
let memorySeq = 0;

function openDb() {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve) => {
    let request;
    try {
      request = indexedDB.open(DB_NAME, 1);
    } catch {
      resolve(null);
      return;
    }
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(null);
    request.onblocked = () => resolve(null);
  });
  return dbPromise;
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

// Adds an action; resolves to the stored entry (with its `seq`) once it is written.
export async function add(entry) {
  const db = await openDb();
  if (!db) {
    const stored = { ...entry, seq: (memorySeq += 1) };
    memory.push(stored);
    return stored;
  }
  const tx = db.transaction(STORE, "readwrite");
  const request = tx.objectStore(STORE).add(entry);
  await done(tx);
  return { ...entry, seq: request.result };
}

// Every waiting action, oldest first.
export async function all() {
  const db = await openDb();
  if (!db) return memory.slice();
  const tx = db.transaction(STORE, "readonly");
  const request = tx.objectStore(STORE).getAll();
  await done(tx);
  return request.result;
}

export async function remove(seq) {
  const db = await openDb();
  if (!db) {
    const at = memory.findIndex((e) => e.seq === seq);
    if (at >= 0) memory.splice(at, 1);
    return;
  }
  const tx = db.transaction(STORE, "readwrite");
  tx.objectStore(STORE).delete(seq);
  await done(tx);
}

// Runs `task` alone across every tab of the app (two tabs sending the same action at once would make the
// second look like a conflict); where the Web Locks API is missing, alone within this tab.
let localChain = Promise.resolve();
export function exclusively(task) {
  if (navigator.locks?.request) return navigator.locks.request("lanshou-outbox", task);
  const run = localChain.then(task, task);
  localChain = run.catch(() => {});
  return run;
}

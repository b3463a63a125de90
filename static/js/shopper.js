// shopper.js — the shopper client at `/`: sign in, set the live location,
// the eligible promos with live stock, reserve / buy / cancel with the hold's
// countdown, notifications as they arrive, the inbox and the connection state.
//
// REST is the source of truth and WebSocket frames patch it between reloads:
// after every (re)connect the lists are fetched again, so a missed frame only
// costs the moments until then.

import { Api, ApiError, randomKey } from "./api.js";
import { LiveSocket, describeState } from "./socket.js";
import { StoreMap } from "./map.js";
import { h, replaceChildren, money, km, when, clock } from "./dom.js";

const REFRESH_EVERY_MS = 15000;
const GEO_MIN_MOVE_KM = 0.02;
const $ = (selector) => document.querySelector(selector);

const state = {
  me: null,
  stores: [],
  running: [],
  promos: new Map(), // promo id -> promo (with distance_km)
  reservations: new Map(), // promo id -> newest reservation of it
  notes: [],
  errors: new Map(), // promo id -> message
  clockOffsetMs: 0,
  watchId: null,
  reload: null,
  reloadAgain: false,
};

const api = new Api("promo-engine.shopper", () => {
  socket.stop();
  showSignIn("Your session ended; please sign in again.");
});
const socket = new LiveSocket({
  token: () => api.token,
  onFrame: handleFrame,
  onState: (connection) => {
    $("#connection").textContent = describeState(connection);
    $("#connection").dataset.state = connection.state;
  },
  onLost: () => api.get("/api/users/clients-profiles/me/").catch(() => {}),
});
const map = new StoreMap($("#map"), (latitude, longitude) => setLocation(latitude, longitude));

$("#sign-in-form").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", () => {
  socket.stop();
  api.signOut();
  showSignIn("");
});
$("#location-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const latitude = Number($("#latitude").value);
  const longitude = Number($("#longitude").value);
  setLocation(latitude, longitude);
});
$("#follow-device").addEventListener("click", toggleDeviceLocation);
$("#map").addEventListener("cursor", () => drawMap());
setInterval(tickCountdowns, 250);
setInterval(() => api.token && refreshPromos().catch(reportLoadError), REFRESH_EVERY_MS);

if (api.token) enter();
else showSignIn("");

async function signIn(event) {
  event.preventDefault();
  const error = $("#sign-in-error");
  error.textContent = "";
  try {
    const user = await api.signIn($("#username").value.trim(), $("#password").value);
    if (user.is_admin) {
      api.signOut();
      error.innerHTML = 'This is the admin account: use the <a href="/admin/">admin console</a>.';
      return;
    }
    enter();
  } catch (failure) {
    error.textContent = failure.code === "invalid_credentials" ? "Wrong username or password." : failure.message;
  }
}

function showSignIn(message) {
  stopDeviceLocation();
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#who").textContent = "";
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#username").focus();
}

async function enter() {
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  $("#who").textContent = api.user.username;
  socket.start();
  await Promise.all([loadProfile(), loadStores(), refreshPromos(), loadInbox()]).catch(reportLoadError);
}

function reportLoadError(failure) {
  if (failure instanceof ApiError && failure.status !== 401) toast(`Could not load: ${failure.message}`);
}

async function loadProfile() {
  const profile = await api.get("/api/users/clients-profiles/me/");
  state.me = profile.latitude === null ? null : { latitude: profile.latitude, longitude: profile.longitude };
  showLocation();
}

async function loadStores() {
  state.stores = await api.listAll("/api/market/stores/", 5);
  drawMap();
}

/** Reloads the promos soon: at most one reload runs, and one more waits for it. */
function refreshPromos() {
  if (!state.reload) {
    state.reload = loadPromos().finally(() => {
      state.reload = null;
      if (state.reloadAgain) {
        state.reloadAgain = false;
        refreshPromos().catch(reportLoadError);
      }
    });
  } else {
    state.reloadAgain = true;
  }
  return state.reload;
}

/** Reloads eligible promos, running promos (for the map) and my reservations. */
async function loadPromos() {
  const [eligible, running, reservations] = await Promise.all([
    api.listAll("/api/promotions/flash-promos/eligible/", 2),
    api.listAll("/api/promotions/flash-promos/running/", 2),
    api.listAll("/api/promotions/promo-reservations/", 1),
  ]);
  state.running = running;
  state.reservations = new Map();
  for (const reservation of reservations.reverse()) state.reservations.set(reservation.promo.id, reservation);
  state.promos = new Map(eligible.map((promo) => [promo.id, promo]));
  for (const reservation of state.reservations.values()) {
    const live = reservation.status === "held" && secondsLeft(reservation.expires_at) > 0;
    if (live && !state.promos.has(reservation.promo.id)) state.promos.set(reservation.promo.id, reservation.promo);
  }
  renderPromos();
  drawMap();
}

async function loadInbox() {
  const answer = await api.get("/api/users/notifications/?page_size=20");
  state.notes = answer.results;
  renderInbox();
}

/** Sends the live location (PATCH me/), then reloads what depends on it. */
async function setLocation(latitude, longitude) {
  const error = $("#location-error");
  error.textContent = "";
  try {
    const profile = await api.request("PATCH", "/api/users/clients-profiles/me/", { latitude, longitude });
    state.me = { latitude: profile.latitude, longitude: profile.longitude };
    showLocation();
    drawMap();
    await refreshPromos();
  } catch (failure) {
    const messages = Object.entries(failure.fields || {}).map(([field, list]) => `${field} ${list.join(", ")}`);
    error.textContent = messages.length ? messages.join("; ") : failure.message;
  }
}

function showLocation() {
  const text = state.me ? `${state.me.latitude.toFixed(5)}, ${state.me.longitude.toFixed(5)}` : "not set";
  $("#location-text").textContent = `Your location: ${text}`;
  if (state.me) {
    $("#latitude").value = state.me.latitude;
    $("#longitude").value = state.me.longitude;
  }
}

function drawMap() {
  const radii = state.running.map((promo) => ({
    latitude: promo.product.store.latitude,
    longitude: promo.product.store.longitude,
    km: promo.max_distance_km,
  }));
  map.render({ stores: state.stores, radii, me: state.me });
}

function toggleDeviceLocation() {
  if (state.watchId !== null) {
    stopDeviceLocation();
    return;
  }
  if (!navigator.geolocation) {
    $("#location-error").textContent = "This browser cannot share its location.";
    return;
  }
  $("#follow-device").setAttribute("aria-pressed", "true");
  state.watchId = navigator.geolocation.watchPosition(
    (position) => followDevice(position.coords),
    (failure) => {
      $("#location-error").textContent = `Device location unavailable: ${failure.message}`;
      stopDeviceLocation();
    },
    { enableHighAccuracy: true, maximumAge: 10000 },
  );
}

function followDevice({ latitude, longitude }) {
  const moved = !state.me || distanceKm(state.me, { latitude, longitude }) >= GEO_MIN_MOVE_KM;
  if (moved) setLocation(Number(latitude.toFixed(6)), Number(longitude.toFixed(6)));
}

function stopDeviceLocation() {
  if (state.watchId !== null) navigator.geolocation.clearWatch(state.watchId);
  state.watchId = null;
  $("#follow-device").setAttribute("aria-pressed", "false");
}

function distanceKm(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.latitude - a.latitude) * rad;
  const dLon = (b.longitude - a.longitude) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.latitude * rad) * Math.cos(b.latitude * rad) * Math.sin(dLon / 2) ** 2;
  return 12742 * Math.asin(Math.sqrt(s));
}

// ---- live frames ----

function handleFrame(frame) {
  const handlers = {
    hello: () => {
      // Only a real skew counts: under a second is the frame's own travel time.
      const offset = new Date(frame.server_time).getTime() - Date.now();
      state.clockOffsetMs = Math.abs(offset) > 1000 ? offset : 0;
      refreshPromos().catch(reportLoadError);
      loadInbox().catch(reportLoadError);
    },
    "promo.notification": () => notified(frame),
    "promo.stock": () => stockChanged(frame),
    "promo.ended": () => promoEnded(frame),
    error: () => toast(`Server: ${frame.detail}`),
  };
  if (String(frame.type).startsWith("reservation.")) reservationChanged(frame.reservation);
  else if (handlers[frame.type]) handlers[frame.type]();
}

function notified(frame) {
  const promo = { ...frame.promo, distance_km: frame.distance_km };
  state.promos.set(promo.id, promo);
  if (!state.notes.some((note) => note.id === frame.notification_id)) {
    state.notes.unshift({ id: frame.notification_id, promo, sent_at: new Date().toISOString(), delivered: true });
  }
  toast(`New promo ${km(frame.distance_km)} away: ${promo.product.name} for ${money(promo.promo_price)}`);
  renderPromos();
  renderInbox();
}

function stockChanged({ promo_id, available, held, sold, status }) {
  const promo = state.promos.get(promo_id);
  if (!promo) {
    refreshPromos().catch(reportLoadError);
    return;
  }
  Object.assign(promo, { available, held, sold, status });
  renderPromos();
}

function promoEnded({ promo_id, reason }) {
  const promo = state.promos.get(promo_id);
  if (!promo) return;
  if (holding(promo_id)) promo.status = reason === "sold_out" ? "sold_out" : "ended";
  else state.promos.delete(promo_id);
  renderPromos();
  refreshPromos().catch(reportLoadError);
}

function reservationChanged(reservation) {
  state.reservations.set(reservation.promo.id, reservation);
  if (!state.promos.has(reservation.promo.id)) state.promos.set(reservation.promo.id, reservation.promo);
  renderPromos();
}

/** True when my newest reservation of the promo is held or completed. */
function holding(promoId) {
  const reservation = state.reservations.get(promoId);
  return Boolean(reservation && (reservation.status === "held" || reservation.status === "completed"));
}

// ---- actions ----

async function act(promoId, action) {
  state.errors.delete(promoId);
  const reservation = state.reservations.get(promoId);
  try {
    if (action === "reserve") {
      const held = await api.request("POST", "/api/promotions/promo-reservations/", { promo_id: promoId },
        { idempotencyKey: randomKey() });
      state.reservations.set(promoId, held);
    } else {
      const path = `/api/promotions/promo-reservations/${reservation.id}/${action === "buy" ? "complete" : "cancel"}/`;
      const answer = await api.request("POST", path, {}, { idempotencyKey: randomKey() });
      state.reservations.set(promoId, answer.reservation);
    }
  } catch (failure) {
    state.errors.set(promoId, refusal(failure));
    if (["already_reserved", "reservation_expired", "reservation_cancelled", "already_completed"].includes(failure.code)) {
      refreshPromos().catch(reportLoadError);
    }
  }
  renderPromos();
}

function refusal(failure) {
  const texts = {
    all_units_held: `Every unit is held right now; try again in ${failure.retryAfter || 1} s.`,
    sold_out: "Sold out.",
    too_far: "You are too far from the store.",
    not_in_segment: "This promo is not for you.",
    reservation_expired: "Your hold expired.",
  };
  return texts[failure.code] || failure.message;
}

// ---- rendering ----

function renderPromos() {
  const list = $("#promos");
  const promos = [...state.promos.values()].sort((a, b) => (a.distance_km ?? 1e9) - (b.distance_km ?? 1e9));
  const focused = document.activeElement && document.activeElement.closest("li.promo")
    ? [document.activeElement.closest("li.promo").dataset.promoId, document.activeElement.dataset.action]
    : null;
  replaceChildren(list, ...promos.map(promoCard));
  $("#promos-empty").hidden = promos.length > 0;
  $("#promos-empty").textContent = state.me ? "No promos near you right now." : "Set your location to see promos near you.";
  if (focused) {
    const again = list.querySelector(`li[data-promo-id="${focused[0]}"] [data-action="${focused[1]}"]`)
      || list.querySelector(`li[data-promo-id="${focused[0]}"] button`);
    if (again) again.focus();
  }
  tickCountdowns();
}

function promoCard(promo) {
  const reservation = state.reservations.get(promo.id);
  const titleId = `promo-${promo.id}-title`;
  return h("li", { class: "promo card", dataset: { promoId: promo.id, status: promo.status }, "aria-labelledby": titleId },
    h("h3", { id: titleId }, promo.product.name),
    h("p", { class: "store" }, promo.product.store.name,
      promo.distance_km !== undefined ? h("span", { class: "distance" }, ` · ${km(promo.distance_km)} away`) : null),
    h("p", { class: "prices" },
      h("span", { class: "promo-price", "aria-label": "promo price" }, money(promo.promo_price)), " ",
      h("s", { class: "regular-price", "aria-label": "regular price" }, money(promo.product.regular_price))),
    stockBar(promo),
    reservationPart(promo, reservation),
    state.errors.has(promo.id) ? h("p", { class: "error", role: "alert" }, state.errors.get(promo.id)) : null);
}

function stockBar(promo) {
  const quantity = promo.available + promo.held + promo.sold || 1;
  const part = (name, value) => h("span", { class: name, style: `width:${(100 * value) / quantity}%` });
  const label = `${promo.available} of ${quantity} left`;
  return h("div", { class: "stock-wrap" },
    h("div", { class: "stock", role: "meter", "aria-label": "units left", "aria-valuemin": 0,
      "aria-valuemax": quantity, "aria-valuenow": promo.available, "aria-valuetext": label },
    part("available", promo.available), part("held", promo.held), part("sold", promo.sold)),
    h("p", { class: "stock-text" }, `${label} · ${promo.held} held · ${promo.sold} sold`,
      promo.status !== "running" ? ` · ${promo.status.replace("_", " ")}` : ""));
}

function reservationPart(promo, reservation) {
  const button = (action, label, extra = {}) =>
    h("button", { type: "button", dataset: { action }, onclick: () => act(promo.id, action), ...extra }, label);
  const status = reservation && reservation.status;
  if (status === "held") {
    return h("div", { class: "reservation", dataset: { state: "held" } },
      h("p", { class: "reservation-state" }, "Held for you: ",
        h("span", { class: "countdown", role: "timer", "aria-live": "off", dataset: { expiresAt: reservation.expires_at, createdAt: reservation.created_at } },
          clock(secondsLeft(reservation.expires_at, reservation.created_at)))),
      button("buy", `Buy for ${money(promo.promo_price)}`, { class: "primary" }), " ",
      button("cancel", "Cancel"));
  }
  const notes = { completed: "Bought — enjoy!", expired: "Your hold expired.", cancelled: "You cancelled your hold." };
  const canReserve = promo.status === "running" && status !== "completed";
  return h("div", { class: "reservation", dataset: { state: status || "none" } },
    status ? h("p", { class: "reservation-state" }, notes[status]) : null,
    canReserve ? button("reserve", status ? "Reserve again" : "Reserve", { class: "primary" }) : null);
}

/** Seconds until `expiresAt` on the server's clock, never more than the hold's length. */
function secondsLeft(expiresAt, createdAt) {
  const expires = new Date(expiresAt).getTime();
  const left = expires - (Date.now() + state.clockOffsetMs);
  return (createdAt ? Math.min(left, expires - new Date(createdAt).getTime()) : left) / 1000;
}

/** Updates every countdown in place; a hold past its time shows as expiring until its frame comes. */
function tickCountdowns() {
  for (const element of document.querySelectorAll(".countdown")) {
    const left = secondsLeft(element.dataset.expiresAt, element.dataset.createdAt);
    element.textContent = left > 0 ? clock(left) : "expiring…";
  }
}

function renderInbox() {
  replaceChildren($("#inbox"), ...state.notes.map((note) =>
    h("li", { class: "note", dataset: { notificationId: note.id } },
      h("strong", {}, note.promo.product.name), ` at ${note.promo.product.store.name} for ${money(note.promo.promo_price)}`,
      h("br"), h("small", {}, when(note.sent_at)))));
  $("#inbox-empty").hidden = state.notes.length > 0;
}

function toast(message) {
  const item = h("div", { class: "toast", role: "status" }, message,
    h("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"));
  $("#toasts").prepend(item);
  setTimeout(() => item.remove(), 10000);
}

// admin.js — the admin console at `/admin/`: sign in, one tab per section
// (running promos, flash promos, stores, products, segments, client profiles,
// raffle campaigns) and the live connection that keeps the running table and
// the raffle counts current.

import { Api } from "./api.js";
import { LiveSocket, describeState } from "./socket.js";
import { RESOURCES, ResourceView } from "./admin-resources.js";
import { RunningView, CampaignsView } from "./admin-live.js";
import { h, replaceChildren } from "./dom.js";

const $ = (selector) => document.querySelector(selector);
const api = new Api("promo-engine.admin", () => {
  socket.stop();
  showSignIn("Your session ended; please sign in again.");
});
const ctx = { stores: [], products: [], segments: [] };
const running = new RunningView(api);
const campaigns = new CampaignsView(api);
const views = new Map(RESOURCES.map((resource) => [resource.key, new ResourceView(resource, api, ctx, changed)]));
const sections = [["running", "Running now", running], ["promos", "Flash promos", views.get("promos")],
  ["stores", "Stores", views.get("stores")], ["products", "Products", views.get("products")],
  ["segments", "Segments", views.get("segments")], ["clients", "Client profiles", views.get("clients")],
  ["campaigns", "Raffles", campaigns]];

const socket = new LiveSocket({
  token: () => api.token,
  onFrame: handleFrame,
  onState: (connection) => {
    $("#connection").textContent = describeState(connection);
    $("#connection").dataset.state = connection.state;
  },
  onLost: () => api.get("/api/market/stores/?page_size=1").catch(() => {}),
});

buildTabs();
$("#sign-in-form").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", () => {
  socket.stop();
  api.signOut();
  showSignIn("");
});
if (api.token) enter();
else showSignIn("");

function buildTabs() {
  const nav = $("#tabs");
  for (const [key, label, view] of sections) {
    view.element.hidden = true;
    view.element.setAttribute("role", "tabpanel");
    $("#sections").append(view.element);
    nav.append(h("button", { type: "button", role: "tab", id: `tab-${key}`, "aria-controls": view.element.id,
      "aria-selected": "false", onclick: () => select(key) }, label));
  }
  nav.addEventListener("keydown", (event) => {
    const tabs = [...nav.querySelectorAll("button")];
    const at = tabs.indexOf(document.activeElement);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (at >= 0 && step) {
      const next = tabs[(at + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    }
  });
}

function select(key) {
  for (const [name, , view] of sections) {
    view.element.hidden = name !== key;
    $(`#tab-${name}`).setAttribute("aria-selected", String(name === key));
  }
  location.hash = key;
}

async function signIn(event) {
  event.preventDefault();
  $("#sign-in-error").textContent = "";
  try {
    const user = await api.signIn($("#username").value.trim(), $("#password").value);
    if (!user.is_admin) {
      api.signOut();
      $("#sign-in-error").textContent = "Only the admin account can use the console.";
      return;
    }
    enter();
  } catch (failure) {
    $("#sign-in-error").textContent = failure.code === "invalid_credentials" ? "Wrong username or password." : failure.message;
  }
}

function showSignIn(message) {
  $("#console").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#username").focus();
}

async function enter() {
  $("#sign-in").hidden = true;
  $("#console").hidden = false;
  $("#sign-out").hidden = false;
  $("#who").textContent = api.user.username;
  const wanted = location.hash.slice(1);
  select(sections.some(([key]) => key === wanted) ? wanted : "running");
  socket.start();
  await reloadAll();
}

/** Loads the choices the forms offer, then every section. */
async function reloadAll() {
  try {
    [ctx.stores, ctx.products, ctx.segments] = await Promise.all([
      views.get("stores").load(), views.get("products").load(), views.get("segments").load()]);
    for (const view of views.values()) view.refreshForm();
    await Promise.all([views.get("clients").load(), views.get("promos").load(), running.load(), campaigns.load()]);
  } catch (failure) {
    replaceChildren($("#console-error"), `Could not load: ${failure.message}`);
  }
}

/** A section changed: refresh what shows or offers its objects. */
async function changed(key) {
  if (key === "stores") ctx.stores = views.get("stores").items;
  if (key === "segments") ctx.segments = views.get("segments").items;
  if (key === "stores" || key === "products") ctx.products = await views.get("products").load();
  for (const view of views.values()) if (view.resource.key !== key) view.refreshForm();
  if (key === "promos" || key === "stores" || key === "products") {
    await Promise.all([running.load(), key === "promos" ? null : views.get("promos").load()]);
  }
}

function handleFrame(frame) {
  if (frame.type === "hello") reloadAll();
  else if (frame.type === "promo.stock") {
    running.stock(frame);
    const { available, held, sold, status } = frame;
    views.get("promos").patchItem(frame.promo_id, { available, held, sold, status });
  } else if (frame.type === "promo.ended") running.ended(frame);
  else if (frame.type === "raffle.stats") campaigns.stats(frame);
}

// map.js — the shopper's SVG map: stores, the radius of each running promo
// around its store, and the shopper. A click (or arrow keys then Enter)
// picks a new location. Coordinates are projected flat around the map's
// centre, which is accurate enough over a city.

import { svg, replaceChildren } from "./dom.js";

const KM_PER_DEGREE = 111.32;
const MIN_SPAN_KM = 3;
const KEY_STEP_KM = 0.1;
const SIZE = 300;

/** A map drawn in an `<svg>`; `onPick(latitude, longitude)` hears choices. */
export class StoreMap {
  constructor(element, onPick) {
    this.element = element;
    this.onPick = onPick;
    this.view = null;
    this.cursor = null;
    element.setAttribute("viewBox", `0 0 ${SIZE} ${SIZE}`);
    element.addEventListener("click", (event) => this.clicked(event));
    element.addEventListener("keydown", (event) => this.keyed(event));
  }

  /** Draws `stores`, `radii` ([{latitude, longitude, km}]) and `me` (or null). */
  render({ stores, radii, me }) {
    this.view = frame(stores, radii, me);
    const toPoint = (latitude, longitude) => this.project(latitude, longitude);
    const pxPerKm = SIZE / this.view.spanKm;
    const circles = radii.map((radius) => {
      const [x, y] = toPoint(radius.latitude, radius.longitude);
      return svg("circle", { class: "radius", cx: x, cy: y, r: radius.km * pxPerKm });
    });
    const pins = stores.map((store) => {
      const [x, y] = toPoint(store.latitude, store.longitude);
      return svg("g", { class: "store" },
        svg("rect", { x: x - 4, y: y - 4, width: 8, height: 8 }),
        svg("text", { x: x + 7, y: y + 4 }, store.name),
        svg("title", {}, store.name));
    });
    const shown = this.cursor || me;
    const shopper = shown ? meMarker(toPoint(shown.latitude, shown.longitude)) : null;
    replaceChildren(this.element, svg("rect", { class: "ground", width: SIZE, height: SIZE }),
      ...circles, ...pins, shopper);
  }

  project(latitude, longitude) {
    const { centre, spanKm, cos } = this.view;
    const x = ((longitude - centre.longitude) * KM_PER_DEGREE * cos / spanKm + 0.5) * SIZE;
    const y = (0.5 - (latitude - centre.latitude) * KM_PER_DEGREE / spanKm) * SIZE;
    return [round(x), round(y)];
  }

  unproject(x, y) {
    const { centre, spanKm, cos } = this.view;
    const longitude = centre.longitude + (x / SIZE - 0.5) * spanKm / (KM_PER_DEGREE * cos);
    const latitude = centre.latitude + (0.5 - y / SIZE) * spanKm / KM_PER_DEGREE;
    return { latitude: round(latitude, 6), longitude: round(longitude, 6) };
  }

  clicked(event) {
    if (!this.view) return;
    const box = this.element.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * SIZE;
    const y = ((event.clientY - box.top) / box.height) * SIZE;
    const point = this.unproject(x, y);
    this.cursor = null;
    this.onPick(point.latitude, point.longitude);
  }

  /** Arrow keys move a cursor 100 m at a time; Enter or Space picks it. */
  keyed(event) {
    if (!this.view) return;
    const moves = { ArrowUp: [1, 0], ArrowDown: [-1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const start = this.cursor || this.view.centre;
    if (moves[event.key]) {
      const [north, east] = moves[event.key];
      this.cursor = {
        latitude: round(start.latitude + north * KEY_STEP_KM / KM_PER_DEGREE, 6),
        longitude: round(start.longitude + east * KEY_STEP_KM / (KM_PER_DEGREE * this.view.cos), 6),
      };
      this.element.dispatchEvent(new CustomEvent("cursor", { detail: this.cursor }));
      event.preventDefault();
    } else if ((event.key === "Enter" || event.key === " ") && this.cursor) {
      const point = this.cursor;
      this.cursor = null;
      this.onPick(point.latitude, point.longitude);
      event.preventDefault();
    }
  }
}

function meMarker([x, y]) {
  return svg("g", { class: "me" },
    svg("circle", { cx: x, cy: y, r: 6 }),
    svg("title", {}, "You"));
}

/** The centre and span that show every store, radius and the shopper. */
function frame(stores, radii, me) {
  const points = stores.map((s) => [s.latitude, s.longitude, 0.3]);
  radii.forEach((r) => points.push([r.latitude, r.longitude, r.km]));
  if (me) points.push([me.latitude, me.longitude, 0.3]);
  if (points.length === 0) points.push([19.4326, -99.1332, 1]);
  const cos = Math.cos((points[0][0] * Math.PI) / 180) || 1;
  const bounds = points.reduce((b, [lat, lon, reach]) => ({
    south: Math.min(b.south, lat - reach / KM_PER_DEGREE),
    north: Math.max(b.north, lat + reach / KM_PER_DEGREE),
    west: Math.min(b.west, lon - reach / (KM_PER_DEGREE * cos)),
    east: Math.max(b.east, lon + reach / (KM_PER_DEGREE * cos)),
  }), { south: 90, north: -90, west: 180, east: -180 });
  const spanKm = Math.max(MIN_SPAN_KM,
    (bounds.north - bounds.south) * KM_PER_DEGREE,
    (bounds.east - bounds.west) * KM_PER_DEGREE * cos) * 1.1;
  const centre = { latitude: (bounds.north + bounds.south) / 2, longitude: (bounds.east + bounds.west) / 2 };
  return { centre, spanKm, cos };
}

function round(value, places = 1) {
  const factor = 10 ** places;
  return Math.round(value * factor) / factor;
}

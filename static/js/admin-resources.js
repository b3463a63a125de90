// admin-resources.js — the console's CRUD sections: one description per
// resource (its path, table columns and form fields) and one generic view
// that lists, creates, edits and deletes, showing each field's validation
// error (API.md "Errors": `fields`) beside that field.

import { h, replaceChildren, money, when } from "./dom.js";

const names = (list) => list.map((item) => item.name).join(", ");

/** Datetime-local text for an RFC 3339 time (local time, to the minute). */
function localInput(iso) {
  const date = new Date(iso);
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

/** The resources the console edits. `options(ctx)` lists choices for a field. */
export const RESOURCES = [
  {
    key: "stores", title: "Stores", singular: "store", path: "/api/market/stores/",
    columns: [["ID", (o) => o.id], ["Name", (o) => o.name], ["Latitude", (o) => o.latitude], ["Longitude", (o) => o.longitude]],
    fields: [
      { name: "name", label: "Name", required: true },
      { name: "latitude", label: "Latitude", type: "number", required: true },
      { name: "longitude", label: "Longitude", type: "number", required: true },
    ],
  },
  {
    key: "products", title: "Products", singular: "product", path: "/api/market/products/",
    columns: [["ID", (o) => o.id], ["Name", (o) => o.name], ["Store", (o) => o.store.name], ["Regular price", (o) => money(o.regular_price)]],
    fields: [
      { name: "name", label: "Name", required: true },
      { name: "store_id", label: "Store", type: "select", options: (ctx) => ctx.stores, read: (o) => o.store.id },
      { name: "regular_price", label: "Regular price", type: "money", required: true },
    ],
  },
  {
    key: "segments", title: "Segments", singular: "segment", path: "/api/users/user-segments/",
    columns: [["ID", (o) => o.id], ["Name", (o) => o.name], ["Description", (o) => o.description]],
    fields: [
      { name: "name", label: "Name", required: true },
      { name: "description", label: "Description", type: "textarea" },
    ],
  },
  {
    key: "clients", title: "Client profiles", singular: "client profile", path: "/api/users/clients-profiles/",
    columns: [["ID", (o) => o.id], ["Username", (o) => o.user.username], ["Email", (o) => o.user.email],
      ["Segments", (o) => names(o.segments)], ["Location", (o) => (o.latitude === null ? "—" : `${o.latitude}, ${o.longitude}`)],
      ["Last notified", (o) => when(o.last_notification_date)]],
    fields: [
      { name: "username", label: "Username", required: true, read: (o) => o.user.username },
      { name: "password", label: "Password (8+ characters; blank keeps it)", type: "password", read: () => "" },
      { name: "email", label: "Email", type: "email", read: (o) => o.user.email || "" },
      { name: "latitude", label: "Latitude", type: "number", nullable: true },
      { name: "longitude", label: "Longitude", type: "number", nullable: true },
      { name: "segment_ids", label: "Segments", type: "multi", options: (ctx) => ctx.segments, read: (o) => o.segments.map((s) => s.id) },
    ],
  },
  {
    key: "promos", title: "Flash promos", singular: "flash promo", path: "/api/promotions/flash-promos/",
    columns: [["ID", (o) => o.id], ["Product", (o) => `${o.product.name} (${o.product.store.name})`],
      ["Price", (o) => `${money(o.promo_price)} / ${money(o.product.regular_price)}`],
      ["Window", (o) => `${when(o.start_time)} – ${when(o.end_time)}`], ["Segments", (o) => names(o.segments)],
      ["Radius", (o) => `${o.max_distance_km} km`], ["Stock", (o) => `${o.available} left · ${o.held} held · ${o.sold} sold of ${o.quantity}`],
      ["Status", (o) => o.status]],
    fields: [
      { name: "product_id", label: "Product", type: "select", options: (ctx) => ctx.products.map((p) => ({ id: p.id, name: `${p.name} (${p.store.name}, ${money(p.regular_price)})` })), read: (o) => o.product.id },
      { name: "promo_price", label: "Promo price", type: "money", required: true },
      { name: "start_time", label: "Starts", type: "datetime", initial: () => new Date().toISOString() },
      { name: "end_time", label: "Ends", type: "datetime", initial: () => new Date(Date.now() + 2 * 3600000).toISOString() },
      { name: "segment_ids", label: "Segments", type: "multi", options: (ctx) => ctx.segments, read: (o) => o.segments.map((s) => s.id) },
      { name: "max_distance_km", label: "Radius (km)", type: "number", initial: () => 2 },
      { name: "quantity", label: "Units", type: "number", initial: () => 1 },
      { name: "is_active", label: "Active", type: "checkbox", initial: () => true },
    ],
  },
];

/** One resource's section: its table and its create/edit form. */
export class ResourceView {
  constructor(resource, api, ctx, onChange) {
    Object.assign(this, { resource, api, ctx, onChange });
    this.editing = null;
    this.items = [];
    this.table = h("div", { class: "table-wrap" });
    this.form = h("form", { class: "card", id: `${resource.key}-form`, novalidate: true,
      onsubmit: (event) => this.save(event), oninput: () => { this.dirty = true; } });
    this.dirty = false;
    this.element = h("section", { id: `section-${resource.key}`, "aria-labelledby": `${resource.key}-title` },
      h("h2", { id: `${resource.key}-title` }, resource.title), this.form, this.table);
  }

  async load() {
    this.items = await this.api.listAll(this.resource.path);
    this.renderTable();
    if (!this.form.firstChild) this.renderForm();
    return this.items;
  }

  /** Redraws the form for new choices unless someone is filling it in. */
  refreshForm() {
    if (!this.dirty && !this.editing) this.renderForm();
  }

  /** Applies new stock counts to a listed promo. */
  patchItem(id, changes) {
    const item = this.items.find((candidate) => candidate.id === id);
    if (!item) return;
    Object.assign(item, changes);
    this.renderTable();
  }

  renderTable() {
    const { resource } = this;
    const head = h("tr", {}, ...resource.columns.map(([label]) => h("th", { scope: "col" }, label)), h("th", {}, "Actions"));
    const rows = this.items.map((item) => h("tr", { dataset: { id: item.id } },
      ...resource.columns.map(([, value]) => h("td", {}, value(item))),
      h("td", { class: "actions" },
        h("button", { type: "button", dataset: { action: "edit" }, "aria-label": `Edit ${resource.singular} ${item.id}`, onclick: () => this.edit(item) }, "Edit"), " ",
        h("button", { type: "button", class: "danger", dataset: { action: "delete" }, "aria-label": `Delete ${resource.singular} ${item.id}`, onclick: () => this.remove(item) }, "Delete"))));
    replaceChildren(this.table, h("table", {}, h("thead", {}, head), h("tbody", {}, ...rows)));
  }

  edit(item) {
    this.editing = item;
    this.renderForm();
    this.form.querySelector("input, select, textarea").focus();
  }

  renderForm() {
    const { resource, editing } = this;
    this.dirty = false;
    const title = editing ? `Edit ${resource.singular} #${editing.id}` : `New ${resource.singular}`;
    replaceChildren(this.form, h("h3", {}, title),
      h("div", { class: "grid" }, ...resource.fields.map((field) => this.fieldElement(field))),
      h("p", { class: "error", role: "alert", id: `${resource.key}-form-error` }),
      h("button", { type: "submit", class: "primary" }, editing ? "Save changes" : `Create ${resource.singular}`), " ",
      editing ? h("button", { type: "button", onclick: () => { this.editing = null; this.renderForm(); } }, "Cancel edit") : null);
  }

  /** Whether `field` belongs in the form now (`only(editing)` can leave it out). */
  shows(field) {
    return !field.only || field.only(this.editing);
  }

  fieldElement(field) {
    if (!this.shows(field)) return null;
    const id = `${this.resource.key}-${field.name}`;
    const errorId = `${id}-error`;
    const value = this.editing ? (field.read ? field.read(this.editing) : this.editing[field.name])
      : (field.initial ? field.initial() : "");
    const common = { id, name: field.name, "aria-describedby": errorId };
    const error = h("p", { class: "field-error", id: errorId, role: "alert" });
    if (field.type === "checkbox") {
      return h("div", {}, h("label", { class: "check", for: id }, h("input", { ...common, type: "checkbox", checked: Boolean(value) }), field.label), error);
    }
    if (field.type === "multi") {
      const chosen = new Set(value || []);
      return h("fieldset", { id, "aria-describedby": errorId }, h("legend", {}, field.label),
        ...field.options(this.ctx).map((option) => h("label", { class: "check" },
          h("input", { type: "checkbox", name: field.name, value: option.id, checked: chosen.has(option.id) }), option.name)),
        error);
    }
    return h("div", {}, h("label", { for: id }, field.label), this.inputFor(field, common, value), error);
  }

  inputFor(field, common, value) {
    if (field.type === "select") {
      return h("select", common, h("option", { value: "" }, "— choose —"),
        ...field.options(this.ctx).map((option) => h("option", { value: option.id, selected: option.id === value }, option.name)));
    }
    if (field.type === "textarea") return h("textarea", common, value || "");
    const types = { number: "number", datetime: "datetime-local", password: "password", email: "email" };
    const shown = field.type === "datetime" && value ? localInput(value) : value ?? "";
    return h("input", { ...common, type: types[field.type] || "text", step: field.type === "number" ? "any" : undefined,
      inputmode: field.type === "money" ? "decimal" : undefined, value: shown });
  }

  /** The request body from the form; blanks are left out (or null where allowed). */
  body() {
    const body = {};
    for (const field of this.resource.fields) {
      if (!this.shows(field)) continue;
      const input = this.form.querySelector(`#${this.resource.key}-${field.name}`);
      if (field.type === "multi") {
        body[field.name] = [...this.form.querySelectorAll(`input[name="${field.name}"]:checked`)].map((box) => Number(box.value));
      } else if (field.type === "checkbox") {
        body[field.name] = input.checked;
      } else if (input.value.trim() === "") {
        if (field.nullable) body[field.name] = null;
      } else if (field.type === "number" || field.type === "select") {
        const number = Number(input.value);
        body[field.name] = Number.isFinite(number) ? number : input.value;
      } else if (field.type === "datetime") {
        body[field.name] = new Date(input.value).toISOString();
      } else {
        body[field.name] = input.value.trim();
      }
    }
    return body;
  }

  async save(event) {
    event.preventDefault();
    this.clearErrors();
    const path = this.editing ? `${this.resource.path}${this.editing.id}/` : this.resource.path;
    try {
      await this.api.request(this.editing ? "PATCH" : "POST", path, this.body());
      this.editing = null;
      this.renderForm();
      await this.load();
      this.onChange(this.resource.key);
    } catch (failure) {
      this.showErrors(failure);
    }
  }

  async remove(item) {
    if (!confirm(`Delete ${this.resource.singular} #${item.id}?`)) return;
    try {
      await this.api.request("DELETE", `${this.resource.path}${item.id}/`);
      if (this.editing && this.editing.id === item.id) {
        this.editing = null;
        this.renderForm();
      }
      await this.load();
      this.onChange(this.resource.key);
    } catch (failure) {
      this.showErrors(failure);
    }
  }

  clearErrors() {
    this.form.querySelectorAll(".field-error, .error").forEach((element) => { element.textContent = ""; });
  }

  /** Each field's messages by that field; the rest (and non-field errors) above the button. */
  showErrors(failure) {
    const rest = [];
    for (const [name, messages] of Object.entries(failure.fields)) {
      const slot = this.form.querySelector(`#${this.resource.key}-${name}-error`);
      if (slot) slot.textContent = messages.join(" ");
      else rest.push(`${name}: ${messages.join(" ")}`);
    }
    if (rest.length || Object.keys(failure.fields).length === 0) {
      this.form.querySelector(`#${this.resource.key}-form-error`).textContent = rest.length ? rest.join("; ") : failure.message;
    }
  }
}

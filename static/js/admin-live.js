// admin-live.js — the console's live sections: running promos whose
// available/held/sold follow `promo.stock` frames, and raffle campaigns whose
// counts follow `raffle.stats` frames, with create, edit, delete, open,
// cancel and finish (showing the winners and the draw's proof). Both reload
// from REST after every (re)connect.

import { h, replaceChildren, money, when } from "./dom.js";
import { ResourceView } from "./admin-resources.js";
import { randomKey } from "./api.js";

/** The table of running promos. */
export class RunningView {
  constructor(api) {
    this.api = api;
    this.promos = new Map();
    this.body = h("tbody");
    this.element = h("section", { id: "section-running", "aria-labelledby": "running-title" },
      h("h2", { id: "running-title" }, "Running now"),
      h("p", { class: "hint" }, "Available, held and sold units update live."),
      h("div", { class: "table-wrap" }, h("table", { id: "running-table" },
        h("thead", {}, h("tr", {}, ...["ID", "Product", "Store", "Price", "Ends", "Available", "Held", "Sold", "Status"]
          .map((label) => h("th", { scope: "col" }, label)))), this.body)),
      h("p", { class: "hint", id: "running-empty" }, "No promo is running."));
  }

  async load() {
    const running = await this.api.listAll("/api/promotions/flash-promos/running/");
    this.promos = new Map(running.map((promo) => [promo.id, promo]));
    this.render();
  }

  render() {
    const rows = [...this.promos.values()].map((promo) => h("tr", { dataset: { promoId: promo.id } },
      h("td", {}, promo.id), h("td", {}, promo.product.name), h("td", {}, promo.product.store.name),
      h("td", {}, money(promo.promo_price)), h("td", {}, when(promo.end_time)),
      h("td", { class: "available" }, promo.available), h("td", { class: "held" }, promo.held),
      h("td", { class: "sold" }, promo.sold), h("td", { class: "status" }, promo.status)));
    replaceChildren(this.body, ...rows);
    this.element.querySelector("#running-empty").hidden = rows.length > 0;
  }

  /** A `promo.stock` frame; an unknown promo (just started) reloads the table. */
  stock({ promo_id, available, held, sold, status }) {
    const promo = this.promos.get(promo_id);
    if (!promo) return this.load();
    Object.assign(promo, { available, held, sold, status });
    this.render();
    return null;
  }

  ended({ promo_id }) {
    this.promos.delete(promo_id);
    this.render();
  }
}

const settled = (campaign) => campaign && (campaign.status === "finished" || campaign.status === "cancelled");

const CAMPAIGN = {
  key: "campaigns", title: "Raffle campaigns", singular: "campaign", path: "/api/raffles/campaigns/",
  columns: [["ID", (o) => o.id], ["Name", (o) => o.name], ["Status", (o) => h("span", { class: "status" }, o.status)],
    ["Opens", (o) => when(o.opens_at)], ["Closes", (o) => when(o.closes_at)],
    ["Entries", (o) => h("span", { class: "subscriber-count" }, o.subscriber_count)],
    ["Verified", (o) => h("span", { class: "verified-count" }, o.verified_count)],
    ["Winners", (o) => h("span", { class: "winners" }, `${winnersOf(o).map((w) => w.email).join(", ") || "—"} (${o.winners_count} to draw)`)],
    ["Commitment", (o) => (o.seed_commitment ? h("code", { title: o.seed_commitment }, `${o.seed_commitment.slice(0, 12)}…`) : "—")],
    ["Finished", (o) => when(o.finished_at)]],
  fields: [
    { name: "status", label: "Start as", type: "select", only: (editing) => !editing, initial: () => "open",
      options: () => [{ id: "open", name: "Open now" }, { id: "draft", name: "Draft (open later)" }] },
    { name: "name", label: "Name", required: true },
    { name: "description", label: "Description", type: "textarea" },
    { name: "admin_email", label: "Admin email", type: "email", required: true },
    { name: "winners_count", label: "Winners to draw (1–1000)", type: "number", initial: () => 1, only: (editing) => !settled(editing) },
    { name: "opens_at", label: "Opens by itself at (drafts)", type: "datetime", nullable: true, only: (editing) => !editing || editing.status === "draft" },
    { name: "closes_at", label: "Stops taking entries at", type: "datetime", nullable: true, only: (editing) => !settled(editing) },
    { name: "email_subject", label: "Verification email subject", initial: () => "Confirm your entry" },
    { name: "email_template", label: "Verification email body ({{verify_url}} is the link)", type: "textarea", initial: () => "Hi! Confirm your entry: {{verify_url}}" },
  ],
};

function winnersOf(campaign) {
  if (Array.isArray(campaign.winners) && campaign.winners.length) return campaign.winners;
  return campaign.winner ? [campaign.winner] : [];
}

/** Campaigns: the generic CRUD view plus live counts, the lifecycle buttons and the draw proof. */
export class CampaignsView extends ResourceView {
  constructor(api) {
    super(CAMPAIGN, api, {}, () => {});
    this.result = h("div", { class: "result", id: "draw-result", role: "status" });
    this.proof = h("div", { class: "result", id: "draw-proof", "aria-live": "polite" });
    this.element.insertBefore(this.result, this.table);
    this.element.insertBefore(this.proof, this.table);
  }

  renderTable() {
    super.renderTable();
    for (const row of this.table.querySelectorAll("tbody tr")) {
      const campaign = this.items.find((item) => String(item.id) === row.dataset.id);
      row.dataset.campaignId = campaign.id;
      const actions = row.querySelector("td.actions");
      const button = (action, label, onclick) => actions.append(" ", h("button", { type: "button", dataset: { action },
        "aria-label": `${label} campaign ${campaign.id}`, onclick }, label));
      if (campaign.status === "draft") button("open", "Open", () => this.move(campaign, "open"));
      if (campaign.status === "open") button("finish", "Finish & draw", () => this.finish(campaign));
      if (campaign.status === "draft" || campaign.status === "open") button("cancel", "Cancel", () => this.move(campaign, "cancel"));
      if (campaign.seed_commitment) button("proof", "Proof", () => this.showProof(campaign));
    }
  }

  /** A `raffle.stats` frame. */
  stats({ campaign_id, subscriber_count, verified_count }) {
    const campaign = this.items.find((item) => item.id === campaign_id);
    if (!campaign) return;
    Object.assign(campaign, { subscriber_count, verified_count });
    const row = this.table.querySelector(`tr[data-campaign-id="${campaign_id}"]`);
    if (row) {
      row.querySelector(".subscriber-count").textContent = subscriber_count;
      row.querySelector(".verified-count").textContent = verified_count;
    }
  }

  /** `open/` or `cancel/`. */
  async move(campaign, action) {
    this.result.textContent = "";
    if (action === "cancel" && !confirm(`Cancel campaign #${campaign.id}? There will be no draw.`)) return;
    try {
      const answer = await this.api.request("POST", `${CAMPAIGN.path}${campaign.id}/${action}/`, {});
      this.result.textContent = `${answer.name} is ${answer.status}.`;
      await this.load();
    } catch (failure) {
      this.result.textContent = failure.message;
    }
  }

  async finish(campaign) {
    this.result.textContent = "";
    try {
      const answer = await this.api.request("POST", `${CAMPAIGN.path}${campaign.id}/finish_campaign/`, {},
        { idempotencyKey: randomKey() });
      const winners = answer.winners && answer.winners.length ? answer.winners : [answer.winner];
      replaceChildren(this.result, h("strong", {}, `${campaign.name}: `),
        `${winners.length === 1 ? "the winner is" : "the winners are"} `,
        winners.map((winner) => winner.email).join(", "), ` (of ${answer.campaign.verified_count} verified entries).`);
      await this.load();
      await this.showProof(answer.campaign);
    } catch (failure) {
      this.result.textContent = failure.code === "no_verified_subscribers"
        ? "No verified entry yet: the campaign stays open." : failure.message;
    }
  }

  /** The public `draw/` document: the commitment, and after the draw what anyone can check. */
  async showProof(campaign) {
    try {
      const draw = await this.api.request("GET", `${CAMPAIGN.path}${campaign.id}/draw/`);
      const item = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
      const rows = [item("Seed commitment (SHA-256 of the seed)", h("code", { class: "commitment" }, draw.seed_commitment))];
      if (draw.seed) {
        rows.push(item("Seed", h("code", { class: "seed" }, draw.seed)),
          item("Entries", `${draw.entry_count} (hex SHA-256 of each verified address, by subscriber id)`),
          item("Entries digest", h("code", { class: "digest" }, draw.entries_digest)),
          item("Winners (positions in the entries, draw order)", h("span", { class: "positions" }, draw.winners.join(", "))),
          item("Entries file", h("a", { href: draw.entries_url, class: "entries-link" }, "entries.txt")));
      } else {
        rows.push(item("Seed", "kept secret until the draw"));
      }
      replaceChildren(this.proof, h("h3", {}, `Draw proof: ${campaign.name}`), h("dl", {}, ...rows.flat()));
    } catch (failure) {
      this.proof.textContent = failure.message;
    }
  }
}

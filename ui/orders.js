// The orders listing: newest first, filtered by status, user or order id, a page at a
// time by the API's cursor; the filter lives in the URL, so a view can be shared.

import { get, post } from "./api.js";
import { amount, badge, count, h, time } from "./format.js";
import { fail, session } from "./session.js";

const PAGE = 25;
let statuses = null;

/** The statuses the listing filters by, from the API's own document (so the page
 *  keeps no list of its own), read once. */
async function knownStatuses() {
  if (!statuses) {
    const doc = await get("/openapi.json");
    const parameter = doc.paths["/orders"].get.parameters.find((p) => p.name === "status");
    let schema = parameter.schema;
    if (schema.$ref) schema = doc.components.schemas[schema.$ref.split("/").pop()];
    statuses = schema.enum;
  }
  return statuses;
}

export async function render(view, params) {
  const filter = {
    status: params.get("status") || "",
    user_id: params.get("user_id") || "",
    order_id: params.get("order_id") || "",
  };
  const cursor = params.get("cursor") || "";
  const form = filterForm(await knownStatuses(), filter);
  const results = h("div", { id: "results" });
  view.append(h("h1", {}, "Orders"), form, results);

  if (filter.order_id) {
    const found = await get(`/orders/${encodeURIComponent(filter.order_id)}`).catch((error) => {
      if (error.status === 404 || error.status === 400) return null;
      throw error;
    });
    results.append(found ? table([found]) : h("p", { class: "muted" }, "No order with that id (or not yours)."));
    return null;
  }

  const query = new URLSearchParams({ limit: String(PAGE) });
  if (filter.status) query.set("status", filter.status);
  if (filter.user_id) query.set("user_id", filter.user_id);
  if (cursor) query.set("cursor", cursor);
  const show = (page) =>
    results.replaceChildren(
      page.orders.length ? table(page.orders) : h("p", { class: "muted" }, "No orders match."),
      pager(filter, cursor, page.next_cursor, page.orders.length),
    );
  show(await get(`/orders?${query}`));
  if (session.admin && (filter.status === "" || filter.status === "Failed")) {
    // Once requeued, the listing is read again (it no longer shows them as Failed).
    const reload = async () => show(await get(`/orders?${query}`));
    view.insertBefore(bulkRetry(filter, () => reload().catch(fail)), results);
  }
  return null;
}

function filterForm(statuses, filter) {
  const apply = (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const query = new URLSearchParams();
    for (const key of ["status", "user_id", "order_id"]) {
      const value = String(data.get(key) || "").trim();
      if (value) query.set(key, value);
    }
    location.hash = `#/orders${query.size ? "?" + query : ""}`;
  };
  return h(
    "form",
    { class: "filters", id: "order-filters", onsubmit: apply, role: "search" },
    h(
      "label",
      {},
      "Status ",
      h(
        "select",
        { name: "status", id: "filter-status" },
        h("option", { value: "" }, "any"),
        statuses.map((s) => h("option", { value: s, selected: s === filter.status }, s)),
      ),
    ),
    h("label", {}, "User ", h("input", { name: "user_id", id: "filter-user", value: filter.user_id, autocomplete: "off" })),
    h(
      "label",
      {},
      "Order id ",
      h("input", { name: "order_id", id: "filter-order", value: filter.order_id, autocomplete: "off", size: 38 }),
    ),
    h("button", { type: "submit" }, "Apply"),
    h("a", { href: "#/orders", class: "button secondary" }, "Clear"),
  );
}

function table(orders) {
  return h(
    "table",
    { id: "orders-table" },
    h(
      "thead",
      {},
      h("tr", {}, ["Order", "User", "Amount", "Status", "Created", "Attempts"].map((t) => h("th", { scope: "col" }, t))),
    ),
    h(
      "tbody",
      {},
      orders.map((o) =>
        h(
          "tr",
          { "data-order": o.order_id },
          h("td", { class: "mono" }, h("a", { href: `#/orders/${o.order_id}` }, o.order_id)),
          h("td", {}, o.user_id),
          h("td", { class: "number" }, amount(o.total_amount)),
          h("td", {}, badge(o.status)),
          h("td", {}, time(o.created_at)),
          h("td", { class: "number" }, o.attempts === undefined ? "–" : count(o.attempts)),
        ),
      ),
    ),
  );
}

function pager(filter, cursor, next, shown) {
  const query = (nextCursor) => {
    const q = new URLSearchParams();
    if (filter.status) q.set("status", filter.status);
    if (filter.user_id) q.set("user_id", filter.user_id);
    if (nextCursor) q.set("cursor", nextCursor);
    return `#/orders${q.size ? "?" + q : ""}`;
  };
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("span", { class: "muted" }, `${count(shown)} shown, newest first`),
    cursor ? h("a", { href: query(""), class: "button secondary" }, "First page") : null,
    next ? h("a", { href: query(next), class: "button", id: "next-page" }, "Next page") : null,
  );
}

/**
 * "Retry every Failed order matching the filter": a dry run counts them, a dialog asks
 * to confirm that number, and the retry then takes exactly what was counted (the dry
 * run's `failed_by` bounds it).
 */
function bulkRetry(filter, onDone) {
  const outcome = h("p", { class: "outcome", id: "bulk-outcome", role: "status", "aria-live": "polite" });
  const message = h("p", { id: "bulk-message" });
  const confirm = h("button", { type: "button", id: "bulk-confirm", class: "danger" }, "Retry them");
  const cancel = h("button", { type: "button", class: "secondary", id: "bulk-cancel" }, "Keep them failed");
  const dialog = h(
    "dialog",
    { id: "bulk-dialog", "aria-labelledby": "bulk-title" },
    h("h2", { id: "bulk-title" }, "Retry failed orders"),
    message,
    h("div", { class: "actions" }, confirm, cancel),
  );
  const base = filter.user_id ? { user_id: filter.user_id } : {};
  let counted = null;
  const start = h("button", { type: "button", id: "bulk-retry" }, "Retry every Failed order matching the filter…");
  start.addEventListener("click", async () => {
    outcome.className = "outcome";
    outcome.textContent = "Counting…";
    try {
      counted = await post("/orders/retry", { ...base, dry_run: true });
    } catch (error) {
      if (error.status === 401) return fail(error);
      outcome.className = "outcome error";
      outcome.textContent = `Refused: ${error.message}`;
      return;
    }
    outcome.textContent = "";
    if (counted.matched === 0) {
      outcome.textContent = "No Failed order matches the filter.";
      return;
    }
    const whose = filter.user_id ? ` of user ${filter.user_id}` : "";
    message.textContent = `Put ${count(counted.matched)} Failed order${counted.matched === 1 ? "" : "s"}${whose} back in the queue? Each starts again with a fresh set of attempts.`;
    dialog.showModal();
    confirm.focus();
  });
  cancel.addEventListener("click", () => dialog.close());
  confirm.addEventListener("click", async () => {
    dialog.close();
    start.disabled = true;
    outcome.className = "outcome";
    outcome.textContent = "Retrying…";
    try {
      const done = await post("/orders/retry", { ...base, failed_by: counted.failed_by });
      outcome.textContent = `Requeued ${count(done.requeued)} order${done.requeued === 1 ? "" : "s"}.`;
      onDone();
    } catch (error) {
      if (error.status === 401) return fail(error);
      outcome.className = "outcome error";
      outcome.textContent = `Refused: ${error.message}`;
    } finally {
      start.disabled = false;
    }
  });
  return h("div", { class: "bulk" }, start, outcome, dialog);
}

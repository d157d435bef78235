// Webhook endpoints: their health (last success, failing since, failed and pending
// deliveries, disabled and why); for admins, adding one, disabling or enabling it,
// rotating its secret (shown once) and sending again what failed since a time.

import { call, get, post } from "./api.js";
import { ago, h } from "./format.js";
import { fail, session } from "./session.js";

/** Deliveries counted per endpoint and status, at most this many (then "100+"). */
const COUNT_UP_TO = 100;

export async function render(view) {
  view.append(h("h1", {}, "Webhooks"));
  if (!session.seesAll) {
    view.append(h("p", {}, "Webhook endpoints are shown to tokens with the orders:read or orders:admin scope."));
    return null;
  }
  const outcome = h("div", { class: "outcome", id: "webhook-outcome", role: "status", "aria-live": "polite" });
  const list = h("div", { id: "webhook-list" });
  const refresh = async () => {
    const rows = await withCounts();
    // A redraw keeps what an operator was typing in a row, and where.
    const typed = new Map(
      [...list.querySelectorAll("tr[data-webhook]")].map((tr) => [tr.dataset.webhook, tr.querySelector("input")?.value]),
    );
    const focused = document.activeElement?.closest?.("tr[data-webhook]")?.dataset.webhook;
    list.replaceChildren(table(rows, session.admin ? { outcome, refresh } : null));
    for (const tr of list.querySelectorAll("tr[data-webhook]")) {
      const input = tr.querySelector("input");
      if (input && typed.get(tr.dataset.webhook)) input.value = typed.get(tr.dataset.webhook);
      if (input && focused === tr.dataset.webhook) input.focus();
    }
  };
  if (session.admin) view.append(await addForm(outcome, refresh));
  view.append(outcome, list);
  await refresh();
  // Kept fresh, but never redrawn under an operator who is using it.
  const busy = () =>
    list.contains(document.activeElement) || [...list.querySelectorAll("input")].some((input) => input.value);
  const timer = setInterval(() => {
    if (!document.hidden && !busy()) refresh().catch(fail);
  }, 10000);
  return () => clearInterval(timer);
}

/** The endpoints with their health, read-only (the overview's table). */
export async function healthTable() {
  return table(await withCounts(), null);
}

/** Every endpoint, with its deliveries counted. */
async function withCounts() {
  const { webhooks } = await get("/webhooks");
  return Promise.all(webhooks.map(async (endpoint) => ({ endpoint, counts: await counts(endpoint.id) })));
}

/** How many deliveries of an endpoint are failed and pending, up to COUNT_UP_TO. */
async function counts(id) {
  const of = async (status) => {
    const page = await get(`/webhooks/${id}/deliveries?status=${status}&limit=${COUNT_UP_TO}`);
    return page.deliveries.length >= COUNT_UP_TO && page.next_cursor ? `${COUNT_UP_TO}+` : String(page.deliveries.length);
  };
  const [failed, pending] = await Promise.all([of("failed"), of("pending")]);
  return { failed, pending };
}

/** The event types an endpoint may subscribe to, from the API's own document. */
async function eventTypes() {
  const doc = await get("/openapi.json");
  return doc.components.schemas.EventTypeName.enum;
}

/** A secret, shown once, with what to do with it. */
function secretBox(label, secret) {
  return h(
    "div",
    { class: "secret" },
    h("p", {}, `${label} Copy it now: it is not shown again.`),
    h("code", { id: "shown-secret" }, secret),
  );
}

async function addForm(outcome, refresh) {
  const types = await eventTypes();
  const form = h(
    "form",
    { class: "filters", id: "add-webhook" },
    h("label", {}, "URL ", h("input", { name: "url", id: "webhook-url", type: "url", required: true, size: 40, autocomplete: "off" })),
    h("label", {}, "Description ", h("input", { name: "description", id: "webhook-description", autocomplete: "off" })),
    h(
      "fieldset",
      { class: "types" },
      h("legend", {}, "Event types (none ticked: all)"),
      types.map((type) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "event_types", value: type }), ` ${type}`)),
    ),
    h("button", { type: "submit" }, "Add endpoint"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { url: String(data.get("url")).trim() };
    const description = String(data.get("description") || "").trim();
    if (description) body.description = description;
    const ticked = data.getAll("event_types").map(String);
    if (ticked.length) body.event_types = ticked;
    const button = form.querySelector("button[type=submit]");
    await act(outcome, button, async () => {
      const created = await post("/webhooks", body);
      form.reset();
      return secretBox(`Added ${created.url}. Its signing secret:`, created.secret);
    }, refresh);
  });
  return h("section", { "aria-labelledby": "add-title" }, h("h2", { id: "add-title" }, "Add an endpoint"), form);
}

/**
 * Runs an action with `control` disabled (no double submit), shows what it did (a
 * secret at once, before anything else can fail) or, readably, why not; then redraws
 * the list, whose failure says so without hiding the outcome.
 */
async function act(outcome, control, action, refresh) {
  control.disabled = true;
  outcome.className = "outcome";
  outcome.replaceChildren("Working…");
  try {
    outcome.replaceChildren(await action());
  } catch (error) {
    control.disabled = false;
    if (error.status === 401) return fail(error);
    outcome.className = "outcome error";
    outcome.replaceChildren(`Refused: ${error.message}`);
    return;
  }
  control.disabled = false;
  try {
    await refresh();
  } catch (error) {
    fail(error);
  }
}

/** The endpoints' table; with `acting` ({outcome, refresh}), each row's actions too. */
function table(rows, acting) {
  if (!rows.length) return h("p", { class: "muted" }, "No webhook endpoints.");
  const headings = ["URL", "Health", "Last success", "Failing since", "Failed", "Pending", "Events"];
  if (acting) headings.push("Actions");
  return h(
    "table",
    { id: "webhooks-table" },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      rows.map(({ endpoint, counts }) =>
        h(
          "tr",
          { "data-webhook": endpoint.id },
          h("td", { class: "wrap" }, endpoint.url, endpoint.description ? h("div", { class: "muted" }, endpoint.description) : null),
          h("td", { "data-field": "health" }, health(endpoint)),
          h("td", { "data-field": "last-success" }, endpoint.last_delivered_at ? ago(endpoint.last_delivered_at) : "never"),
          h("td", {}, endpoint.failing_since ? ago(endpoint.failing_since) : "–"),
          h("td", { class: "number", "data-field": "failed" }, counts.failed),
          h("td", { class: "number", "data-field": "pending" }, counts.pending),
          h("td", { class: "wrap" }, endpoint.event_types ? endpoint.event_types.join(", ") : "all"),
          acting ? h("td", {}, actions(endpoint, acting.outcome, acting.refresh)) : null,
        ),
      ),
    ),
  );
}

function health(endpoint) {
  if (endpoint.disabled) {
    return [
      h("span", { class: "badge health-disabled" }, "disabled"),
      endpoint.disabled_reason ? h("div", { class: "small" }, endpoint.disabled_reason) : null,
    ];
  }
  if (endpoint.failing_since) return h("span", { class: "badge health-failing" }, "failing");
  return h("span", { class: "badge health-ok" }, "healthy");
}

function actions(endpoint, outcome, refresh) {
  const path = `/webhooks/${endpoint.id}`;
  const toggle = h("button", { type: "button", class: "secondary", "data-action": "toggle" }, endpoint.disabled ? "Enable" : "Disable");
  toggle.addEventListener("click", () =>
    act(outcome, toggle, async () => {
      const changed = await call("PATCH", path, { disabled: !endpoint.disabled });
      return `${changed.url} is ${changed.disabled ? "disabled" : "enabled"}.`;
    }, refresh),
  );
  const rotate = h("button", { type: "button", class: "secondary", "data-action": "rotate" }, "Rotate secret");
  rotate.addEventListener("click", () =>
    act(outcome, rotate, async () => {
      const rotated = await post(`${path}/rotate-secret`);
      return secretBox(`New secret for ${endpoint.url} (the old one also signs for 24 hours):`, rotated.secret);
    }, refresh),
  );
  const since = h("input", { type: "datetime-local", step: 1, required: true, "data-field": "since" });
  const recover = h(
    "form",
    { class: "inline", "data-action": "recover" },
    h("label", { class: "small" }, "Failed since (UTC) ", since),
    h("button", { type: "submit", class: "secondary" }, "Recover since"),
  );
  recover.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = recover.querySelector("button");
    act(outcome, button, async () => {
      // A datetime-local value leaves out zero seconds; RFC 3339 needs them.
      const local = since.value.length === 16 ? `${since.value}:00` : since.value;
      const done = await post(`${path}/recover`, { since: `${local}Z` });
      since.value = "";
      return `${done.recovered} failed deliver${done.recovered === 1 ? "y is" : "ies are"} owed again to ${endpoint.url}.`;
    }, refresh);
  });
  return h("div", { class: "row-actions" }, toggle, rotate, recover);
}

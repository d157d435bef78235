// One order: its fields, its timeline of events (attempts with their errors, requeues,
// the result), live while the page is open; and for admins, retry and cancel.

import { get, post } from "./api.js";
import { amount, badge, clock, count, h, time } from "./format.js";
import { keepFollowing } from "./live.js";
import { fail, session } from "./session.js";

export async function render(view, id) {
  const path = `/orders/${encodeURIComponent(id)}`;
  let order = await get(path);
  const history = await get(`${path}/events`);
  const fields = h("dl", { class: "fields", id: "order-fields" });
  const actions = h("div", { class: "actions", id: "order-actions" });
  const outcome = h("p", { class: "outcome", id: "action-outcome", role: "status", "aria-live": "polite" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  view.append(
    h("p", {}, h("a", { href: "#/orders" }, "← Orders")),
    h("h1", {}, "Order ", h("span", { class: "mono" }, id)),
    fields,
    session.admin ? h("section", { "aria-label": "Actions" }, actions, outcome) : null,
    h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline),
  );

  const seen = new Set();
  const types = [];
  let shownStatus = null;
  const show = (next) => {
    order = next;
    fields.replaceChildren(...orderFields(order));
    // Rebuilt only when the status changes, so a reason being typed, the focus and a
    // button waiting on its answer survive events that change nothing they offer.
    if (session.admin && order.status !== shownStatus) {
      actions.replaceChildren(...orderActions(order, path, outcome, show, types));
    }
    shownStatus = order.status;
  };
  /** Adds an event to the timeline; false if it was there already. */
  const addEvent = (event) => {
    if (seen.has(event.event_id)) return false;
    seen.add(event.event_id);
    types.push(event.type);
    timeline.append(timelineItem(event));
    return true;
  };
  history.events.forEach(addEvent);
  // The last event holds the order as it is now (the order was read before its
  // events, and may have changed in between).
  show(history.events.length ? history.events[history.events.length - 1].data : order);
  const last = history.events.length ? history.events[history.events.length - 1].position : 0;

  return keepFollowing({
    path: `${path}/events`,
    after: last,
    onEvent: (event) => {
      if (addEvent(event.data)) show(event.data.data);
    },
    poll: async (position) => {
      const again = await get(`${path}/events`);
      const fresh = again.events.filter(addEvent);
      if (fresh.length) show(fresh[fresh.length - 1].data);
      return again.events.length ? again.events[again.events.length - 1].position : position;
    },
  });
}

function orderFields(o) {
  const rows = [
    ["Status", badge(o.status)],
    ["User", o.user_id],
    ["Amount", amount(o.total_amount)],
    ["Items", o.item_ids.join(", ")],
    ["Created", time(o.created_at)],
    ["Attempts", count(o.attempts ?? 0)],
    o.next_attempt_at ? ["Next attempt", time(o.next_attempt_at)] : null,
    o.last_error ? [o.status === "Completed" ? "Error of an earlier attempt" : "Last error", o.last_error] : null,
    o.completed_at ? ["Completed", time(o.completed_at)] : null,
    o.failed_at ? ["Dead-lettered", time(o.failed_at)] : null,
    o.cancelled_at ? ["Cancelled", time(o.cancelled_at)] : null,
    o.cancel_reason ? ["Cancel reason", o.cancel_reason] : null,
    o.result ? ["Result", h("code", {}, JSON.stringify(o.result))] : null,
  ].filter(Boolean);
  return rows.flatMap(([label, value]) => [h("dt", {}, label), h("dd", { "data-field": label }, value)]);
}

/** The actions the order's status allows; each shows what came of it. `types` are
 *  the event types the timeline has received, in order. */
function orderActions(o, path, outcome, show, types) {
  const act = async (button, call, done, eventType) => {
    button.disabled = true;
    outcome.className = "outcome";
    outcome.textContent = "Working…";
    const before = types.length;
    try {
      const next = await call();
      outcome.textContent = done(next);
      // The live timeline may already be past the answer (a retried order can be
      // completed before its retry is answered): show the answer only if not.
      if (!types.slice(before).includes(eventType)) show(next);
    } catch (error) {
      if (error.status === 401) return fail(error);
      outcome.className = "outcome error";
      outcome.textContent = `Refused: ${error.message}`;
      button.disabled = false;
    }
  };
  const buttons = [];
  if (o.status === "Failed") {
    const retry = h("button", { type: "button", id: "retry-order" }, "Retry");
    retry.addEventListener("click", () =>
      act(retry, () => post(`${path}/retry`), (next) => `Requeued: the order is ${next.status} again.`, "order.retried"),
    );
    buttons.push(retry);
  }
  if (o.status === "Pending" || o.status === "Failed") {
    const reason = h("input", { id: "cancel-reason", name: "reason", maxlength: 500, autocomplete: "off" });
    const cancel = h("button", { type: "submit", class: "danger", id: "cancel-order" }, "Cancel order");
    const form = h(
      "form",
      { class: "inline" },
      h("label", { for: "cancel-reason" }, "Reason (optional) "),
      reason,
      cancel,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = reason.value.trim() ? { reason: reason.value.trim() } : undefined;
      act(cancel, () => post(`${path}/cancel`, body), () => "Cancelled.", "order.cancelled");
    });
    buttons.push(form);
  }
  if (!buttons.length) buttons.push(h("span", { class: "muted" }, `No actions for a ${o.status} order.`));
  return buttons;
}

const DESCRIPTIONS = {
  "order.created": () => "Created",
  "order.processing": (o) => `Attempt ${o.attempts} started`,
  "order.attempt_failed": (o) => `Attempt ${o.attempts} failed; next attempt ${time(o.next_attempt_at)}`,
  "order.failed": (o) => `Attempt ${o.attempts} failed; dead-lettered`,
  "order.requeued": () => "Requeued (its lease ran out or its worker stopped)",
  "order.retried": () => "Retried by an operator",
  "order.completed": (o) => (o.result ? `Completed: ${JSON.stringify(o.result)}` : "Completed"),
  "order.cancelled": (o) => (o.cancel_reason ? `Cancelled: ${o.cancel_reason}` : "Cancelled"),
};

function timelineItem(event) {
  const describe = DESCRIPTIONS[event.type] || (() => event.type);
  const o = event.data;
  const failed = event.type === "order.attempt_failed" || event.type === "order.failed";
  return h(
    "li",
    { "data-type": event.type, "data-seq": event.seq },
    h("time", { datetime: event.occurred_at, title: time(event.occurred_at) }, `${time(event.occurred_at).slice(0, 10)} ${clock(event.occurred_at)}`),
    h("span", { class: "event-type" }, event.type),
    h("span", {}, describe(o)),
    failed && o.last_error ? h("span", { class: "error" }, o.last_error) : null,
  );
}

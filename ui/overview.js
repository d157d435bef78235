// The overview: counts by status (live), queue depth and the age of the oldest order
// waiting to be claimed, the latest events as they happen, and webhook endpoints with
// their health.

import { get } from "./api.js";
import { ago, badge, clock, count, duration, h, time } from "./format.js";
import { keepFollowing } from "./live.js";
import { fail, session } from "./session.js";

const RECENT = 15;

export async function render(view) {
  if (!session.seesAll) {
    view.append(
      h("h1", {}, "Overview"),
      h("p", {}, "Your token reads only its own orders: see ", h("a", { href: "#/orders" }, "Orders"), "."),
    );
    return null;
  }
  const cards = h("div", { class: "cards", id: "counts" });
  const recent = h("ol", { class: "events", id: "recent-events", "aria-live": "off" });
  const endpoints = h("div", { id: "endpoints" });
  view.append(
    h("h1", {}, "Overview"),
    h("section", { "aria-labelledby": "counts-title" }, h("h2", { id: "counts-title" }, "Orders"), cards),
    h(
      "section",
      { "aria-labelledby": "recent-title" },
      h("h2", { id: "recent-title" }, "Latest events"),
      recent,
    ),
    h("section", { "aria-labelledby": "endpoints-title" }, h("h2", { id: "endpoints-title" }, "Webhook endpoints"), endpoints),
  );

  const refreshCounts = async () => {
    const metrics = await get("/metrics");
    cards.replaceChildren(...countCards(metrics));
  };
  const refreshEndpoints = async () => {
    const list = await get("/webhooks");
    endpoints.replaceChildren(endpointTable(list.webhooks));
  };
  await Promise.all([refreshCounts(), refreshEndpoints()]);

  // Counts are re-read at most once a second however many events arrive.
  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      refreshCounts().catch(fail);
    }, 1000);
  };
  const shown = [];
  let newest = 0;
  const addEvent = (event) => {
    // A reconnect or a poll may bring events already shown.
    if (event.position <= newest) return;
    newest = event.position;
    shown.unshift(event);
    shown.length = Math.min(shown.length, RECENT);
    recent.replaceChildren(...shown.map(eventItem));
  };

  const start = await get("/events?after=latest");
  const stop = keepFollowing({
    path: "/events",
    after: start.next_after,
    onEvent: (event) => {
      addEvent(event.data);
      soon();
    },
    // Reads what the stream would have sent, a few pages at most; further behind
    // than that, it skips to the latest (the counts are read whole anyway).
    poll: async (position) => {
      let after = position;
      for (let page = 0; page < 5; page++) {
        const next = await get(`/events?after=${after}&limit=200`);
        next.events.forEach(addEvent);
        after = next.next_after;
        if (next.events.length < 200) break;
        if (page === 4) after = (await get("/events?after=latest")).next_after;
      }
      await Promise.all([refreshCounts(), refreshEndpoints()]);
      return after;
    },
  });
  const endpointTimer = setInterval(() => refreshEndpoints().catch(fail), 15000);
  return () => {
    stop();
    clearTimeout(pending);
    clearInterval(endpointTimer);
  };
}

function card(label, value, id, detail) {
  return h(
    "div",
    { class: "card", "data-key": id },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value", "data-testid": `count-${id}` }, value),
    detail ? h("div", { class: "card-detail" }, detail) : null,
  );
}

function countCards(metrics) {
  const statuses = Object.entries(metrics.order_counts).map(([status, n]) =>
    card(status, count(n), status, null),
  );
  return [
    card("All orders", count(metrics.total_orders), "total", `average processing ${duration(metrics.average_processing_time)}`),
    ...statuses,
    card("Queue depth", count(metrics.order_counts.Pending), "queue", "Pending orders, due or waiting to retry"),
    card(
      "Oldest due order waiting",
      metrics.oldest_pending_age_seconds === null ? "none" : duration(metrics.oldest_pending_age_seconds),
      "oldest",
      "time since the longest-waiting Pending order became due",
    ),
  ];
}

function eventItem(event) {
  return h(
    "li",
    {},
    h("time", { datetime: event.occurred_at, title: time(event.occurred_at) }, clock(event.occurred_at)),
    " ",
    h("span", { class: "event-type" }, event.type),
    " ",
    h("a", { href: `#/orders/${event.order_id}` }, event.order_id),
    " ",
    badge(event.data.status),
  );
}

/** The endpoints with their health; also used by the webhooks section. */
export function endpointTable(list) {
  if (!list.length) return h("p", { class: "muted" }, "No webhook endpoints.");
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ["URL", "Health", "Last success", "Failing since", "Events"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      list.map((endpoint) =>
        h(
          "tr",
          { "data-webhook": endpoint.id },
          h("td", { class: "wrap" }, endpoint.url, endpoint.description ? h("div", { class: "muted" }, endpoint.description) : null),
          h("td", {}, health(endpoint)),
          h("td", {}, endpoint.last_delivered_at ? ago(endpoint.last_delivered_at) : "never"),
          h("td", {}, endpoint.failing_since ? ago(endpoint.failing_since) : "–"),
          h("td", { class: "wrap" }, endpoint.event_types ? endpoint.event_types.join(", ") : "all"),
        ),
      ),
    ),
  );
}

function health(endpoint) {
  if (endpoint.disabled) {
    return h("span", { class: "badge health-disabled", title: endpoint.disabled_reason || "" }, "disabled");
  }
  if (endpoint.failing_since) return h("span", { class: "badge health-failing" }, "failing");
  return h("span", { class: "badge health-ok" }, "healthy");
}

// The overview: counts by status (live), queue depth and the age of the oldest order
// waiting to be claimed, the last hour by minute (created, completed, dead-lettered;
// retries), the latest events as they happen, and webhook endpoints with their health.

import { get } from "./api.js";
import { badge, clock, count, duration, h, time } from "./format.js";
import { perMinute } from "./chart.js";
import { keepFollowing } from "./live.js";
import { healthTable } from "./webhooks.js";
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
  const charts = h("div", { class: "charts", id: "charts" });
  const recent = h("ol", { class: "events", id: "recent-events", "aria-live": "off" });
  const endpoints = h("div", { id: "endpoints" });
  view.append(
    h("h1", {}, "Overview"),
    h("section", { "aria-labelledby": "counts-title" }, h("h2", { id: "counts-title" }, "Orders"), cards),
    h("section", { "aria-labelledby": "hour-title" }, h("h2", { id: "hour-title" }, "The last hour"), charts),
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
    endpoints.replaceChildren(await healthTable());
  };
  const refreshCharts = async () => {
    const activity = await get("/metrics/activity?minutes=60");
    charts.replaceChildren(...hour(activity));
  };
  await Promise.all([refreshCounts(), refreshEndpoints(), refreshCharts()]);

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
      // The charts keep their own 10 s timer.
      await refreshCounts();
      return after;
    },
  });
  const endpointTimer = setInterval(() => refreshEndpoints().catch(fail), 15000);
  const chartTimer = setInterval(() => {
    if (!document.hidden) refreshCharts().catch(fail);
  }, 10000);
  return () => {
    stop();
    clearTimeout(pending);
    clearInterval(endpointTimer);
    clearInterval(chartTimer);
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

/** The hour's charts, and its retries and dead letters in figures. */
function hour(activity) {
  const starts = activity.minutes.map((m) => m.at);
  const series = (type) => activity.minutes.map((m) => m.counts[type]);
  const totals = activity.totals;
  return [
    perMinute("Created per minute", "created", starts, series("order.created")),
    perMinute("Completed per minute", "completed", starts, series("order.completed")),
    perMinute("Dead-lettered per minute", "failed", starts, series("order.failed")),
    h(
      "div",
      { class: "cards" },
      card("Automatic retries", count(totals["order.attempt_failed"]), "retries", "failed attempts with attempts left, last hour"),
      card("Operator retries", count(totals["order.retried"]), "operator-retries", "dead letters put back, last hour"),
      card("Dead letters", count(totals["order.failed"]), "dead-letters", "orders out of attempts, last hour"),
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

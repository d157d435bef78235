// The dashboard in a real browser (Debian's Chromium, driven by playwright-core): one
// scenario per run, named on the command line, against a service that
// tests/api/dashboard/ started and filled. Exits non-zero, saying why, when the page
// does not do what the scenario expects.
//
//   BASE_URL=http://127.0.0.1:8080 node tests/browser/dashboard.mjs overview
//
// Every scenario also fails on an error in the page, a console error (other than the
// refusals of named requests the scenario provokes on purpose), or a request to another
// origin.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOTS || "target/screenshots";
const WAIT = 15_000;
const scenario = process.argv[2];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const problems = [];
const pages = [];
let expectedRefusals = [];

async function open(path = "/ui", viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  pages.push(page);
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    const url = message.location().url || "";
    if (expectedRefusals.some(([status, path]) => text.includes(`status of ${status}`) && new URL(url, BASE).pathname === path)) {
      return;
    }
    problems.push(`console error: ${text}`);
  });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol !== "data:" && url.origin !== new URL(BASE).origin) {
      problems.push(`request to another origin: ${request.url()}`);
    }
  });
  await page.goto(BASE + path);
  return page;
}

async function api(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(BASE + path, { method, headers, body: body && JSON.stringify(body) });
  assert.ok(response.ok, `${method} ${path} answered ${response.status}`);
  return response.json();
}

const number = async (page, selector) =>
  Number((await page.locator(selector).textContent()).replace(/,/g, ""));

async function until(what, check) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  return page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** Every form control of the page has a label, and at 390 px nothing scrolls sideways. */
async function checkControls(page, what) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("main input, main select, main textarea")]
      .filter((e) => e.labels.length === 0)
      .map((e) => e.id || e.name),
  );
  assert.deepEqual(unlabelled, [], `every control of ${what} is labelled`);
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), `${what} fits 390 px`);
}

async function setHidden(page, hidden) {
  await page.evaluate((value) => {
    Object.defineProperty(document, "hidden", { value, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

const scenarios = {
  /** Counts change live as orders are created; the stream pauses while the tab is
   *  hidden and resumes from its last position; the page fits 390 px. */
  async overview() {
    const response = await fetch(`${BASE}/ui`);
    const csp = response.headers.get("content-security-policy");
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|https?:/);
    assert.equal(response.headers.get("x-frame-options"), "DENY");
    assert.equal(response.headers.get("referrer-policy"), "no-referrer");

    const page = await open();
    await page.locator("[data-testid=count-total]").waitFor();
    await until("the stream to open", async () => (await page.locator("#live").textContent()) === "Live");
    const before = await number(page, "[data-testid=count-total]");
    const completed = await number(page, "[data-testid=count-Completed]");
    const charted = {
      created: await number(page, "[data-testid=total-created]"),
      completed: await number(page, "[data-testid=total-completed]"),
      failed: await number(page, "[data-testid=total-failed]"),
    };
    assert.deepEqual(charted, { created: before, completed, failed: 2 }, "the hour holds everything so far");
    assert.equal(await number(page, "[data-testid=count-retries]"), 2, "one automatic retry per dead letter");
    assert.equal(await number(page, "[data-testid=count-dead-letters]"), 2);
    for (let i = 0; i < 3; i++) {
      await api("POST", "/orders", { user_id: "carol", item_ids: ["a"], total_amount: 1234.5 });
    }
    await until("the total to count 3 more", async () => (await number(page, "[data-testid=count-total]")) === before + 3);
    await until("3 more completed", async () => (await number(page, "[data-testid=count-Completed]")) === completed + 3);
    await until("the new orders' events", async () => (await page.locator("#recent-events li", { hasText: "order.completed" }).count()) >= 3);
    // The hour's charts count them (they are read every 10 s, and on load).
    await page.reload();
    await until("the charts", async () => (await number(page, "[data-testid=total-created]")) === charted.created + 3);
    assert.equal(await number(page, "[data-testid=total-completed]"), charted.completed + 3);
    assert.equal(await number(page, "[data-testid=total-failed]"), 2);
    assert.match(
      await page.locator('[data-chart="created"] svg').getAttribute("aria-label"),
      new RegExp(`Created per minute: ${charted.created + 3} in the last 60 minutes`),
    );
    // The endpoint received it all.
    await until("the endpoint's last success", async () => {
      await page.reload();
      await page.locator('#endpoints [data-field="last-success"]').waitFor();
      return (await page.locator('#endpoints [data-field="last-success"]').textContent()) !== "never";
    });
    assert.equal(await page.locator('#endpoints [data-field="health"] .badge').textContent(), "healthy");
    await until("the stream to open again", async () => (await page.locator("#live").textContent()) === "Live");

    // Hidden: the stream closes; visible again: it resumes after the last position,
    // so the events of an order created meanwhile still arrive.
    await setHidden(page, true);
    await until("the stream to pause", async () => (await page.locator("#live").textContent()).startsWith("Paused"));
    const made = await api("POST", "/orders", { user_id: "while-hidden", item_ids: ["a"], total_amount: 1 });
    await until("the hidden order to complete", async () => (await api("GET", `/orders/${made.order_id}/status`)).status === "Completed");
    assert.equal(await page.locator("#recent-events li", { hasText: made.order_id }).count(), 0, "no event while hidden");
    await setHidden(page, false);
    await until("the events made while hidden", async () => (await page.locator("#recent-events li", { hasText: made.order_id }).count()) >= 1);
    await until("the total to count it", async () => (await number(page, "[data-testid=count-total]")) === before + 4);

    assert.match(await page.locator('[data-key="total"] .card-detail').textContent(), /^average processing (\d+ ms|\d+\.\d s)$/);
    assert.deepEqual(
      await page.evaluate(async () => {
        const f = await import("/ui/format.js");
        return [f.count(1234567), f.amount("1234.5"), f.amount("100000000000000000000000.01"), f.duration(2.43), f.duration(0.85), f.duration(200), f.duration(7300)];
      }),
      ["1,234,567", "1,234.50", "100,000,000,000,000,000,000,000.01", "2.4 s", "850 ms", "3 min 20 s", "2 h 1 min"],
    );
    await shot(page, "overview");
    // The first Tab reaches the skip link, which moves focus to the content and
    // stays on the section.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "view");
    await page.locator("[data-testid=count-total]").waitFor();

    // Every section: every control labelled, and nothing wider than a phone.
    for (const section of ["#/", "#/orders", `#/orders/${made.order_id}`, "#/webhooks"]) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${BASE}/ui${section}`);
      await page.locator("main h1").waitFor();
      await checkControls(page, section);
    }
    await page.goto(`${BASE}/ui#/`);
    await page.locator("[data-testid=count-total]").waitFor();
    await shot(page, "overview-390");
  },

  /** Filters narrow the listing; pages follow the cursor, newest first. */
  async filters() {
    const page = await open("/ui#/orders");
    const rows = page.locator("#orders-table tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 25, "a first page of 25");
    // Newest first: UUIDv7 ids sort by creation.
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.order));
    assert.deepEqual(ids, [...ids].sort().reverse());
    assert.equal(await page.locator("#orders-table tbody tr td:nth-child(3)").first().textContent(), "1,234.50");
    await page.locator("#next-page").click();
    await until("the second page", async () => (await rows.count()) === 5);

    // By keyboard: type the user and press Enter.
    await page.goto(`${BASE}/ui#/orders`);
    await page.locator("#filter-user").focus();
    await page.keyboard.type("bob");
    await page.keyboard.press("Enter");
    await until("bob's orders only", async () => (await rows.count()) === 3);
    for (const text of await page.locator("#orders-table tbody tr td:nth-child(2)").allTextContents()) {
      assert.equal(text, "bob");
    }
    await page.locator("#filter-status").selectOption("Cancelled");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByText("No orders match.").waitFor();

    const [first] = await page.evaluate(async () => (await (await fetch("/orders?user_id=bob&limit=1")).json()).orders.map((o) => o.order_id));
    await page.goto(`${BASE}/ui#/orders`);
    await page.locator("#filter-order").fill(first);
    await page.getByRole("button", { name: "Apply" }).click();
    await until("the one order", async () => (await rows.count()) === 1);
    await page.locator(`#orders-table a[href="#/orders/${first}"]`).click();
    await page.locator("#order-fields").waitFor();
  },

  /** A dead letter's timeline shows its failed attempts; retried from the page, it
   *  ends Completed, shown live. */
  async retry() {
    const id = process.env.ORDER_ID;
    const page = await open(`/ui#/orders/${id}`);
    const timeline = page.locator("#timeline li");
    await page.locator('#timeline li[data-type="order.failed"]').waitFor();
    assert.match(await page.locator('#timeline li[data-type="order.attempt_failed"]').textContent(), /card declined \(attempt 1\)/);
    assert.match(await page.locator('#timeline li[data-type="order.failed"]').textContent(), /card declined \(attempt 2\)/);
    assert.equal(await page.locator('#order-fields [data-field="Status"]').textContent(), "Failed");
    await page.locator("#retry-order").click();
    await until("the outcome", async () => /Requeued/.test(await page.locator("#action-outcome").textContent()));
    await page.locator('#timeline li[data-type="order.completed"]').waitFor({ timeout: WAIT });
    await until("Completed", async () => (await page.locator('#order-fields [data-field="Status"]').textContent()) === "Completed");
    const types = await timeline.evaluateAll((items) => items.map((item) => item.dataset.type));
    assert.deepEqual(types, [
      "order.created",
      "order.processing",
      "order.attempt_failed",
      "order.processing",
      "order.failed",
      "order.retried",
      "order.processing",
      "order.completed",
    ]);
    await shot(page, "order");
  },

  /** A Pending order cancelled from the page, with a reason; an order being processed
   *  offers no cancel. */
  async cancel() {
    const page = await open(`/ui#/orders/${process.env.BUSY_ID}`);
    await page.locator("#order-actions").waitFor();
    await page.getByText("No actions for a Processing order.").waitFor();

    await page.goto(`${BASE}/ui#/orders/${process.env.ORDER_ID}`);
    await page.locator("#cancel-order").waitFor();
    await checkControls(page, "a Pending order's page");
    await page.getByLabel("Reason (optional)").fill("customer changed their mind");
    await page.locator("#cancel-order").click();
    await until("the outcome", async () => (await page.locator("#action-outcome").textContent()) === "Cancelled.");
    await until("Cancelled", async () => (await page.locator('#order-fields [data-field="Status"]').textContent()) === "Cancelled");
    await page.locator('#timeline li[data-type="order.cancelled"]', { hasText: "customer changed their mind" }).waitFor();
    assert.equal(await page.locator("#cancel-order").count(), 0, "nothing more to cancel");
  },

  /** A bulk retry of the filtered dead letters asks to confirm how many, then
   *  requeues exactly those, not one that failed while the dialog was open. */
  async bulk() {
    const page = await open("/ui#/orders?status=Failed&user_id=alice");
    await page.locator("#orders-table tbody tr").first().waitFor();
    assert.equal(await page.locator("#orders-table tbody tr").count(), 3);
    await page.locator("#bulk-retry").click();
    await page.locator("#bulk-dialog[open]").waitFor();
    assert.match(await page.locator("#bulk-message").textContent(), /Put 3 Failed orders of user alice back/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "bulk-confirm", "focus on the choice");
    await page.keyboard.press("Escape");
    assert.equal(await page.locator("#bulk-dialog[open]").count(), 0, "Escape keeps them failed");
    await page.locator("#bulk-retry").focus();
    await page.keyboard.press("Enter");
    await page.locator("#bulk-dialog[open]").waitFor();
    await page.locator("#bulk-cancel").click();
    assert.equal(await page.locator("#bulk-dialog[open]").count(), 0, "cancelled, nothing asked");
    await page.locator("#bulk-retry").click();
    await page.locator("#bulk-dialog[open]").waitFor();
    assert.match(await page.locator("#bulk-message").textContent(), /Put 3 Failed orders/);
    // Another of alice's orders fails while the dialog is open: not what was confirmed.
    const late = await api("POST", "/orders", { user_id: "alice", item_ids: ["a"], total_amount: 9 });
    await until("the late dead letter", async () => (await api("GET", `/orders/${late.order_id}/status`)).status === "Failed");
    await page.locator("#bulk-confirm").click();
    await until("the outcome", async () => (await page.locator("#bulk-outcome").textContent()) === "Requeued 3 orders.");
    console.log(`LATE=${late.order_id}`);
  },

  /** Webhook endpoints: added (its secret shown once); a delivery failing every
   *  attempt shows as failed and the endpoint as failing; disabled and enabled again;
   *  its secret rotated; the failed delivery recovered and then delivered. */
  async webhooks() {
    expectedRefusals = [[422, "/webhooks"]];
    const page = await open("/ui#/webhooks");
    // A refusal reads as the problem's detail, naming the field.
    await page.getByLabel("URL").fill("ftp://files.example/hooks");
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await until("the refusal", async () => /^Refused: .*url/.test(await page.locator("#webhook-outcome").textContent()));
    assert.match(await page.locator("#webhook-outcome").textContent(), /http/);
    assert.equal(await page.locator("#webhooks-table").count(), 0, "nothing added");
    await page.getByLabel("URL").fill(process.env.RECEIVER_URL);
    await page.getByLabel("Description").fill("the ERP");
    await page.getByLabel("order.completed").check();
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await page.locator("#shown-secret").waitFor();
    const first = await page.locator("#shown-secret").textContent();
    assert.match(first, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const row = page.locator("#webhooks-table tbody tr").first();
    await until("the endpoint listed", async () => /the ERP/.test(await row.textContent()));
    assert.equal(await row.locator('[data-field="health"] .badge').textContent(), "healthy");

    // An order completes; the receiver fails every attempt of its delivery.
    await api("POST", "/orders", { user_id: "gina", item_ids: ["a"], total_amount: 7 });
    const shows = async (field, text) => {
      await page.reload();
      const cell = row.locator(field === "health" ? '[data-field="health"] .badge' : `[data-field="${field}"]`);
      await cell.waitFor();
      return (await cell.textContent()) === text;
    };
    await until("the failed delivery", () => shows("failed", "1"));
    assert.equal(await row.locator('[data-field="health"] .badge').textContent(), "failing");
    assert.equal(await row.locator('[data-field="last-success"]').textContent(), "never");

    await row.getByRole("button", { name: "Disable" }).click();
    await until("disabled", async () => (await row.locator('[data-field="health"] .badge').textContent()) === "disabled");
    await row.getByRole("button", { name: "Enable" }).click();
    await until("enabled", async () => (await row.locator('[data-field="health"] .badge').textContent()) !== "disabled");

    await row.getByRole("button", { name: "Rotate secret" }).click();
    await until("a new secret", async () => {
      const shown = await page.locator("#shown-secret").textContent().catch(() => first);
      return shown !== first && /^whsec_/.test(shown);
    });

    await row.getByLabel("Failed since (UTC)").fill("2020-01-01T00:00:00");
    await row.getByRole("button", { name: "Recover since" }).click();
    await until("the recovery", async () => /^1 failed delivery is owed again/.test(await page.locator("#webhook-outcome").textContent()));
    await until("the delivery", () => shows("failed", "0"));
    await until("healthy again", () => shows("health", "healthy"));
    assert.notEqual(await row.locator('[data-field="last-success"]').textContent(), "never");
    await checkControls(page, "the webhooks section");
    await page.setViewportSize({ width: 1280, height: 900 });

    await page.goto(`${BASE}/ui#/`);
    await page.locator("#endpoints [data-webhook]").waitFor();
    assert.equal(await page.locator('#endpoints [data-field="health"] .badge').textContent(), "healthy");
    assert.equal(await page.locator("#endpoints button").count(), 0, "no actions on the overview");
  },

  /** With authentication on: the page asks for a token once; an admin sees actions,
   *  a user without the admin scope sees their orders and no actions. */
  async auth() {
    // The page learns that authentication is on from a 401, and a user's token from a 403.
    expectedRefusals = [[401, "/metrics"], [403, "/metrics"]];
    const page = await open();
    await page.locator("#token-dialog[open]").waitFor();
    await page.getByLabel("Token").fill(process.env.ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("[data-testid=count-total]").waitFor();
    assert.match(await page.locator("#who").textContent(), /\(admin\)/);
    await page.reload();
    await page.locator("[data-testid=count-total]").waitFor();
    assert.equal(await page.locator("#token-dialog[open]").count(), 0, "the token is kept for the tab");
    await page.goto(`${BASE}/ui#/orders/${process.env.ORDER_ID}`);
    await page.locator("#order-actions").waitFor();

    const reader = await open(`/ui#/orders/${process.env.ORDER_ID}`);
    await reader.locator("#token-dialog[open]").waitFor();
    await reader.getByLabel("Token").fill(process.env.USER_TOKEN);
    await reader.getByRole("button", { name: "Sign in" }).click();
    await reader.locator("#order-fields").waitFor();
    assert.match(await reader.locator("#who").textContent(), /read-only/);
    assert.equal(await reader.locator("#order-actions").count(), 0, "no actions without the admin scope");
    await reader.goto(`${BASE}/ui#/orders`);
    await reader.locator("#orders-table tbody tr").first().waitFor();
    for (const text of await reader.locator("#orders-table tbody tr td:nth-child(2)").allTextContents()) {
      assert.equal(text, "alice");
    }

    // An operator with `orders:read`: every page, every order, and no action anywhere.
    const operator = await open("/ui");
    await operator.locator("#token-dialog[open]").waitFor();
    await operator.getByLabel("Token").fill(process.env.READER_TOKEN);
    await operator.getByRole("button", { name: "Sign in" }).click();
    await operator.locator("[data-testid=count-total]").waitFor();
    assert.match(await operator.locator("#who").textContent(), /read-only/);
    assert.equal(await number(operator, "[data-testid=count-total]"), 2);
    await operator.goto(`${BASE}/ui#/orders?status=Failed`);
    await operator.locator("main h1").waitFor();
    assert.equal(await operator.locator("#bulk-retry").count(), 0, "no bulk retry");
    await operator.goto(`${BASE}/ui#/orders/${process.env.ORDER_ID}`);
    await operator.locator("#order-fields").waitFor();
    assert.equal(await operator.locator("#order-actions").count(), 0, "no actions");
    await operator.goto(`${BASE}/ui#/webhooks`);
    await operator.locator("#webhook-list").waitFor();
    assert.equal(await operator.locator("#add-webhook").count(), 0, "no endpoint form");
    assert.equal(await operator.locator("#webhook-list button").count(), 0, "no endpoint actions");
  },

  /** When the service refuses the stream, the overview polls instead. */
  async fallback() {
    expectedRefusals = [[503, "/events"]];
    const page = await open();
    await page.locator("[data-testid=count-total]").waitFor();
    await until("polling", async () => (await page.locator("#live").textContent()).startsWith("Polling"));
    const before = await number(page, "[data-testid=count-total]");
    await api("POST", "/orders", { user_id: "dave", item_ids: ["a"], total_amount: 2 });
    await until("the polled total", async () => (await number(page, "[data-testid=count-total]")) === before + 1);
  },
};

try {
  assert.ok(scenarios[scenario], `no scenario ${scenario}`);
  await scenarios[scenario]();
  assert.deepEqual(problems, [], "the page ran clean");
  console.log(`${scenario}: ok`);
} catch (error) {
  console.error(`${scenario}: ${error.stack || error}`);
  if (problems.length) console.error(problems.join("\n"));
  // What each page showed when it failed: its notice, and a screenshot.
  for (const [i, page] of pages.entries()) {
    const notice = await page.locator("#notice").textContent().catch(() => null);
    if (notice) console.error(`page ${i} notice: ${notice}`);
    await shot(page, `failed-${scenario}-${i}`).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}

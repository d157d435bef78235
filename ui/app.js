// The dashboard's shell: the sections by URL fragment, each stopped (its streams
// closed) when another is shown.

import { clearNotice, fail, signIn } from "./session.js";
import * as overview from "./overview.js";
import * as orders from "./orders.js";
import * as order from "./order.js";
import * as webhooks from "./webhooks.js";

let stop = null;
let shown = 0;

/** Renders the section the fragment names, stopping the last one's streams. */
async function route() {
  if (stop) stop();
  stop = null;
  const mine = ++shown;
  clearNotice();
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  // Each section draws into a container of its own, shown only if it is still the
  // one asked for once it has loaded.
  const view = document.createElement("div");
  document.getElementById("view").replaceChildren(view);
  let section = "overview";
  let render = overview.render;
  let argument = params;
  const orderMatch = path.match(/^\/orders\/([^/]+)$/);
  if (orderMatch) {
    section = "orders";
    render = order.render;
    argument = decodeURIComponent(orderMatch[1]);
  } else if (path === "/orders") {
    section = "orders";
    render = orders.render;
  } else if (path === "/webhooks") {
    section = "webhooks";
    render = webhooks.render;
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const stopThis = await render(view, argument);
    // Another section was asked for while this one loaded: stop this one at once.
    if (mine === shown) stop = stopThis;
    else {
      view.remove();
      if (stopThis) stopThis();
    }
  } catch (error) {
    if (mine === shown) fail(error);
    else view.remove();
  }
}

/** The skip link moves focus to the content without touching the fragment (which
 *  names the section). */
function skipLink() {
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("view").focus();
  });
}

async function start() {
  skipLink();
  try {
    await signIn();
  } catch (error) {
    fail(error);
    return;
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();

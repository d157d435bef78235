// Webhook endpoints and their health: last success, how long they have been failing,
// and whether they are disabled (and why).

import { get } from "./api.js";
import { h } from "./format.js";
import { endpointTable } from "./overview.js";
import { session } from "./session.js";

export async function render(view) {
  view.append(h("h1", {}, "Webhooks"));
  if (!session.seesAll) {
    view.append(h("p", {}, "Webhook endpoints are shown to admins only."));
    return null;
  }
  const list = await get("/webhooks");
  view.append(endpointTable(list.webhooks));
  return null;
}

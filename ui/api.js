// The public API as the page uses it: the bearer token of this tab, JSON calls whose
// problems (RFC 9457) become readable messages, and Server-Sent Events read over
// fetch, because EventSource cannot send an Authorization header.

const TOKEN_KEY = "order-processor.token";

/** An answer outside 2xx: its status and, when the body was a problem, the problem. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(describeProblem(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function describeProblem(status, problem) {
  if (!problem || typeof problem !== "object") return `The service answered ${status}.`;
  let text = problem.detail || problem.title || `The service answered ${status}.`;
  // The fields named, unless the detail already says each of them.
  const unsaid = (problem.errors || []).filter((e) => !text.includes(e.message));
  if (unsaid.length) text += " " + unsaid.map((e) => `${e.field}: ${e.message}`).join("; ");
  return text;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The claims of this tab's token, read (not verified: the API does that) to know
 *  whom to greet and whether to offer actions. */
export function claims() {
  const value = token();
  if (!value) return null;
  try {
    const part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  const value = token();
  if (value) all.Authorization = `Bearer ${value}`;
  return all;
}

/** Amounts are exact decimals: keep the number's text rather than a binary float. */
function parse(text) {
  return JSON.parse(text, (key, value, context) =>
    key === "total_amount" && context && typeof context.source === "string" ? context.source : value,
  );
}

/** One call; resolves to the parsed body (or null), rejects with an ApiError. */
export async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

/**
 * Follows a Server-Sent Events stream until it ends or `signal` aborts. Calls
 * `onEvent({id, type, data})` for each event, `data` parsed as JSON. Resolves to
 * "ended" when the service closed the stream, "finished" on a 204 (nothing more will
 * come), and rejects on an error answer or a broken connection.
 */
export async function follow(path, { after, signal, onEvent, onOpen }) {
  const extra = { Accept: "text/event-stream" };
  if (after) extra["Last-Event-ID"] = String(after);
  const response = await fetch(path, { headers: headers(extra), signal });
  if (response.status === 204) return "finished";
  if (!response.ok) {
    let problem = null;
    try {
      problem = parse(await response.text());
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem);
  }
  if (onOpen) onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, type: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "ended";
    buffer += value;
    // Lines end with \n or \r\n; keep a trailing partial line for the next chunk.
    const lines = buffer.split(/\r?\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) {
          onEvent({ id: event.id, type: event.type, data: parse(event.data.join("\n")) });
        }
        event = { id: event.id, type: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "id") event.id = text;
      else if (field === "event") event.type = text;
      else if (field === "data") event.data.push(text);
    }
  }
}

// Keeps a view live: follows a stream while the tab is visible, pauses when it is
// hidden and resumes after the last position seen, and polls while the stream cannot
// be opened (for example when the service refuses more streams).

import { ApiError, follow } from "./api.js";
import { fail } from "./session.js";

const RECONNECT_MS = 1000;
const POLL_MS = 5000;

/**
 * Follows `path` after position `after`. `onEvent(event)` gets each event; while the
 * stream cannot be opened, `poll(position)` is called every few seconds instead and
 * returns the position it read up to. The stream is opened again whenever the service
 * closes it, until it answers 204 (a finished order whose events were all seen).
 * Returns a function that stops it.
 */
export function keepFollowing({ path, after, onEvent, poll }) {
  let position = after || 0;
  let controller = null;
  let timer = null;
  let stopped = false;

  const indicator = document.getElementById("live");
  const show = (state, text) => {
    indicator.dataset.state = state;
    indicator.textContent = text;
  };
  const current = (mine) => !stopped && controller === mine && !mine.signal.aborted;

  const later = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };

  async function run() {
    clearTimeout(timer);
    if (stopped || document.hidden) return;
    // One stream at a time: a run started while another waits replaces it.
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    try {
      const outcome = await follow(path, {
        after: position,
        signal: mine.signal,
        onOpen: () => show("live", "Live"),
        onEvent: (event) => {
          if (event.id) position = Math.max(position, Number(event.id));
          onEvent(event);
        },
      });
      if (!current(mine)) return;
      if (outcome === "finished") {
        show("done", "Up to date");
        return;
      }
      later(RECONNECT_MS);
    } catch (error) {
      if (!current(mine)) return;
      if (error instanceof ApiError && error.status === 401) {
        fail(error);
        return;
      }
      show("polling", "Polling every 5 s");
      try {
        if (poll) position = Math.max(position, (await poll(position)) || 0);
      } catch (pollError) {
        if (!current(mine)) return;
        fail(pollError);
      }
      if (current(mine) && !document.hidden) later(POLL_MS);
    }
  }

  const visibility = () => {
    if (document.hidden) {
      clearTimeout(timer);
      if (controller) controller.abort();
      controller = null;
      show("paused", "Paused while hidden");
    } else if (!stopped) {
      later(0);
    }
  };
  document.addEventListener("visibilitychange", visibility);
  run();

  return () => {
    stopped = true;
    clearTimeout(timer);
    if (controller) controller.abort();
    document.removeEventListener("visibilitychange", visibility);
    show("", "");
  };
}

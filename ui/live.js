// Keeps a view live: follows a stream while the tab is visible, pauses when it is
// hidden and resumes after the last position seen, and polls while the stream cannot
// be opened (for example when the service refuses more streams).

import { follow } from "./api.js";

const RECONNECT_MS = 1000;
const POLL_MS = 5000;

/**
 * Follows `path` after position `after`. `onEvent(event)` gets each event; `poll()`
 * is called instead every few seconds while the stream cannot be opened; `ends`
 * says the stream closes for good when the service ends it (one order's history).
 * Returns a function that stops it.
 */
export function keepFollowing({ path, after, onEvent, poll, ends = false }) {
  let position = after || 0;
  let controller = null;
  let timer = null;
  let stopped = false;

  const indicator = document.getElementById("live");
  const show = (state, text) => {
    indicator.dataset.state = state;
    indicator.textContent = text;
  };

  const later = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };

  async function run() {
    if (stopped || document.hidden) return;
    controller = new AbortController();
    const mine = controller;
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
      if (mine.signal.aborted || stopped) return;
      if (outcome === "finished" || (outcome === "ended" && ends)) {
        show("done", "Up to date");
        return;
      }
      later(RECONNECT_MS);
    } catch (error) {
      if (mine.signal.aborted || stopped) return;
      show("polling", "Polling every 5 s");
      try {
        if (poll) await poll();
      } catch {
        // The next round tries again; the view shows its own errors.
      }
      later(POLL_MS);
    }
  }

  const visibility = () => {
    if (document.hidden) {
      clearTimeout(timer);
      if (controller) controller.abort();
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

/** The position to follow from, read with a poll: for feeds paged with `after`. */
export function positionOf(page, fallback) {
  return page && typeof page.next_after === "number" ? page.next_after : fallback;
}

// Who is signed in and what the page may offer them, and the one place errors are
// shown.

import { ApiError, claims, get, setToken, token } from "./api.js";

const ADMIN_SCOPE = "orders:admin";

/** What the page knows of its caller. `admin`: offer actions (the API decides anyway). */
export const session = { admin: false, authOn: false, user: null, seesAll: false };

const notice = document.getElementById("notice");

/** Shows an error (a problem from the API, or a broken connection) above the view. */
export function fail(error) {
  if (error instanceof ApiError && error.status === 401) {
    // Expired or revoked: sign in again from the start.
    setToken(null);
    location.reload();
    return;
  }
  notice.textContent = error instanceof Error ? error.message : String(error);
  notice.hidden = false;
}

export function clearNotice() {
  notice.hidden = true;
  notice.textContent = "";
}

function askForToken(message) {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const error = document.getElementById("token-error");
  error.hidden = !message;
  error.textContent = message || "";
  input.value = "";
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      setToken(value);
      dialog.close();
      resolve();
    };
    // Nothing works without a token: the dialog stays until one is given.
    dialog.oncancel = (event) => event.preventDefault();
    dialog.onclose = () => {
      if (!token()) dialog.showModal();
    };
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

/** Learns what the caller may do: with authentication off every call is allowed;
 *  with it on, the token's scope says whether to offer actions. */
export async function signIn() {
  for (;;) {
    try {
      await get("/metrics");
      session.seesAll = true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        const refused = Boolean(token());
        setToken(null);
        await askForToken(refused ? `That token was refused: ${error.message}` : "");
        continue;
      }
      if (!(error instanceof ApiError && error.status === 403)) throw error;
      session.seesAll = false;
    }
    break;
  }
  const c = claims();
  session.authOn = Boolean(token());
  session.user = c ? c.sub : null;
  session.admin = !session.authOn || String((c && c.scope) || "").split(" ").includes(ADMIN_SCOPE);
  document.getElementById("who").textContent = session.authOn
    ? `${session.user || "signed in"}${session.admin ? " (admin)" : " (read-only)"}`
    : "authentication off";
  const signOut = document.getElementById("sign-out");
  signOut.hidden = !session.authOn;
  signOut.onclick = () => {
    setToken(null);
    location.hash = "#/";
    location.reload();
  };
}


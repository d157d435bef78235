// How the page writes numbers, amounts, durations and times, and builds elements
// (with text nodes only, so no value from the API is ever parsed as HTML).

const integer = new Intl.NumberFormat("en-US");

/** 12345 → "12,345". */
export function count(n) {
  return integer.format(n);
}

/** An exact decimal's text → "1,234.50", without going through a float. */
export function amount(text) {
  const [whole, fraction = ""] = String(text).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "");
  return `${sign}${digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${fraction.padEnd(2, "0")}`;
}

/** Seconds → "850 ms", "2.4 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${(Math.round(seconds * 10) / 10).toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** An RFC 3339 time → "2026-12-02 04:05:06 UTC". */
export function time(text) {
  if (!text) return "–";
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) return text;
  return at.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** An RFC 3339 time → "04:05:06.123": within one page of events, order matters. */
export function clock(text) {
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? text : at.toISOString().slice(11, 23);
}

/** An RFC 3339 time → "12 s ago" or "in 4.0 s". */
export function ago(text) {
  if (!text) return "–";
  const seconds = (Date.now() - new Date(text).getTime()) / 1000;
  return seconds >= 0 ? `${duration(seconds)} ago` : `in ${duration(-seconds)}`;
}

/**
 * h("a", {href: "#/"}, "text", child) → an element. Attributes starting with "on" are
 * listeners; `false`, `null` and `undefined` attributes and children are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === false || child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** A status as a badge whose colour comes from the stylesheet. */
export function badge(status) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
}

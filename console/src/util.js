// Formatting shared by the pages.
import { useState } from "preact/hooks";
import { html } from "./html.js";

export const kStates = ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "RETRYING", "DEAD", "CANCELLED", "SKIPPED", "REJECTED", "UPSTREAM_FAILED"];
export const kTerminal = new Set(["SUCCEEDED", "DEAD", "CANCELLED", "SKIPPED", "REJECTED", "UPSTREAM_FAILED"]);

export const toMs = (value) => (value === undefined || value === null || value === "" ? 0 : Number(value));

// An instant in the user's zone; UTC on hover.
export function Time({ ms }) {
  const value = toMs(ms);
  if (!value) return html`<span class="muted">–</span>`;
  const date = new Date(value);
  return html`<time datetime=${date.toISOString()} title=${date.toISOString().replace("T", " ").replace("Z", " UTC")}>${date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" })}</time>`;
}

// An instant in a given zone (a schedule's), with the user's zone and UTC on hover.
export function ZonedTime({ ms, zone }) {
  const date = new Date(toMs(ms));
  let text;
  try {
    text = date.toLocaleString(undefined, { timeZone: zone || "UTC", weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  } catch {
    text = date.toISOString();
  }
  const title = `${date.toLocaleString()} in your zone; ${date.toISOString().replace("T", " ").replace("Z", " UTC")}`;
  return html`<time datetime=${date.toISOString()} title=${title}>${text} <span class="muted">${zone || "UTC"}</span></time>`;
}

export function since(ms, now = Date.now()) {
  const value = toMs(ms);
  if (!value) return "";
  const seconds = Math.round((now - value) / 1000);
  const abs = Math.abs(seconds);
  const text = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

export const State = ({ state }) => html`<span class=${"state state-" + (state || "SUBMITTED").toLowerCase()}>${state || "SUBMITTED"}</span>`;

export function taskOf(job) {
  if (!job) return "";
  if (job.http) return `${job.http.method || "GET"} ${job.http.url}`;
  if (job.exec) return (job.exec.argv || []).join(" ");
  if (job.kafka) return `record to ${job.kafka.topic}`;
  if (job.handler) return `handler ${job.handler.name}`;
  if (job.sleep) return `sleep ${job.sleep.duration || ""}`;
  if (job.noop) return "no-op";
  return "";
}

// Bytes as the API sends them (base64): text when they decode as UTF-8.
export function decodeBytes(base64) {
  if (!base64) return "";
  try {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return `(${Math.floor((base64.length * 3) / 4)} bytes of binary data)`;
  }
}

export const ErrorBox = ({ error }) => (error ? html`<div class="error" role="alert">${error.status ? `HTTP ${error.status}: ` : ""}${error.message}</div>` : null);

export const Loading = () => html`<p class="muted" aria-busy="true">Loading…</p>`;

// Keyset paging: the page tokens that led to the page shown ("" is the first page).
export function usePages() {
  const [pages, setPages] = useState([""]);
  return {
    token: pages[pages.length - 1],
    number: pages.length,
    back: () => setPages(pages.slice(0, -1)),
    forward: (next) => setPages([...pages, next]),
    reset: () => setPages([""]),
  };
}

// "Newer" / "older" buttons over usePages(); `next` is the answer's next_page_token.
export const Pager = ({ pages, next, busy = false, labels = ["← Newer", "Older →"], note = null }) => html`<nav class="pager" aria-label="pages">
  <button disabled=${busy || pages.number === 1} onClick=${pages.back}>${labels[0]}</button>
  ${note}
  <button disabled=${busy || !next} onClick=${() => pages.forward(next)}>${labels[1]}</button>
</nav>`;

// The console's only way to kcron: the public HTTP API, with the signed-in token. Writes hand back
// a consistency token (where their record landed); later reads send the newest per partition, so
// what the user just did shows at once, whichever kcron-api instance answers.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let token = "";
let unauthorized = () => {};
const written = new Map(); // "topic/partition" -> [offset, when]
const kKeepWrittenMs = 120000;

export function setToken(value, onUnauthorized) {
  token = value;
  unauthorized = onUnauthorized || (() => {});
  written.clear();
}

function remember(header) {
  if (!header) return;
  for (const part of header.split(",")) {
    const at = part.trim().lastIndexOf("/");
    if (at <= 0) continue;
    const where = part.trim().slice(0, at);
    const offset = Number(part.trim().slice(at + 1));
    const known = written.get(where);
    if (!known || known[0] < offset) written.set(where, [offset, Date.now()]);
  }
}

function consistency() {
  const now = Date.now();
  const parts = [];
  for (const [where, [offset, when]] of written) {
    if (now - when > kKeepWrittenMs) written.delete(where);
    else parts.push(`${where}/${offset}`);
  }
  return parts.join(", ");
}

// A request to the API: the parsed JSON answer, or an ApiError carrying the problem details.
export async function call(path, { method = "GET", body, signal, query } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const wait = consistency();
  if (method === "GET" && wait) headers["Kcron-Consistency"] = wait;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== "" && value !== null) params.set(key, value);
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? (method === "GET" ? undefined : "") : JSON.stringify(body), signal, cache: "no-store", credentials: "omit" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { detail: `kcron-api did not answer (${error.message}); is it running?` });
  }
  if (method !== "GET") remember(response.headers.get("Kcron-Consistency"));
  const text = await response.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    answer = { detail: text.slice(0, 300) };
  }
  if (!response.ok) {
    const problem = answer && typeof answer === "object" ? answer : { detail: String(answer) };
    if (response.status === 401) unauthorized(problem.detail || "the token was refused");
    throw new ApiError(response.status, problem);
  }
  return answer;
}

// Follows the tenant's state changes (GET /v1/events long-polls) until the signal aborts; calls
// onEvents with each non-empty batch. Errors back off and retry; a 401 ends it (sign-out follows).
// Only while the tab is visible; an empty answer that came back at once (the server's waiting
// slots are taken: it answers with Retry-After) waits before the next ask.
const pause = (ms, signal) =>
  new Promise((done) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      done();
    }, { once: true });
  });

export async function followEvents(signal, onEvents) {
  let cursor = "";
  let backoff = 1000;
  while (!signal.aborted) {
    if (document.visibilityState === "hidden") {
      await pause(1000, signal);
      continue;
    }
    const asked = Date.now();
    try {
      const answer = await call("/v1/events", { query: { since: cursor, wait: 25, limit: 200 }, signal });
      cursor = answer.cursor || cursor;
      backoff = 1000;
      const events = answer.events || [];
      if (events.length) onEvents(events);
      else if (Date.now() - asked < 1000) await pause(2000, signal);
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      await pause(error.status === 429 ? Math.max(backoff, 5000) : backoff, signal);
      backoff = Math.min(backoff * 2, 15000);
    }
  }
}

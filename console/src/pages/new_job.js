// New job / new schedule: what the job does (webhook, command, Kafka record, handler, no-op),
// how it runs (queue, priority, timeout, retries with backoff) and when (now, at an instant, after
// a delay, or on a cron expression in a time zone, which makes it a schedule).
import { useEffect, useState } from "preact/hooks";
import { html } from "../html.js";
import { call } from "../api.js";
import { usePolled } from "../poll.js";
import { may } from "../session.js";
import { ErrorBox, ZonedTime } from "../util.js";

const base64 = (text) => {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
};

// "Name: value" lines -> {Name: value}; "KEY=value" lines -> {KEY: value}.
const pairs = (text, separator) => {
  const map = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(separator);
    if (at > 0) map[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return map;
};

// Splits a command line on spaces, keeping quoted parts ("a b" or 'a b') whole.
const argv = (text) => (text.match(/"[^"]*"|'[^']*'|\S+/g) || []).map((part) => part.replace(/^(["'])(.*)\1$/, "$2"));

const kZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

export function buildJob(form) {
  const job = {};
  const get = (name) => String(form.get(name) || "").trim();
  if (get("id")) job.id = get("id");
  if (get("queue")) job.queue = get("queue");
  if (get("priority")) job.priority = Number(get("priority"));
  if (get("timeout")) job.timeout = `${Number(get("timeout"))}s`;
  const labels = pairs(get("labels"), "=");
  if (Object.keys(labels).length) job.labels = labels;
  const retries = Number(get("max_retries") || 0);
  if (retries > 0) {
    job.retry = { max_retries: retries, initial_backoff: `${Number(get("initial_backoff") || 1)}s`, multiplier: Number(get("multiplier") || 2), max_backoff: `${Number(get("max_backoff") || 300)}s` };
  }
  switch (get("type")) {
    case "http": {
      job.http = { method: get("method") || "GET", url: get("url") };
      const headers = pairs(get("headers"), ":");
      if (Object.keys(headers).length) job.http.headers = headers;
      if (get("body")) job.http.body = base64(String(form.get("body")));
      break;
    }
    case "exec":
      job.exec = { argv: argv(get("command")) };
      break;
    case "kafka":
      job.kafka = { topic: get("topic"), key: get("key"), value: base64(String(form.get("value") || "")) };
      break;
    case "handler":
      job.handler = { name: get("handler") };
      if (Object.keys(pairs(get("args"), "=")).length) job.handler.args = pairs(get("args"), "=");
      break;
    default:
      job.noop = {};
  }
  const when = get("when");
  if (when === "at" && get("at")) job.run_at = new Date(get("at")).toISOString();
  if (when === "delay" && get("delay")) job.delay = `${Number(get("delay"))}s`;
  return job;
}

function TaskFields({ type, offered }) {
  switch (type) {
    case "http":
      return html`<fieldset><legend>Webhook</legend>
        <label>Method <select name="method"><option>GET</option><option>POST</option><option>PUT</option><option>PATCH</option><option>DELETE</option></select></label>
        <label class="wide">URL <input name="url" type="url" required placeholder="https://example.com/hook" /></label>
        <label class="wide">Headers <textarea name="headers" rows="2" placeholder="Content-Type: application/json"></textarea></label>
        <label class="wide">Body <textarea name="body" rows="3"></textarea></label>
        <p class="muted">The worker refuses private and loopback addresses unless its <code>http.allow</code> lists them.</p>
      </fieldset>`;
    case "exec":
      return html`<fieldset><legend>Command</legend>
        <label class="wide">Program and arguments <input name="command" required list="programs" autocomplete="off" placeholder="/usr/local/bin/report --day today" /></label>
        <datalist id="programs">${offered.programs.map((program) => html`<option value=${program} />`)}</datalist>
        <p class="muted">The program must be in the workers' allowlist (<code>exec.allow</code>); the worker refuses any other.
          ${offered.programs.length ? html` Your workers allow: ${offered.programs.map((program, index) => html`${index ? ", " : ""}<code>${program}</code>`)}.` : " No live worker allows one."}</p>
      </fieldset>`;
    case "kafka":
      return html`<fieldset><legend>Kafka record</legend>
        <label>Topic <input name="topic" required /></label>
        <label>Key <input name="key" /></label>
        <label class="wide">Value <textarea name="value" rows="3"></textarea></label>
      </fieldset>`;
    case "handler":
      return html`<fieldset><legend>Handler</legend>
        <label>Name <input name="handler" required list="handlers" autocomplete="off" placeholder="send-report" /></label>
        <datalist id="handlers">${offered.handlers.map((name) => html`<option value=${name} />`)}</datalist>
        <label class="wide">Arguments <textarea name="args" rows="2" placeholder="key=value"></textarea></label>
      </fieldset>`;
    default:
      return html`<p class="muted">A no-op job does nothing and succeeds: a way to try kcron out.</p>`;
  }
}

// While a cron expression is typed: its meaning in words and its next five instants in the chosen
// zone, from the API (GET /v1/schedules:preview), or the API's reason it is not valid.
function CronPreview({ expression, zone }) {
  const [preview, setPreview] = useState(null);
  useEffect(() => {
    if (!expression.trim()) {
      setPreview(null);
      return undefined;
    }
    const abort = new AbortController();
    const timer = setTimeout(async () => {
      try {
        const answer = await call("/v1/schedules:preview", { query: { expression: expression.trim(), time_zone: zone.trim(), count: 5 }, signal: abort.signal });
        setPreview({ answer });
      } catch (error) {
        if (error.name !== "AbortError") setPreview({ error });
      }
    }, 250);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [expression, zone]);
  if (!preview) return html`<p class="muted cron-preview">Type an expression: 5 fields (minute hour day month weekday), 6 with leading seconds, or a macro such as <code>@daily</code>.</p>`;
  if (preview.error) return html`<div class="error cron-preview" role="alert" data-testid="cron-error">${preview.error.message}</div>`;
  return html`<div class="cron-preview" data-testid="cron-preview" aria-live="polite">
    <strong data-testid="cron-explain">${preview.answer.explain}</strong>
    <ol>${(preview.answer.next || []).map((instant) => html`<li><${ZonedTime} ms=${Date.parse(instant)} zone=${preview.answer.time_zone} /></li>`)}</ol>
  </div>`;
}

export function NewJob({ session }) {
  const schedules = may(session, "manage-schedules");
  const [type, setType] = useState("http");
  const [when, setWhen] = useState("now");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [expression, setExpression] = useState("");
  const [zone, setZone] = useState(kZone);
  // What the live workers can run: the programs of their allowlists, their handlers.
  const workers = usePolled(() => call("/v1/workers"), 0);
  const live = ((workers.data && workers.data.workers) || []).filter((worker) => worker.alive && !worker.role);
  const offered = {
    programs: [...new Set(live.flatMap((worker) => worker.programs || []))].sort(),
    handlers: [...new Set(live.flatMap((worker) => worker.handlers || []))].sort(),
  };
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const job = buildJob(form);
    setBusy(true);
    setError(null);
    try {
      if (when === "cron") {
        const id = String(form.get("schedule_id") || "").trim();
        const schedule = { expression: String(form.get("expression") || "").trim(), time_zone: String(form.get("time_zone") || "UTC").trim(), job_template: { ...job, id: undefined }, misfire: form.get("misfire"), overlap: form.get("overlap") };
        await call(`/v1/schedules/${encodeURIComponent(id)}`, { method: "PUT", body: schedule });
        window.location.hash = "#/schedules/" + encodeURIComponent(id);
      } else {
        const answer = await call("/v1/jobs", { method: "POST", body: job });
        window.location.hash = "#/jobs/" + encodeURIComponent(answer.id);
      }
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`<section>
    <h1>New job</h1>
    <form class="new-job" onSubmit=${submit}>
      <fieldset><legend>What it does</legend>
        <div class="choices" role="radiogroup" aria-label="job type">
          ${[["http", "Webhook"], ["exec", "Command"], ["kafka", "Kafka record"], ["handler", "Handler"], ["noop", "No-op"]].map(([value, label]) => html`<label class="choice"><input type="radio" name="type" value=${value} checked=${type === value} onChange=${() => setType(value)} /> ${label}</label>`)}
        </div>
      </fieldset>
      <${TaskFields} type=${type} offered=${offered} />
      <fieldset><legend>When</legend>
        <div class="choices" role="radiogroup" aria-label="when">
          ${[["now", "Now"], ["at", "At a time"], ["delay", "After a delay"], ...(schedules ? [["cron", "On a schedule"]] : [])].map(([value, label]) => html`<label class="choice"><input type="radio" name="when" value=${value} checked=${when === value} onChange=${() => setWhen(value)} /> ${label}</label>`)}
        </div>
        ${when === "at" && html`<label>At (your zone, ${kZone}) <input type="datetime-local" name="at" required /></label>`}
        ${when === "delay" && html`<label>Delay in seconds <input type="number" name="delay" min="1" required /></label>`}
        ${when === "cron" && html`<div>
          <label>Schedule id <input name="schedule_id" required placeholder="nightly-report" /></label>
          <label>Cron expression <input name="expression" required placeholder="0 9 * * MON-FRI" autocomplete="off" spellcheck="false" value=${expression} onInput=${(e) => setExpression(e.target.value)} /></label>
          <label>Time zone <input name="time_zone" value=${zone} onInput=${(e) => setZone(e.target.value)} /></label>
          <label>Missed runs <select name="misfire"><option value="FIRE_ONCE">run once for all missed</option><option value="FIRE_ALL">run each missed</option><option value="SKIP">skip them</option></select></label>
          <label>Overlap <select name="overlap"><option value="ALLOW">runs may overlap</option><option value="FORBID">skip a run while the last runs</option><option value="REPLACE">cancel the last run</option></select></label>
          <${CronPreview} expression=${expression} zone=${zone} />
        </div>`}
      </fieldset>
      <fieldset><legend>How it runs</legend>
        ${when !== "cron" && html`<label>Job id <input name="id" placeholder="generated" /></label>`}
        <label>Queue <input name="queue" placeholder="default" /></label>
        <label>Priority <input type="number" name="priority" min="0" max="9" placeholder="5" /></label>
        <label>Timeout (s) <input type="number" name="timeout" min="1" /></label>
        <label>Retries <input type="number" name="max_retries" min="0" max="100" value="0" /></label>
        <label>First backoff (s) <input type="number" name="initial_backoff" min="0" placeholder="1" /></label>
        <label>Backoff multiplier <input type="number" name="multiplier" min="1" step="0.1" placeholder="2" /></label>
        <label>Longest backoff (s) <input type="number" name="max_backoff" min="1" placeholder="300" /></label>
        <label class="wide">Labels <textarea name="labels" rows="2" placeholder="team=data"></textarea></label>
      </fieldset>
      <${ErrorBox} error=${error} />
      <button type="submit" disabled=${busy}>${when === "cron" ? "Create schedule" : "Submit job"}</button>
    </form>
  </section>`;
}

// Jobs: the tenant's jobs newest first, filtered, in keyset pages of 50 (never everything), the
// first page kept live by the tenant's state changes.
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../html.js";
import { call } from "../api.js";
import { useEvents } from "../poll.js";
import { ErrorBox, Loading, Pager, State, Time, kStates, taskOf, usePages } from "../util.js";

const kPageSize = 50;
const kFilters = ["state", "queue", "schedule", "label", "since", "until"];

// datetime-local <-> epoch ms in the user's zone.
const localInput = (ms) => {
  if (!ms) return "";
  const date = new Date(Number(ms));
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};
const fromLocalInput = (text) => (text ? String(new Date(text).getTime()) : "");

export function Jobs({ query }) {
  const filters = Object.fromEntries(kFilters.map((name) => [name, query.get(name) || ""]));
  const filterKey = kFilters.map((name) => filters[name]).join("\u0000");
  const pages = usePages();
  const [answer, setAnswer] = useState({ loading: true, jobs: [], next: "", error: null, of: null });
  const { token } = pages;
  const generation = useRef(0);

  const load = async () => {
    const mine = ++generation.current;
    try {
      const page = await call("/v1/jobs", { query: { ...filters, page_size: kPageSize, page_token: token } });
      if (mine === generation.current) setAnswer({ loading: false, jobs: page.jobs || [], next: page.next_page_token || "", error: null, of: filterKey + "\u0001" + token });
    } catch (error) {
      if (mine === generation.current) setAnswer((last) => ({ ...last, loading: false, error }));
    }
  };
  useEffect(() => pages.reset(), [filterKey]);
  useEffect(() => {
    setAnswer((last) => ({ ...last, loading: true }));
    load();
  }, [filterKey, token]);
  // Live: the first page reloads (at most every second) when a job of the tenant changes.
  const pending = useRef(null);
  useEvents(() => {
    if (token !== "" || pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      load();
    }, 1000);
  }, [filterKey, token]);
  useEffect(
    () => () => {
      clearTimeout(pending.current); // a reload planned for another page or filter
      pending.current = null;
    },
    [filterKey, token],
  );

  // The rows shown are of another page or filter until this one's answer came.
  const busy = answer.loading || answer.of !== filterKey + "\u0001" + token;

  const apply = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const params = new URLSearchParams();
    for (const name of kFilters) {
      let value = String(form.get(name) || "").trim();
      if (name === "since" || name === "until") value = fromLocalInput(value);
      if (value) params.set(name, value);
    }
    const text = params.toString();
    window.location.hash = "#/jobs" + (text ? "?" + text : "");
  };

  return html`<section>
    <h1>Jobs</h1>
    <form class="filters" onSubmit=${apply} key=${filterKey}>
      <label>State <select name="state" value=${filters.state}>
        <option value="">any</option>${kStates.map((state) => html`<option value=${state}>${state}</option>`)}
      </select></label>
      <label>Queue <input name="queue" value=${filters.queue} placeholder="default" size="10" /></label>
      <label>Schedule <input name="schedule" value=${filters.schedule} size="12" /></label>
      <label>Label <input name="label" value=${filters.label} placeholder="key=value" size="14" /></label>
      <label>Submitted from <input type="datetime-local" name="since" value=${localInput(filters.since)} /></label>
      <label>to <input type="datetime-local" name="until" value=${localInput(filters.until)} /></label>
      <button type="submit">Filter</button>
      ${kFilters.some((name) => filters[name]) && html`<a href="#/jobs">clear</a>`}
    </form>
    <${ErrorBox} error=${answer.error} />
    ${answer.loading && answer.jobs.length === 0 ? html`<${Loading} />` : answer.jobs.length === 0 ? html`<p class="muted empty">No jobs${kFilters.some((name) => filters[name]) ? " match these filters" : " yet"}.</p>` : html`
    <div class="table-wrap"><table class="jobs" aria-busy=${busy ? "true" : "false"}>
      <thead><tr><th>Job</th><th>State</th><th>Queue</th><th>Does</th><th>Submitted</th><th>Due</th><th>Attempt</th></tr></thead>
      <tbody>${answer.jobs.map((job) => html`<tr key=${job.id}>
        <td><a href=${"#/jobs/" + encodeURIComponent(job.id)}>${job.id}</a></td>
        <td><${State} state=${job.state} /></td>
        <td>${job.queue || "default"}</td>
        <td class="task">${taskOf(job.job)}</td>
        <td><${Time} ms=${job.submitted_ms} /></td>
        <td><${Time} ms=${job.due_ms} /></td>
        <td class="number">${(job.attempt || 0) + 1}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} pages=${pages} next=${answer.next} busy=${busy} note=${html`<span class="muted">page ${pages.number}${token === "" ? " · live" : ""}</span>`} />
  </section>`;
}

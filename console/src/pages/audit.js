// Audit (admins): the tenant's audit records, newest first: who asked (the API's REQUESTED) and
// what the dispatcher decided, joined by request id; filtered by job.
import { html } from "../html.js";
import { call } from "../api.js";
import { usePolled } from "../poll.js";
import { ErrorBox, Loading, Pager, Time, usePages } from "../util.js";

export function Audit({ query }) {
  const job = query.get("job") || "";
  const pages = usePages();
  const token = pages.token;
  const list = usePolled(() => call("/v1/audit", { query: { job, page_size: 50, page_token: token } }), 0, [job, token]);
  const filter = (event) => {
    event.preventDefault();
    const value = String(new FormData(event.target).get("job") || "").trim();
    pages.reset();
    window.location.hash = "#/audit" + (value ? "?job=" + encodeURIComponent(value) : "");
  };
  const records = (list.data && list.data.records) || [];
  return html`<section>
    <h1>Audit</h1>
    <form class="filters" onSubmit=${filter}><label>Job <input name="job" value=${job} /></label><button type="submit">Filter</button></form>
    <${ErrorBox} error=${list.error} />
    ${list.loading ? html`<${Loading} />` : records.length === 0 ? html`<p class="muted empty">No audit records${job ? " for this job" : ""}.</p>` : html`
    <div class="table-wrap"><table>
      <thead><tr><th>At</th><th>Who</th><th>Action</th><th>Job</th><th>Outcome</th><th>Reason</th><th>By</th><th>Request</th></tr></thead>
      <tbody>${records.map((record, index) => html`<tr key=${index}>
        <td><${Time} ms=${record.at_ms} /></td><td>${record.principal || html`<span class="muted">(Kafka)</span>`}</td><td>${record.action}</td>
        <td>${record.job_id && html`<a href=${"#/jobs/" + encodeURIComponent(record.job_id)}>${record.job_id}</a>`}</td>
        <td>${record.outcome}</td><td class="reason">${record.reason}</td><td>${record.component}</td><td><code>${record.request_id}</code></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} pages=${pages} next=${list.data && list.data.next_page_token} />
  </section>`;
}

// kcron's web console: a single page over the public HTTP API (docs/console.md).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";
import { setToken } from "./api.js";
import { expiryOf, may, takeTokenFromAddress, whoami } from "./session.js";
import { ErrorBox } from "./util.js";
import { Overview } from "./pages/overview.js";
import { Jobs } from "./pages/jobs.js";
import { JobPage } from "./pages/job.js";
import { FlowPage, Flows } from "./pages/flow.js";
import { NewJob } from "./pages/new_job.js";
import { Schedules, SchedulePage } from "./pages/schedules.js";
import { DeadLetters } from "./pages/dead_letters.js";
import { Workers } from "./pages/workers.js";
import { Audit } from "./pages/audit.js";

// The route: "#/jobs/abc?state=DEAD" -> { path: ["jobs", "abc"], query: URLSearchParams }.
function currentRoute() {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?");
  return { path: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

export function navigate(path) {
  window.location.hash = path;
}

function SignIn({ onToken, message }) {
  const [text, setText] = useState("");
  const submit = (event) => {
    event.preventDefault();
    if (text.trim()) onToken(text.trim());
  };
  return html`<main class="signin">
    <h1><img src="/assets/icon.svg" alt="" width="28" height="28" /> kcron</h1>
    <form onSubmit=${submit}>
      <label for="token">Paste a token (a JWT issued for your tenant)</label>
      <textarea id="token" rows="5" autocomplete="off" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <button type="submit" disabled=${!text.trim()}>Sign in</button>
      ${message && html`<div class="error" role="alert">${message}</div>`}
      <p class="muted">The token stays in this tab's memory only: reloading the page signs you out. Scripts can hand one over as <code>/#token=…</code>.</p>
    </form>
  </main>`;
}

const kPages = [
  ["", "Overview"],
  ["jobs", "Jobs"],
  ["flows", "Flows"],
  ["new", "New job", "submit"],
  ["schedules", "Schedules"],
  ["dead-letters", "Dead letters"],
  ["workers", "Workers"],
  ["audit", "Audit", "audit"],
];

function Shell({ session, onSignOut }) {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const changed = () => setRoute(currentRoute());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  const [page, id] = route.path;
  let content;
  if (!page) content = html`<${Overview} session=${session} />`;
  else if (page === "jobs" && id) content = html`<${JobPage} key=${id} id=${id} session=${session} />`;
  else if (page === "jobs") content = html`<${Jobs} query=${route.query} session=${session} />`;
  else if (page === "flows" && id) content = html`<${FlowPage} key=${id} id=${id} session=${session} />`;
  else if (page === "flows") content = html`<${Flows} session=${session} />`;
  else if (page === "new") content = html`<${NewJob} session=${session} query=${route.query} />`;
  else if (page === "schedules" && id) content = html`<${SchedulePage} key=${id} id=${id} session=${session} />`;
  else if (page === "schedules") content = html`<${Schedules} session=${session} />`;
  else if (page === "dead-letters") content = html`<${DeadLetters} session=${session} />`;
  else if (page === "workers") content = html`<${Workers} session=${session} />`;
  else if (page === "audit" && may(session, "audit")) content = html`<${Audit} session=${session} query=${route.query} />`;
  else content = html`<p>No such page. <a href="#/">Back to the overview</a>.</p>`;
  return html`<div class="shell">
    <header>
      <a class="brand" href="#/"><img src="/assets/icon.svg" alt="" width="22" height="22" /> kcron</a>
      <nav aria-label="pages">
        ${kPages
          .filter(([, , action]) => !action || may(session, action))
          .map(([path, label]) => html`<a href=${"#/" + path} aria-current=${(page || "") === path ? "page" : undefined}>${label}</a>`)}
      </nav>
      <div class="who" title=${`signed in as ${session.subject}, ${session.role} of tenant ${session.tenant}`}>
        <span class="tenant">${session.tenant}</span> <span>${session.subject}</span> <span class="role">${session.role}</span>
        <button class="link" onClick=${() => onSignOut("")}>Sign out</button>
      </div>
    </header>
    <main>${content}</main>
  </div>`;
}

function App() {
  const [session, setSession] = useState(null);
  const [message, setMessage] = useState("");
  const [error, setError] = useState(null);
  const signOut = (why) => {
    setToken("", null);
    setSession(null);
    setMessage(why || "");
  };
  const signIn = async (token) => {
    setError(null);
    setToken(token, (detail) => signOut(`Signed out: ${detail}`));
    try {
      const who = await whoami();
      setSession({ ...who, expires: expiryOf(token) });
      setMessage("");
    } catch (failure) {
      setToken("", null);
      if (failure.status !== 401) setError(failure);
      else setMessage(`That token was refused: ${failure.message}`);
    }
  };
  useEffect(() => {
    const handed = takeTokenFromAddress();
    if (handed) signIn(handed);
  }, []);
  useEffect(() => {
    if (!session || !session.expires) return undefined;
    const left = session.expires - Date.now();
    const timer = setTimeout(() => signOut("Signed out: the token expired."), Math.max(0, Math.min(left, 2 ** 31 - 1)));
    return () => clearTimeout(timer);
  }, [session]);
  if (!session) return html`<${SignIn} onToken=${signIn} message=${message} /><${ErrorBox} error=${error} />`;
  return html`<${Shell} session=${session} onSignOut=${signOut} />`;
}

render(html`<${App} />`, document.getElementById("app"));

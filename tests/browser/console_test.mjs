// The web console in a real browser (Debian's Chromium, driven by puppeteer-core) against the real
// broker and every program: kcron-dispatcher, kcron-worker, kcron-cron-producer and kcron-api of a
// fresh topic prefix, and a local webhook server the jobs call. One browser, one scenario after
// another; each saves screenshots in --out. Exits 0 when every scenario passed.
//
//   node console_test.mjs --bin BIN_DIR --modules NODE_MODULES --out DIR [--only NAME]
//   (broker: $KCRON_TEST_BROKERS, default 127.0.0.1:9092; browser: $KCRON_CHROMIUM, default
//   /usr/lib/chromium/chromium)
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
const bin = resolve(option("--bin", "build/dev/bin"));
const modules = resolve(option("--modules", "build/dev/console-npm/node_modules"));
const out = resolve(option("--out", "build/dev/browser"));
const only = option("--only", "");
const brokers = process.env.KCRON_TEST_BROKERS || "127.0.0.1:9092";
const chromium = process.env.KCRON_CHROMIUM || "/usr/lib/chromium/chromium";
const puppeteer = createRequire(join(modules, "noop.js"))("puppeteer-core");

const prefix = `it-console-${randomBytes(3).toString("hex")}.`;
const work = mkdtempSync(join(tmpdir(), "kcron-console-"));
rmSync(out, { recursive: true, force: true }); // no screenshot of an earlier run stays
mkdirSync(out, { recursive: true });
const started = Date.now();
const log = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${text}`);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// ---- the programs -------------------------------------------------------------------------------
const programs = [];
const baseEnv = { ...process.env, KCRON_BROKERS: brokers, KCRON_TOPIC_PREFIX: prefix, KCRON_JOBS_PARTITIONS: "2", KCRON_EXEC_PARTITIONS: "1" };

function start(name, program, env) {
  const file = join(work, `${name}.log`);
  const child = spawn(join(bin, program), [], { env: { ...baseEnv, KCRON_HTTP_PORT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const entry = { name, child, file, text: "" };
  const append = (chunk) => {
    entry.text += chunk.toString();
  };
  child.stdout.on("data", append);
  child.stderr.on("data", append);
  child.on("exit", (code, signal) => {
    entry.exited = `${code ?? signal}`;
  });
  programs.push(entry);
  return entry;
}

async function waitFor(what, check, timeoutMs = 60000, everyMs = 200) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    for (const entry of programs) if (entry.exited !== undefined) throw new Error(`${entry.name} exited (${entry.exited}) while waiting for ${what}`);
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
}

function freePort() {
  return new Promise((done, fail) => {
    const server = net.createServer();
    server.unref();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

function stopAll() {
  for (const entry of programs) if (entry.exited === undefined) entry.child.kill("SIGTERM");
}

// ---- the webhook the jobs call --------------------------------------------------------------------
const hooks = { ok: 0, flaky: 0 };
const hookServer = http.createServer((request, response) => {
  request.resume();
  const path = request.url.split("?")[0];
  if (path === "/ok") {
    hooks.ok += 1;
    response.writeHead(200, { "Content-Type": "text/plain" }).end("hello from the webhook");
  } else if (path === "/flaky") {
    hooks.flaky += 1; // fails the first call, succeeds after
    if (hooks.flaky === 1) response.writeHead(500, { "Content-Type": "text/plain" }).end("the first call fails");
    else response.writeHead(200, { "Content-Type": "text/plain" }).end("the replay succeeds");
  } else {
    response.writeHead(404).end();
  }
});

// ---- the API from the test (setup only; the scenarios act through the browser) --------------------
let api = "";
async function apiCall(token, path, { method = "GET", body, consistency } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (consistency) headers["Kcron-Consistency"] = consistency;
  const response = await fetch(api + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : null };
}

// ---- the checks -----------------------------------------------------------------------------------
const failures = [];
function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: join(out, `${name}.png`), fullPage: false });
}

async function signIn(context, token) {
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.problems = [];
  page.on("pageerror", (error) => page.problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // A CSP violation or a script error shows here; failed requests the test makes on purpose
    // (403, 404) are logged by Chromium as "Failed to load resource" and are expected.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) page.problems.push(`console: ${message.text()}`);
  });
  await page.goto(`${api}/#token=${encodeURIComponent(token)}`, { waitUntil: "networkidle0" });
  await page.waitForSelector(".who", { timeout: 15000 });
  expect(!page.url().includes("token="), `the token stayed in the address bar: ${page.url()}`);
  return page;
}

const textOf = (page, selector) => page.$eval(selector, (node) => node.textContent);
// A fresh browser context (no state shared with another scenario) signed in with `token`.
async function openAs(token) {
  const context = await browser.createBrowserContext();
  return { context, page: await signIn(context, token) };
}
// The end of a scenario's page: no script error or CSP violation happened on it.
async function finish({ context, page }) {
  expect(page.problems.length === 0, page.problems.join("; "));
  await context.close();
}
const waitForJobState = (page, state, timeout = 30000) =>
  page.waitForFunction((wanted) => document.querySelector(".job-title .state")?.textContent === wanted, { timeout }, state);
const go = async (page, hash) => {
  await page.evaluate((target) => {
    window.location.hash = target;
  }, hash);
};

const scenarios = [];
const scenario = (name, run) => scenarios.push({ name, run });
let tokens = {};
let issueShortLived = () => "";
let browser;

scenario("sign in as tenant A: who, tenant and role are shown, the token leaves the address bar", async () => {
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  const who = await textOf(page, ".who");
  expect(who.includes("acme") && who.includes("olga") && who.includes("operator"), `the header says: ${who}`);
  await page.waitForSelector('[data-testid="jobs-total"]');
  await shot(page, "signed-in");
  const response = await fetch(`${api}/`);
  const csp = response.headers.get("content-security-policy") || "";
  expect(csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), `the page's CSP: ${csp}`);
  await finish(opened);
});

scenario("a webhook job made in the form reaches SUCCEEDED without a reload, with its timeline and output", async () => {
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  await go(page, "#/new");
  await page.waitForSelector('form.new-job input[name="url"]');
  await page.select('select[name="method"]', "POST");
  await page.type('input[name="url"]', `http://127.0.0.1:${hooks.port}/ok`);
  await page.type('textarea[name="body"]', '{"report": "daily"}');
  await page.type('input[name="id"]', "hook-1");
  await page.type('textarea[name="labels"]', "team=data");
  await page.click('form.new-job button[type="submit"]');
  await page.waitForFunction(() => window.location.hash === "#/jobs/hook-1", { timeout: 15000 });
  await waitForJobState(page, "SUCCEEDED");
  const steps = await page.$$eval('[data-testid="timeline"] li .state', (nodes) => nodes.map((node) => node.textContent));
  expect(steps.includes("RUNNING") && steps.at(-1) === "SUCCEEDED", `the timeline: ${steps.join(" > ")}`);
  const output = await textOf(page, "pre.output");
  expect(output.includes("hello from the webhook"), `the output: ${output}`);
  expect(hooks.ok === 1, `the webhook was called ${hooks.ok} times`);
  await shot(page, "job-timeline");
  await finish(opened);
});

scenario("a cron schedule made in the form shows its next instants in words, then its runs", async () => {
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  await go(page, "#/new");
  await page.waitForSelector("form.new-job");
  await page.click('input[name="type"][value="noop"]');
  await page.click('input[name="when"][value="cron"]');
  await page.waitForSelector('input[name="expression"]');
  await page.type('input[name="schedule_id"]', "every-2s");
  await page.type('input[name="expression"]', "*/2 * * * * *");
  await page.$eval('input[name="time_zone"]', (node) => {
    node.value = "";
  });
  await page.type('input[name="time_zone"]', "Europe/Berlin");
  // The form explains the expression and shows its next five instants in the zone, from the API.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="cron-preview"] li').length === 5 && document.querySelector('[data-testid="cron-preview"]').textContent.includes("Europe/Berlin"), { timeout: 15000 });
  const explained = await textOf(page, '[data-testid="cron-explain"]');
  expect(/2 seconds/.test(explained), `the form explains */2 * * * * * as: ${explained}`);
  await shot(page, "schedule-form");
  // An invalid expression is refused with the API's reason, and the preview comes back when fixed.
  await page.type('input[name="expression"]', " 99");
  await page.waitForSelector('[data-testid="cron-error"]', { timeout: 15000 });
  const refusal = await textOf(page, '[data-testid="cron-error"]');
  expect(/99 is outside/.test(refusal), `an invalid expression is refused as: ${refusal}`);
  for (let index = 0; index < 3; index += 1) await page.keyboard.press("Backspace");
  await page.waitForSelector('[data-testid="cron-preview"]', { timeout: 15000 });
  await page.click('form.new-job button[type="submit"]');
  await page.waitForFunction(() => window.location.hash === "#/schedules/every-2s", { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="next-runs"] li').length === 5, { timeout: 15000 });
  const explain = await textOf(page, '[data-testid="explain"]');
  expect(/second/i.test(explain), `the expression explained: ${explain}`);
  await page.waitForFunction(() => [...document.querySelectorAll(".facts dd a")].some((node) => node.textContent.startsWith("every-2s@")), { timeout: 30000 });
  await shot(page, "schedule");
  // The list: its next run in its zone and how the last run ended.
  await go(page, "#/schedules");
  await page.waitForFunction(() => [...document.querySelectorAll("tbody tr")].some((row) => row.textContent.includes("every-2s") && row.textContent.includes("Europe/Berlin") && row.textContent.includes("SUCCEEDED")), { timeout: 30000 });
  await go(page, "#/schedules/every-2s");
  await page.waitForSelector(".actions button");
  // Stop it: the later scenarios count jobs.
  page.on("dialog", (dialog) => dialog.accept());
  await page.click(".actions button:first-child"); // Pause
  await page.waitForFunction(() => document.querySelector("h1 .state-paused"), { timeout: 15000 });
  await finish(opened);
});

scenario("a failing job reaches DEAD, and a replay from the dead-letters page runs it again", async () => {
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  await go(page, "#/new");
  await page.waitForSelector('form.new-job input[name="url"]');
  await page.type('input[name="url"]', `http://127.0.0.1:${hooks.port}/flaky`);
  await page.type('input[name="id"]', "flaky-1");
  await page.click('form.new-job button[type="submit"]');
  await waitForJobState(page, "DEAD");
  await go(page, "#/dead-letters");
  await page.waitForSelector('button[aria-label], td button', { timeout: 15000 });
  await page.waitForFunction(() => [...document.querySelectorAll("tbody tr")].some((row) => row.textContent.includes("flaky-1")), { timeout: 15000 });
  await page.$$eval("tbody tr", (rows) => {
    const row = rows.find((node) => node.textContent.includes("flaky-1"));
    [...row.querySelectorAll("button")].find((button) => button.textContent === "Replay").click();
  });
  await page.waitForFunction(() => document.querySelector('.notice[role="status"]')?.textContent.includes("flaky-1: replayed"), { timeout: 15000 });
  await go(page, "#/jobs/flaky-1");
  await waitForJobState(page, "SUCCEEDED");
  expect(hooks.flaky === 2, `the flaky webhook was called ${hooks.flaky} times`);
  await shot(page, "replayed");
  await finish(opened);
});

scenario("tenant B sees none of A's jobs", async () => {
  const opened = await openAs(tokens.otherTenant);
  const { page } = opened;
  await go(page, "#/jobs");
  await page.waitForSelector(".empty", { timeout: 15000 });
  const rows = await page.$$("table.jobs tbody tr");
  expect(rows.length === 0, `tenant B's jobs page lists ${rows.length} jobs`);
  await go(page, "#/jobs/hook-1");
  await page.waitForSelector(".error", { timeout: 15000 });
  const error = await textOf(page, ".error");
  expect(error.includes("404") && error.includes("no job") && !error.includes("acme"), `tenant B's answer for hook-1: ${error}`);
  await finish(opened);
});

scenario("a viewer is offered no action, and a forced call is refused", async () => {
  const opened = await openAs(tokens.viewer);
  const { page } = opened;
  const nav = await textOf(page, "header nav");
  expect(!nav.includes("New job") && !nav.includes("Audit"), `a viewer's pages: ${nav}`);
  await go(page, "#/jobs/hook-1");
  await page.waitForSelector(".actions-none", { timeout: 15000 });
  expect((await page.$$(".actions button")).length === 0, "a viewer sees action buttons");
  const forced = await page.evaluate(async (token) => {
    const response = await fetch("/v1/jobs/flaky-1:cancel", { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: "{}" });
    return { status: response.status, body: await response.json() };
  }, tokens.viewer);
  expect(forced.status === 403 && /viewer/.test(forced.body.detail || ""), `a viewer's forced cancel: ${JSON.stringify(forced)}`);
  await finish(opened);
});

scenario("a member updates its own pending job, cannot touch another's, and markup in a field stays text", async () => {
  const others = await apiCall(tokens.operator, "/v1/jobs", { method: "POST", body: { id: "olgas-1", delay: "3600s", noop: {} } });
  expect(others.status === 202, `the operator's job: HTTP ${others.status}`);
  const opened = await openAs(tokens.member);
  const { page } = opened;
  page.on("dialog", (dialog) => {
    page.problems.push(`a dialog opened: ${dialog.message()}`);
    dialog.dismiss();
  });
  const nav = await textOf(page, "header nav");
  expect(nav.includes("New job") && !nav.includes("Audit"), `a member's pages: ${nav}`);
  await go(page, "#/new");
  await page.waitForSelector('input[name="when"][value="delay"]');
  expect(!(await page.$('input[name="when"][value="cron"]')), "a member is offered schedules");
  await page.click('input[name="type"][value="noop"]');
  await page.click('input[name="when"][value="delay"]');
  await page.waitForSelector('input[name="delay"]');
  await page.type('input[name="delay"]', "3600");
  await page.type('input[name="id"]', "mine-1");
  const markup = '<img src=x onerror="window.__injected=1"><b>bold</b>';
  await page.type('textarea[name="labels"]', `note=${markup}`);
  await page.click('form.new-job button[type="submit"]');
  await waitForJobState(page, "PENDING");
  const chip = await textOf(page, ".label-chip");
  expect(chip === `note=${markup}`, `the label shows as: ${chip}`);
  expect((await page.$$(".facts img")).length === 0, "markup in a label became an element");
  // Update: the definition without what kcron sets, edited and saved.
  const update = await page.$$eval(".actions button", (buttons) => buttons.map((button) => button.textContent));
  expect(update.includes("Update…") && update.includes("Cancel"), `a member's actions on its own job: ${update.join(", ")}`);
  await page.$$eval(".actions button", (buttons) => buttons.find((button) => button.textContent === "Update…").click());
  await page.waitForSelector("#definition");
  const definition = JSON.parse(await page.$eval("#definition", (node) => node.value));
  expect(!("submitted_by" in definition) && !("tenant" in definition), `the editable definition: ${JSON.stringify(definition)}`);
  definition.labels = { note: "updated" };
  await page.$eval("#definition", (node, text) => {
    node.value = text;
    node.dispatchEvent(new Event("input", { bubbles: true }));
  }, JSON.stringify(definition));
  await page.click("form.update button[type='submit']");
  await page.waitForFunction(() => document.querySelector(".label-chip")?.textContent === "note=updated", { timeout: 30000 });
  // Another's job: read, clone, but no cancel or update.
  await go(page, "#/jobs/olgas-1");
  await page.waitForFunction(() => document.querySelector(".job-title")?.textContent.includes("olgas-1") && document.querySelector(".actions"), { timeout: 30000 });
  const actions = await page.$$eval(".actions button", (buttons) => buttons.map((button) => button.textContent));
  expect(actions.join(",") === "Clone", `a member's actions on another's job: ${actions.join(", ")}`);
  // Its own job, cancelled (the console asks first).
  page.removeAllListeners("dialog");
  page.on("dialog", (dialog) => dialog.accept());
  await go(page, "#/jobs/mine-1");
  await page.waitForFunction(() => document.querySelector(".job-title")?.textContent.includes("mine-1") && document.querySelector("button.danger"), { timeout: 30000 });
  await page.click("button.danger");
  await waitForJobState(page, "CANCELLED");
  expect(await page.evaluate(() => window.__injected === undefined), "the markup ran");
  await finish(opened);
});

scenario("dead letters are replayed many at once, and an admin reads the audit log of who asked", async () => {
  for (const id of ["dead-a", "dead-b"]) {
    const answer = await apiCall(tokens.operator, "/v1/jobs", { method: "POST", body: { id, sleep: { duration: "0.01s", fail: true } } });
    expect(answer.status === 202, `${id}: HTTP ${answer.status}`);
  }
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  await go(page, "#/dead-letters");
  await page.waitForFunction(() => ["dead-a", "dead-b"].every((id) => document.querySelector(`input[aria-label="select ${id}"]`)), { timeout: 30000 });
  await page.click('input[aria-label="select dead-a"]');
  await page.click('input[aria-label="select dead-b"]');
  await page.$$eval(".actions button", (buttons) => buttons.find((button) => button.textContent.startsWith("Replay 2 selected")).click());
  await page.waitForFunction(() => ["dead-a: replayed", "dead-b: replayed"].every((text) => document.querySelector('.notice[role="status"]')?.textContent.includes(text)), { timeout: 15000 });
  // Replayed, each fails again: a second attempt, DEAD again.
  for (const id of ["dead-a", "dead-b"]) {
    const until = Date.now() + 30000;
    let view = null;
    while (Date.now() < until) {
      view = (await apiCall(tokens.operator, `/v1/jobs/${id}`)).json;
      if (view && view.state === "DEAD" && view.attempt === 1) break;
      await sleep(200);
    }
    expect(view && view.state === "DEAD" && view.attempt === 1, `${id} after the replay: ${JSON.stringify(view && { state: view.state, attempt: view.attempt })}`);
  }
  expect(!(await textOf(page, "header nav")).includes("Audit"), "an operator is offered the audit log");
  await finish(opened);
  const admin = await openAs(tokens.admin);
  await go(admin.page, "#/audit?job=dead-a");
  await admin.page.waitForFunction(() => [...document.querySelectorAll("tbody tr")].some((row) => row.textContent.includes("olga") && row.textContent.includes("REQUESTED")), { timeout: 30000 });
  await finish(admin);
});

scenario("the console signs out when the token expires, and refuses a bad token with the API's reason", async () => {
  const opened = await openAs(issueShortLived());
  const { page } = opened;
  await page.waitForSelector("textarea#token", { timeout: 30000 }); // back on the sign-in page
  const message = await textOf(page, ".signin .error");
  expect(message.includes("expired"), `signed out with: ${message}`);
  await page.type("textarea#token", "not-a-token");
  await page.click('.signin button[type="submit"]');
  await page.waitForFunction(() => document.querySelector(".signin .error")?.textContent.includes("refused"), { timeout: 15000 });
  await finish(opened);
});

scenario("usable at a phone's width and by keyboard alone", async () => {
  const submitted = await apiCall(tokens.operator, "/v1/jobs", { method: "POST", body: { id: "phone-1", noop: {} } });
  expect(submitted.status === 202, `the phone scenario's job: HTTP ${submitted.status}`);
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  await page.setViewport({ width: 390, height: 844 }); // (isMobile would reload the page, and a reload signs out)
  for (const hash of ["#/", "#/jobs", "#/jobs/phone-1", "#/new"]) {
    await go(page, hash);
    await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]') && document.querySelector("main h1"), { timeout: 15000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 1, `${hash} is ${overflow} px wider than a phone's screen`);
  }
  await go(page, "#/jobs/phone-1");
  await waitForJobState(page, "SUCCEEDED");
  const order = await page.$$eval('[data-testid="timeline"] li .state', (nodes) => nodes.map((node) => node.textContent));
  expect(order.join(" > ") === "QUEUED > RUNNING > SUCCEEDED", `the timeline's order: ${order.join(" > ")}`);
  await shot(page, "phone-job");
  // Keyboard: Tab reaches the pages in the header, Enter opens one, and focus is visible.
  await page.setViewport({ width: 1280, height: 800 });
  await go(page, "#/");
  await page.waitForSelector('[data-testid="jobs-total"]');
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  let reached = "";
  for (let press = 0; press < 8 && reached !== "Jobs"; press += 1) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => (document.activeElement && document.activeElement.closest("header nav") ? document.activeElement.textContent : ""));
  }
  expect(reached === "Jobs", "Tab did not reach the Jobs link in the header within 8 presses");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  expect(outline !== "none", "the focused link shows no outline");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => window.location.hash === "#/jobs", { timeout: 5000 });
  await finish(opened);
});

scenario("paging through 5,000 jobs: 50 a page, each once, never everything at once", async () => {
  let consistency = "";
  for (let batch = 0; batch < 5; batch += 1) {
    const jobs = Array.from({ length: 1000 }, (_, index) => ({ id: `page-${batch}-${String(index).padStart(4, "0")}`, delay: "3600s", labels: { batch: "paging" }, noop: {} }));
    const answer = await apiCall(tokens.operator, "/v1/jobs:batch", { method: "POST", body: { jobs } });
    expect(answer.status === 200 && answer.json.accepted === 1000, `batch ${batch}: HTTP ${answer.status} ${JSON.stringify(answer.json).slice(0, 300)}`);
    consistency = [consistency, answer.headers.get("kcron-consistency")].filter(Boolean).join(", ");
  }
  const covered = await apiCall(tokens.operator, "/v1/jobs?label=batch%3Dpaging&page_size=1", { consistency });
  expect(covered.status === 200, `the view did not cover the batches: HTTP ${covered.status}`);
  const opened = await openAs(tokens.operator);
  const { page } = opened;
  await go(page, "#/jobs?label=batch%3Dpaging");
  const seen = new Set();
  let pages = 0;
  let largest = 0;
  for (; pages < 200; pages += 1) {
    await page.waitForFunction((count) => document.querySelector(".pager span")?.textContent.startsWith(`page ${count}`) && document.querySelector("table.jobs")?.getAttribute("aria-busy") === "false", { timeout: 15000 }, pages + 1);
    const ids = await page.$$eval("table.jobs tbody tr td:first-child a", (nodes) => nodes.map((node) => node.textContent));
    largest = Math.max(largest, ids.length);
    for (const id of ids) {
      expect(!seen.has(id), `${id} shown twice, on page ${pages + 1}`);
      seen.add(id);
    }
    if (pages === 1) await shot(page, "jobs-page");
    const older = await page.$(".pager button:last-child");
    if (await older.evaluate((node) => node.disabled)) break;
    await older.click();
  }
  expect(seen.size === 5000, `paged through ${seen.size} jobs in ${pages + 1} pages`);
  expect(largest <= 50, `a page held ${largest} rows`);
  // The overview with everything the scenarios made.
  await go(page, "#/");
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="jobs-total"]')?.textContent) >= 5000, { timeout: 15000 });
  await shot(page, "overview");
  await finish(opened);
});

scenario("a flow's page shows its state and counts and its nodes 50 a page, linked both ways with its nodes' jobs", async () => {
  // 55 nodes: root, then 54 that depend on it (a second page of nodes).
  const nodes = [{ name: "root", job: { noop: {} } }];
  for (let index = 0; index < 54; index += 1) nodes.push({ name: `n${String(index).padStart(2, "0")}`, job: { noop: {} }, depends_on: ["root"] });
  const submitted = await apiCall(tokens.member, "/v1/flows", { method: "POST", body: { flow: { id: "nightly", nodes } } });
  expect(submitted.status === 202, `the flow: HTTP ${submitted.status} ${JSON.stringify(submitted.json).slice(0, 300)}`);
  const opened = await openAs(tokens.member);
  const { page } = opened;
  await go(page, "#/flows/nightly");
  await page.waitForFunction(() => document.querySelector(".flow-title .state")?.textContent === "SUCCEEDED", { timeout: 60000 });
  await page.waitForFunction(() => document.querySelector('[data-testid="flow-counts"]')?.textContent.includes("55 of 55 ended: 55 succeeded"), { timeout: 15000 });
  const first = await page.$$eval('[data-testid="flow-nodes"] tbody tr td:first-child a', (links) => links.map((link) => link.textContent));
  expect(first.length === 50 && first[0] === "n00" && first.at(-1) === "n49", `the first page of nodes: ${first.length}: ${first[0]}..${first.at(-1)}`);
  const states = await page.$$eval('[data-testid="flow-nodes"] tbody tr .state', (cells) => cells.map((cell) => cell.textContent));
  expect(states.every((state) => state === "SUCCEEDED"), `node states: ${[...new Set(states)].join(", ")}`);
  await shot(page, "flow");
  await page.click(".pager button:last-child");
  await page.waitForFunction(() => document.querySelector(".pager span")?.textContent.includes("nodes page 2") && document.querySelectorAll('[data-testid="flow-nodes"] tbody tr').length === 5, { timeout: 15000 });
  const second = await page.$$eval('[data-testid="flow-nodes"] tbody tr td:first-child a', (links) => links.map((link) => link.textContent));
  expect(second.join(",") === "n50,n51,n52,n53,root", `the second page of nodes: ${second.join(",")}`);
  // A node's job links back to its flow.
  await page.click('[data-testid="flow-nodes"] tbody tr:last-child td:first-child a');
  await page.waitForFunction(() => window.location.hash === "#/jobs/nightly%2Froot", { timeout: 15000 });
  await waitForJobState(page, "SUCCEEDED");
  await page.click("a.flow-link");
  await page.waitForFunction(() => window.location.hash === "#/flows/nightly" && document.querySelector(".flow-title"), { timeout: 15000 });
  // It ended without a failure: nothing to cancel or retry. In the list of flows.
  expect((await page.$$(".actions button")).length === 0, "actions offered on a flow that succeeded");
  await go(page, "#/flows");
  await page.waitForFunction(() => [...document.querySelectorAll("table.flows tbody tr td:first-child a")].some((link) => link.textContent === "nightly"), { timeout: 15000 });
  // Another tenant gets the API's 404.
  const other = await apiCall(tokens.otherTenant, "/v1/flows/nightly");
  expect(other.status === 404, `another tenant: HTTP ${other.status}`);
  await finish(opened);
});

// ---- run ----------------------------------------------------------------------------------------
async function main() {
  log(`prefix ${prefix}, work dir ${work}`);
  execFileSync(join(bin, "kcron"), ["topics", "create", "--jobs-partitions", "2", "--exec-partitions", "1", "--output-partitions", "2", "--schedules-partitions", "1"], { env: baseEnv, stdio: ["ignore", "ignore", "inherit"] });
  execFileSync(join(bin, "kcron"), ["token", "keygen", "--alg", "ES256", "--kid", "k1", "--private", join(work, "key.pem"), "--jwks", join(work, "jwks.json")], { stdio: "ignore" });
  const issueFor = (tenant, role, sub, ttl) => execFileSync(join(bin, "kcron"), ["token", "issue", "--tenant", tenant, "--role", role, "--sub", sub, "--ttl", ttl, "--key", join(work, "key.pem"), "--kid", "k1"]).toString().trim();
  const issue = (tenant, role, sub) => issueFor(tenant, role, sub, "1h");
  tokens = {
    operator: issue("acme", "operator", "olga"),
    member: issue("acme", "member", "mia"),
    viewer: issue("acme", "viewer", "vera"),
    admin: issue("acme", "admin", "ada"),
    otherTenant: issue("beta", "member", "bob"),
  };
  issueShortLived = () => issueFor("acme", "viewer", "short", "4s");

  await new Promise((done) => hookServer.listen(0, "127.0.0.1", done));
  hooks.port = hookServer.address().port;
  const apiPort = await freePort();
  api = `http://127.0.0.1:${apiPort}`;
  start("dispatcher", "kcron-dispatcher", { KCRON_STATE_DIR: join(work, "dispatcher-state"), KCRON_INSTANCE_ID: "dispatcher-1" });
  start("worker", "kcron-worker", { KCRON_INSTANCE_ID: "worker-1", KCRON_HTTP_ALLOW: "127.0.0.1/32" });
  start("cron-producer", "kcron-cron-producer", { KCRON_STATE_DIR: join(work, "cron-state"), KCRON_SCHEDULES_PARTITIONS: "1" });
  const apiProgram = start("api", "kcron-api", { KCRON_STATE_DIR: join(work, "api-view"), KCRON_API_PORT: String(apiPort), KCRON_AUTH_JWKS_FILE: join(work, "jwks.json") });
  await waitFor("every program assigned and kcron-api serving tenants' writes", () =>
    programs.filter((entry) => entry !== apiProgram).every((entry) => entry.text.includes("event=assigned")) && apiProgram.text.includes("event=api_listening") && apiProgram.text.includes("feature=tenant-keys open=true"),
  );
  log(`programs ready; kcron-api on ${api}, webhook on 127.0.0.1:${hooks.port}`);

  browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] });
  for (const { name, run } of scenarios) {
    if (only && !name.includes(only)) continue;
    ran += 1;
    const begun = Date.now();
    try {
      await run();
      log(`PASS ${name} (${((Date.now() - begun) / 1000).toFixed(1)} s)`);
    } catch (error) {
      failures.push(name);
      log(`FAIL ${name}: ${error.message}`);
      for (const page of await browser.pages()) await page.screenshot({ path: join(out, `failed-${failures.length}.png`) }).catch(() => {});
      // The failed scenario's contexts, closed: the next scenario starts clean.
      for (const context of browser.browserContexts()) if (context !== browser.defaultBrowserContext()) await context.close().catch(() => {});
    }
  }
}

let code = 0;
let ran = 0;
try {
  await main();
  code = failures.length === 0 && ran > 0 ? 0 : 1;
  if (ran === 0) log(`no scenario matches --only '${only}'`);
} catch (error) {
  log(`FAIL setup: ${error.stack || error.message}`);
  code = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  hookServer.close();
  stopAll();
  await waitFor("the programs to stop", () => programs.every((entry) => entry.exited !== undefined), 15000, 100).catch(() => programs.forEach((entry) => entry.child.kill("SIGKILL")));
  if (code !== 0) {
    for (const entry of programs) {
      writeFileSync(join(out, `${entry.name}.log`), entry.text);
      log(`--- last lines of ${entry.name}'s log\n${entry.text.split("\n").slice(-15).join("\n")}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
log(code === 0 ? `${ran} of ${scenarios.length} scenarios ran and passed; screenshots in ${out}` : `${failures.length || "setup"} failed: ${failures.join("; ")}`);
process.exit(code);

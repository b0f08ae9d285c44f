// The console's first load, measured in Chromium (puppeteer-core): for each run, a fresh browser
// context opens kcron-api's / with a token in the fragment and goes to the jobs page; the time is
// from the navigation's start until the jobs table holds its first page of rows, and the bytes are
// what crossed the wire for the console's own files (gzipped) and for the API calls until then.
// Writes a JSON summary (median and each run).
//   node load.mjs --url http://127.0.0.1:8080 --token-file FILE --modules NODE_MODULES --out FILE
//                 [--runs 5] [--chromium /usr/lib/chromium/chromium]
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
const url = option("--url", "http://127.0.0.1:8080");
const token = readFileSync(option("--token-file", "token"), "utf8").trim();
const runs = Number(option("--runs", "5"));
const out = resolve(option("--out", "console.json"));
const chromium = option("--chromium", process.env.KCRON_CHROMIUM || "/usr/lib/chromium/chromium");
const puppeteer = createRequire(join(resolve(option("--modules", "node_modules")), "noop.js"))("puppeteer-core");

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null;
};

const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] });
const samples = [];
try {
  for (let run = 0; run < runs; run += 1) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const client = await page.createCDPSession();
    await client.send("Network.enable");
    await client.send("Network.setCacheDisabled", { cacheDisabled: true });
    const requests = new Map();
    let assetBytes = 0;
    let apiBytes = 0;
    client.on("Network.requestWillBeSent", (event) => requests.set(event.requestId, event.request.url));
    client.on("Network.loadingFinished", (event) => {
      const path = new URL(requests.get(event.requestId) || url).pathname;
      if (path.startsWith("/v1/")) apiBytes += event.encodedDataLength;
      else assetBytes += event.encodedDataLength;
    });
    const started = Date.now();
    await page.goto(`${url}/#token=${encodeURIComponent(token)}`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector(".who", { timeout: 30000 });
    const signedIn = Date.now() - started;
    await page.evaluate(() => {
      window.location.hash = "#/jobs";
    });
    await page.waitForFunction(() => document.querySelectorAll("table.jobs tbody tr").length > 0 && document.querySelector("table.jobs").getAttribute("aria-busy") === "false", { timeout: 60000 });
    const usable = Date.now() - started;
    const rows = await page.$$eval("table.jobs tbody tr", (nodes) => nodes.length);
    samples.push({ signed_in_ms: signedIn, jobs_page_ms: usable, rows, asset_bytes: assetBytes, api_bytes: apiBytes });
    await context.close();
  }
} finally {
  await browser.close();
}
const summary = {
  runs: samples.length,
  jobs_page_ms_p50: median(samples.map((sample) => sample.jobs_page_ms)),
  signed_in_ms_p50: median(samples.map((sample) => sample.signed_in_ms)),
  asset_bytes: median(samples.map((sample) => sample.asset_bytes)),
  api_bytes_p50: median(samples.map((sample) => sample.api_bytes)),
  rows: median(samples.map((sample) => sample.rows)),
  samples,
};
writeFileSync(out, JSON.stringify(summary, null, 1));
console.log(`console: jobs page usable after ${summary.jobs_page_ms_p50} ms (median of ${summary.runs}), ${summary.asset_bytes} bytes of console files, ${summary.api_bytes_p50} bytes of API answers`);

// bench/peer/peer.mjs — one scenario of kcron's benchmark peer: the same workload on BullMQ over a
// local Redis (started by bench/peer/run). The producer (this process: Queue.addBulk in batches of
// 1000) and the Worker (a forked copy of this script, `--role worker`, no-op async processor) run
// as two processes, like kcron's load generator and worker. Writes one JSON summary (--out).
//
// Usage: node peer.mjs --redis-port P --scenario immediate|spread|burst|pending --count N
//          [--rate R] [--lead-ms MS] [--concurrency 50] [--payload-bytes 100] [--timeout-s S]
//          [--redis-pid PID] --out FILE.json
//   immediate  N jobs due now, added as fast as addBulk goes
//   spread     N jobs due at instants spread at --rate per second, the first --lead-ms (5000)
//              after the start; each batch is added --lead-ms before its first job is due
//   burst      N jobs all due at one instant --lead-ms (30000) after the start
//   pending    N jobs due --lead-ms (3600000) later; no worker: Redis memory and RSS per job
//   --redis-pid  the redis-server's pid: its RSS (pending) and CPU seconds are reported
// Exit status: 0 complete, 3 time limit reached (JSON written with "complete": false), 1 error.
// Times are Date.now() milliseconds; percentiles are nearest-rank on the sorted samples.

import { fork, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const BATCH = 1000; // addBulk batch size, as in the peer baseline
const SCENARIOS = ['immediate', 'spread', 'burst', 'pending'];
const DEFAULT_LEAD_MS = { spread: 5000, burst: 30000, pending: 3600000 };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const round = (x, digits = 1) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

// ---------------------------------------------------------------------------------------------
// Flags
function parseArgs(argv) {
  const known = {
    '--redis-port': 'int', '--scenario': 'str', '--count': 'int', '--rate': 'int', '--lead-ms': 'int',
    '--concurrency': 'int', '--payload-bytes': 'int', '--timeout-s': 'int', '--out': 'str',
    '--redis-pid': 'int', '--role': 'str', '--queue': 'str',
  };
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (flag === '-h' || flag === '--help') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n\n')[0].replace(/^\/\/ ?/gm, '') + '\n');
      process.exit(0);
    }
    if (!(flag in known)) die(`unknown argument '${flag}'`);
    const value = argv[i + 1];
    if (value === undefined) die(`${flag} needs a value`);
    const name = flag.slice(2).replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (known[flag] === 'int') {
      if (!/^[0-9]+$/.test(value)) die(`${flag} needs a whole number, got '${value}'`);
      args[name] = Number(value);
    } else {
      args[name] = value;
    }
  }
  return args;
}

function die(message) {
  process.stderr.write(`peer: error: ${message}\n`);
  process.exit(1);
}
const say = (message) => process.stderr.write(`peer: ${message}\n`);

// ---------------------------------------------------------------------------------------------
// Helpers
function percentiles(values, count) { // {p50, p99, max} of the first `count` values, nearest rank
  if (count === 0) return { p50: null, p99: null, max: null };
  const sorted = Float64Array.from(values.subarray(0, count)).sort();
  const rank = (p) => sorted[Math.max(1, Math.ceil((p / 100) * count)) - 1];
  return { p50: round(rank(50)), p99: round(rank(99)), max: round(sorted[count - 1]) };
}

function cpuSeconds(since) { // user+system seconds of this process since process.cpuUsage() `since`
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

let clkTck = 0;
function procCpuSeconds(pid) { // user+system seconds of another process (null if unreadable)
  try {
    if (!clkTck) clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clkTck;
  } catch {
    return null;
  }
}

function rssBytes(pid) { // VmRSS of a process in bytes (null if unreadable)
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function info(text, field) {
  const match = text.match(new RegExp(`^${field}:(.*)\\r?$`, 'm'));
  return match ? match[1].trim() : null;
}

function packageVersion(name) {
  try {
    const require = createRequire(import.meta.url);
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  } catch {
    return null;
  }
}

function payloadOf(bytes) {
  return 'x'.repeat(bytes);
}

// ---------------------------------------------------------------------------------------------
// Worker process: a BullMQ Worker with a no-op async processor; per-job samples in typed arrays
// (processor start, processor return, and 'completed' = the job was moved to completed in Redis),
// indexed by the job's data.n. Sends {type:'ready'}, {type:'done'} when every job has completed,
// and {type:'samples', ...} when the producer sends {type:'stop'}.
async function runWorker(args) {
  const count = args.count;
  const started = new Float64Array(count).fill(NaN);
  const returned = new Float64Array(count).fill(NaN);
  const completed = new Float64Array(count).fill(NaN);
  let processed = 0, completedCount = 0, failed = 0, duplicates = 0, foreign = 0, doneSent = false;

  const worker = new Worker(
    args.queue,
    async (job) => {
      const t = Date.now();
      const n = job.data.n;
      if (!(n >= 0 && n < count)) { foreign++; return; }
      if (!Number.isNaN(started[n])) duplicates++;
      started[n] = t;
      processed++;
      returned[n] = Date.now();
    },
    { connection: { host: '127.0.0.1', port: args.redisPort }, concurrency: args.concurrency, autorun: false },
  );
  const checkDone = () => {
    if (!doneSent && completedCount + failed >= count) {
      doneSent = true;
      process.send({ type: 'done' });
    }
  };
  worker.on('completed', (job) => {
    const n = job.data.n;
    if (!(n >= 0 && n < count) || !Number.isNaN(completed[n])) return;
    completed[n] = Date.now();
    completedCount++;
    checkDone();
  });
  worker.on('failed', () => { failed++; checkDone(); });
  worker.on('error', (error) => say(`worker: ${error.message}`));

  await worker.waitUntilReady();
  const running = worker.run();
  running.catch((error) => say(`worker: run: ${error.message}`));
  const cpu0 = process.cpuUsage();

  process.on('message', async (message) => {
    if (message?.type !== 'stop') return;
    const cpu = cpuSeconds(cpu0);
    const closing = worker.close(Boolean(message.force)).catch((error) => say(`worker: close: ${error.message}`));
    await Promise.race([closing, sleep(10000)]);
    process.send({
      type: 'samples', started, returned, completed, processed, completedCount, failed, duplicates, foreign,
      cpu_s: cpu,
    }, () => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0)); // the producer is gone
  process.send({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------
// Producer process: runs the scenario, forks the worker, writes the JSON.
async function runProducer(args) {
  const scenario = args.scenario;
  const count = args.count;
  const leadMs = args.leadMs ?? DEFAULT_LEAD_MS[scenario] ?? 0;
  const rate = args.rate ?? 0;
  if (scenario === 'spread' && !(rate > 0)) die('--scenario spread needs --rate R > 0');
  const timeoutS = args.timeoutS ?? defaultTimeoutS(scenario, count, rate, leadMs);
  const launched = Date.now();
  const deadline = launched + timeoutS * 1000;
  const queueName = `peer-${scenario}-${randomBytes(4).toString('hex')}`;
  const connection = { host: '127.0.0.1', port: args.redisPort };
  const payload = payloadOf(args.payloadBytes);
  const redisPid = args.redisPid ?? null;

  const result = {
    scenario, complete: false, jobs: count,
    settings: {
      queue: queueName, concurrency: scenario === 'pending' ? null : args.concurrency,
      payload_bytes: args.payloadBytes, add_batch: BATCH, remove_on_complete: true, remove_on_fail: true,
      rate_per_s: scenario === 'spread' ? rate : null, lead_ms: scenario === 'immediate' ? null : leadMs,
      timeout_s: timeoutS, producer_and_worker: scenario === 'pending' ? 'producer only' : 'separate processes',
    },
    versions: { node: process.versions.node, bullmq: packageVersion('bullmq'), ioredis: packageVersion('ioredis'), redis: null },
    error: null,
  };

  // What the producer has seen so far (reported as is when the time limit is reached).
  const batches = Math.ceil(count / BATCH);
  const batchSubmitted = new Float64Array(batches).fill(NaN); // when each addBulk was called
  let added = 0, addFirst = NaN, addLast = NaN, behindMaxMs = 0, addedLate = 0;
  let lastBatchSubmitted = NaN, lastBatchSize = 0; // the last addBulk that returned
  let startMs = NaN; // the scenario's start: due instants are counted from here
  let cpu0 = null, redisCpu0 = null;

  const admin = new Redis({ host: '127.0.0.1', port: args.redisPort, lazyConnect: true, maxRetriesPerRequest: 1 });
  const queue = new Queue(queueName, { connection });
  let redisErrors = 0; // reported once each; the failing command says the rest
  admin.on('error', (error) => { if (!redisErrors++) say(`redis: ${error.message}`); });
  queue.on('error', (error) => { if (!redisErrors++) say(`queue: ${error.message}`); });
  let child = null, workerExited = null;
  const pending = { ready: null, done: null, samples: null };
  const waiters = {};
  const waitFor = (type) => new Promise((resolve) => { pending[type] ? resolve(pending[type]) : (waiters[type] = resolve); });

  let finishing = false;
  async function finish(reason, error) {
    if (finishing) return;
    finishing = true;
    clearTimeout(timer);
    if (error) result.error = String(error?.message ?? error);
    const complete = reason === 'complete';
    let samples = null;
    if (child && workerExited === null) {
      child.send({ type: 'stop', force: !complete });
      samples = await Promise.race([waitFor('samples'), sleep(20000).then(() => null)]);
      if (!samples) {
        say('the worker sent no samples within 20 s; killing it');
        child.kill('SIGKILL');
      }
    }
    try {
      summarize(samples, complete);
    } catch (summaryError) {
      result.error = result.error ?? `summary: ${summaryError.message}`;
    }
    result.complete = complete && !result.error;
    if (reason === 'timeout') result.error = result.error ?? `time limit of ${timeoutS} s reached`;
    const out = `${args.out}.tmp`;
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    renameSync(out, args.out);
    say(`${scenario}: ${result.complete ? 'complete' : reason === 'timeout' ? 'INCOMPLETE' : 'FAILED'} -> ${args.out}`);
    await Promise.race([Promise.allSettled([queue.close(), admin.quit()]), sleep(5000)]);
    process.exit(result.complete ? 0 : reason === 'timeout' ? 3 : 1);
  }
  const timer = setTimeout(() => {
    say(`${scenario}: time limit of ${timeoutS} s reached (${added}/${count} jobs added)`);
    finish('timeout');
  }, deadline - Date.now());

  const dueOf = (i) => scenario === 'spread' ? Math.round(startMs + leadMs + (i * 1000) / rate)
    : scenario === 'burst' ? startMs + leadMs
      : NaN;

  function summarize(samples, complete) {
    const addS = (addLast - addFirst) / 1000;
    let addRate = added > 0 && addS > 0 ? added / addS : NaN;
    if (scenario === 'spread') { // paced: jobs per second of the schedule, up to the last batch's call
      const lastCall = lastBatchSubmitted - addFirst;
      addRate = lastCall > 0 ? (added - lastBatchSize) / (lastCall / 1000) : NaN;
    }
    Object.assign(result, {
      jobs_added: added,
      add_s: round(addS, 3),
      add_jobs_per_s: Number.isFinite(addRate) ? Math.round(addRate) : null,
    });
    result.cpu_s = {
      producer: cpu0 ? round(cpuSeconds(cpu0), 2) : null,
      worker: samples ? round(samples.cpu_s, 2) : null,
      redis: redisCpu0 !== null ? round(procCpuSeconds(redisPid) - redisCpu0, 2) : null,
    };
    if (scenario === 'pending' || !samples) return;

    const { started, returned, completed } = samples;
    Object.assign(result, {
      jobs_processed: samples.processed, jobs_completed: samples.completedCount, jobs_failed: samples.failed,
      duplicates: samples.duplicates,
    });
    if (samples.foreign) result.foreign_jobs = samples.foreign;
    // Differences per job against a reference instant: ref(i) is the batch's submit time
    // (immediate) or the job's intended due instant (spread, burst).
    const ref = scenario === 'immediate' ? (i) => batchSubmitted[Math.floor(i / BATCH)] : dueOf;
    const diff = (times) => {
      const values = new Float64Array(count);
      let n = 0, last = -Infinity;
      for (let i = 0; i < count; i++) {
        if (Number.isNaN(times[i])) continue;
        values[n++] = times[i] - ref(i);
        if (times[i] > last) last = times[i];
      }
      return { stats: percentiles(values, n), last, n };
    };
    const start = diff(started), done = diff(returned), acked = diff(completed);

    if (scenario === 'immediate') {
      const elapsed = (done.last - addFirst) / 1000;
      const ackedElapsed = (acked.last - addFirst) / 1000;
      Object.assign(result, {
        elapsed_s: complete ? round(elapsed, 3) : null,
        throughput_jobs_per_s: complete ? Math.round(count / elapsed) : null,
        submit_to_start_ms: start.stats,
        submit_to_complete_ms: done.stats,
        acked_elapsed_s: complete ? round(ackedElapsed, 3) : null,
        throughput_acked_jobs_per_s: complete ? Math.round(count / ackedElapsed) : null,
        submit_to_acked_ms: acked.stats,
      });
    } else if (scenario === 'spread') {
      Object.assign(result, {
        started_minus_due_ms: start.stats,
        completed_minus_due_ms: done.stats,
        acked_minus_due_ms: acked.stats,
      });
    } else if (scenario === 'burst') {
      const instant = startMs + leadMs;
      Object.assign(result, {
        all_started_s: complete ? round((start.last - instant) / 1000, 3) : null,
        all_completed_s: complete ? round((done.last - instant) / 1000, 3) : null,
        all_acked_s: complete ? round((acked.last - instant) / 1000, 3) : null,
        started_minus_due_ms: start.stats,
        completed_minus_due_ms: done.stats,
        acked_minus_due_ms: acked.stats,
      });
    }
  }

  // addBulk of jobs [first, first + size): due now (immediate), at its due instant (spread, burst)
  // or leadMs from now (pending). Returns when Redis has them.
  async function addBatch(first, size) {
    const now = Date.now();
    const jobs = new Array(size);
    for (let k = 0; k < size; k++) {
      const n = first + k;
      let delay = 0;
      if (scenario === 'pending') {
        delay = leadMs;
      } else if (scenario !== 'immediate') {
        delay = dueOf(n) - now;
        if (delay <= 0) { delay = 0; addedLate++; }
      }
      const data = args.payloadBytes > 0 ? { n, p: payload } : { n };
      const opts = { removeOnComplete: true, removeOnFail: true };
      // Spread, burst: due = timestamp + delay exactly. Immediate, pending: BullMQ's own timestamp
      // (an explicit one is stored in the job's opts too, and costs Redis memory).
      if (scenario === 'spread' || scenario === 'burst') opts.timestamp = now;
      if (delay > 0) opts.delay = delay;
      jobs[k] = { name: 'j', data, opts };
    }
    batchSubmitted[Math.floor(first / BATCH)] = now;
    if (Number.isNaN(addFirst)) addFirst = now;
    await queue.addBulk(jobs);
    added += size;
    addLast = Date.now();
    lastBatchSubmitted = now;
    lastBatchSize = size;
  }

  try {
    await Promise.race([
      (async () => {
        try {
          await admin.connect();
        } catch (error) {
          throw new Error(`could not connect to Redis at 127.0.0.1:${args.redisPort}: ${error.message}`);
        }
        await queue.waitUntilReady();
      })(),
      sleep(30000).then(() => { throw new Error(`could not connect to Redis at 127.0.0.1:${args.redisPort} within 30 s`); }),
    ]);
    result.versions.redis = info(await admin.info('server'), 'redis_version');

    if (scenario !== 'pending') {
      child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), '--role', 'worker', '--queue', queueName], {
        serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child.on('message', (message) => {
        pending[message.type] = message;
        waiters[message.type]?.(message);
      });
      child.on('exit', (code, signal) => {
        workerExited = signal ?? code;
        if (!pending.samples && !finishing) finish('error', new Error(`the worker exited (${signal ?? `status ${code}`})`));
      });
      const ready = await Promise.race([waitFor('ready'), sleep(30000).then(() => null)]);
      if (!ready) throw new Error('the worker was not ready within 30 s');
    }

    let memoryBefore = null, rssBefore = null;
    if (scenario === 'pending') {
      memoryBefore = Number(info(await admin.info('memory'), 'used_memory'));
      rssBefore = redisPid ? rssBytes(redisPid) : null;
    }

    cpu0 = process.cpuUsage();
    redisCpu0 = redisPid ? procCpuSeconds(redisPid) : null;
    startMs = Date.now();
    say(`${scenario}: ${count} jobs on queue ${queueName}` +
      (scenario === 'spread' ? `, ${rate} due/s from ${leadMs} ms after the start` : '') +
      (scenario === 'burst' ? `, all due ${leadMs} ms after the start` : '') +
      (scenario === 'pending' ? `, due ${leadMs} ms later` : ''));

    for (let b = 0; b < batches; b++) {
      const first = b * BATCH;
      if (scenario === 'spread') { // each batch is added leadMs before its first job is due
        const scheduled = dueOf(first) - leadMs;
        const now = Date.now();
        if (now < scheduled) await sleep(scheduled - now);
        else behindMaxMs = Math.max(behindMaxMs, now - scheduled);
      }
      await addBatch(first, Math.min(BATCH, count - first));
    }
    say(`${scenario}: ${added} jobs added in ${((addLast - addFirst) / 1000).toFixed(2)} s`);
    if (scenario === 'spread') {
      Object.assign(result, {
        add_behind_max_ms: behindMaxMs, added_late_jobs: addedLate,
        intended_add_jobs_per_s: rate,
      });
    }
    if (scenario === 'burst') {
      Object.assign(result, {
        instant_after_start_ms: leadMs,
        add_finished_before_instant: addLast < startMs + leadMs,
        add_finished_minus_instant_s: round((addLast - (startMs + leadMs)) / 1000, 3),
        added_late_jobs: addedLate,
      });
    }

    if (scenario === 'pending') {
      const memoryAfter = Number(info(await admin.info('memory'), 'used_memory'));
      const rssAfter = redisPid ? rssBytes(redisPid) : null;
      const delayed = await queue.getDelayedCount();
      Object.assign(result, {
        pending_jobs: delayed,
        used_memory_before: memoryBefore, used_memory_after: memoryAfter,
        bytes_per_pending_job: round((memoryAfter - memoryBefore) / count, 1),
        rss_before_mib: rssBefore !== null ? round(rssBefore / 1048576, 1) : null,
        rss_mib: rssAfter !== null ? round(rssAfter / 1048576, 1) : null,
        rss_bytes_per_pending_job: rssBefore !== null && rssAfter !== null ? round((rssAfter - rssBefore) / count, 1) : null,
      });
      if (delayed !== count) throw new Error(`${delayed} delayed jobs in Redis, expected ${count}`);
      await finish('complete');
      return;
    }

    const done = await waitFor('done');
    if (done) await finish('complete');
  } catch (error) {
    say(`${scenario}: ${error.message}`);
    await finish('error', error);
  }
}

function defaultTimeoutS(scenario, count, rate, leadMs) { // generous: 1k jobs/s, plus the schedule
  const base = 120 + Math.ceil(count / 1000);
  if (scenario === 'spread') return base + Math.ceil(leadMs / 1000 + count / rate);
  if (scenario === 'burst') return base + Math.ceil(leadMs / 1000);
  return base;
}

// ---------------------------------------------------------------------------------------------
const args = parseArgs(process.argv.slice(2));
args.concurrency ??= 50;
args.payloadBytes ??= 100;
if (args.redisPort === undefined) die('--redis-port is required');
if (!SCENARIOS.includes(args.scenario)) die(`--scenario must be one of ${SCENARIOS.join(', ')}`);
if (!(args.count > 0)) die('--count N (> 0) is required');
if (!(args.concurrency > 0)) die('--concurrency must be > 0');
if (args.role === 'worker') {
  if (!process.send || !args.queue) die('--role worker is started by the producer');
  await runWorker(args);
} else {
  if (args.role !== undefined) die(`unknown --role '${args.role}'`);
  if (!args.out) die('--out FILE.json is required');
  await runProducer(args);
}

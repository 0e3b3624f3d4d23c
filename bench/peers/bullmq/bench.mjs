// `chatter-worker bench queue` (src/bench.rs) run through BullMQ, for a same-machine, same-Redis
// comparison. Same four phases, same definitions, no-op jobs:
//   1. enqueue: N jobs with no worker running, Queue.addBulk in calls of 10,000 (enqueue/s);
//   2. drain: a Worker with `concurrency: C` is started over that backlog; jobs/s from its start
//      until the N-th handler has run;
//   3. end-to-end: the same worker running, a producer adds N jobs in addBulk calls of 500 and keeps
//      at most 5,000 jobs outstanding (added but whose handler has not run yet);
//      jobs/s = N / (N-th handler run − first add);
//   4. latency: idle worker, one job at a time (queue.add), time from just before the add call to
//      the moment the handler starts; p50 / p99 in ms over M samples.
// Handlers are counted when they start (as in src/bench.rs). Settings: the Worker keeps at most
// 1,000 completed jobs (`removeOnComplete: { count: 1000 }`, memory stays bounded), failed jobs as
// BullMQ's default (kept; a no-op never fails); everything else is BullMQ's defaults. A fresh
// queue name per run, obliterated at the end.
//
//   node bench.mjs [--redis URL] [--jobs N] [--concurrency C] [--latency-samples M]
//
// Prints one JSON object:
//   {"system":"bullmq <version>","enqueue_per_s":..,"drain_per_s":..,"end_to_end_per_s":..,
//    "latency_p50_ms":..,"latency_p99_ms":..,"failures":[]}
import { Queue, Worker } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const PHASE_LIMIT_MS = 300_000;
const ENQUEUE_CHUNK = 10_000;
const PRODUCER_BATCH = 500;
const OUTSTANDING = 5000;
const JOB_NAME = 'bench_noop';

function parseArgs(argv) {
  const o = {
    redis: process.env.REDIS_URL || 'redis://127.0.0.1:6379/',
    jobs: 100_000,
    concurrency: 256,
    latencySamples: 2000,
  };
  const num = (flag, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: not a count: ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    let [flag, val] = argv[i].split(/=(.*)/s, 2);
    const next = () => {
      if (val !== undefined) return val;
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--redis':
      case '--redis-url':
        o.redis = next();
        break;
      case '--jobs':
        o.jobs = num(flag, next());
        break;
      case '--concurrency':
        o.concurrency = num(flag, next());
        break;
      case '--latency-samples':
        o.latencySamples = num(flag, next());
        break;
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: node bench.mjs [--redis URL] [--jobs N] [--concurrency C] [--latency-samples M]\n',
        );
        process.exit(0);
      // falls through (unreachable)
      default:
        throw new Error(`unknown argument: ${argv[i]}`);
    }
  }
  if (o.concurrency < 1) throw new Error('--concurrency must be at least 1');
  return o;
}

function bullmqVersion() {
  const require = createRequire(import.meta.url);
  // bullmq's "exports" may not expose package.json: find it next to its main entry.
  const main = require.resolve('bullmq');
  const root = main.slice(0, main.lastIndexOf('/dist/'));
  return JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).version;
}

const nowNs = () => process.hrtime.bigint();
const perS = (n, ns) => n / Math.max(Number(ns) / 1e9, 1e-9);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Counts handler runs; wakes whoever waits for a count; records start instants in latency mode.
class Probe {
  constructor() {
    this.done = 0;
    this.target = Infinity;
    this.waiters = []; // { at, resolve }: resolved once done >= at
    this.latencyMode = false;
    this.starts = []; // start instants not yet taken
    this.startWaiter = null;
  }
  hit() {
    if (this.latencyMode) {
      const t = nowNs();
      if (this.startWaiter) {
        const w = this.startWaiter;
        this.startWaiter = null;
        w(t);
      } else {
        this.starts.push(t);
      }
    }
    this.done += 1;
    if (this.waiters.length) {
      const ready = this.waiters.filter((w) => this.done >= w.at);
      if (ready.length) {
        this.waiters = this.waiters.filter((w) => this.done < w.at);
        for (const w of ready) w.resolve();
      }
    }
  }
  expect(n) {
    this.done = 0;
    this.target = n;
  }
  /// Resolves when done >= at (checked at every hit).
  reach(at) {
    if (this.done >= at) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ at, resolve }));
  }
  /// Wait for the target; returns null, or why not (time limit, or the worker stopped).
  async wait(alive) {
    const start = Date.now();
    let finished = false;
    const reached = this.reach(this.target).then(() => {
      finished = true;
    });
    while (!finished) {
      if (!alive()) return `worker stopped after ${this.done} of ${this.target} jobs`;
      if (Date.now() - start > PHASE_LIMIT_MS) {
        return `not finished in ${PHASE_LIMIT_MS / 1000}s (${this.done} done)`;
      }
      await Promise.race([reached, sleep(20)]);
    }
    return null;
  }
  /// Next handler start instant (latency mode), or null after timeoutMs.
  nextStart(timeoutMs) {
    if (this.starts.length) return Promise.resolve(this.starts.shift());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.startWaiter = null;
        resolve(null);
      }, timeoutMs);
      this.startWaiter = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
    });
  }
}

const jobsOf = (n) => Array.from({ length: n }, () => ({ name: JOB_NAME, data: {} }));

/// Enqueue n in addBulk calls of `chunk`, keeping at most `outstanding` jobs whose handler has not run.
async function produce(queue, probe, n, chunk, outstanding) {
  let pushed = 0;
  while (pushed < n) {
    if (pushed >= probe.done + outstanding) {
      await probe.reach(pushed - outstanding + 1);
    }
    const k = Math.min(chunk, n - pushed);
    await queue.addBulk(jobsOf(k));
    pushed += k;
  }
}

/// Nearest-rank quantile of sorted microseconds, in ms.
function quantileMs(sortedUs, q) {
  const i = Math.min(sortedUs.length - 1, Math.max(0, Math.ceil(q * sortedUs.length) - 1));
  return sortedUs[i] / 1000;
}

async function run(o) {
  const version = bullmqVersion();
  const r = {
    system: `bullmq ${version}`,
    enqueue_per_s: null,
    drain_per_s: null,
    end_to_end_per_s: null,
    latency_p50_ms: null,
    latency_p99_ms: null,
    failures: [],
  };
  const qname = `bench-bullmq-${randomUUID()}`;
  const connection = { url: o.redis };
  const probe = new Probe();
  const queue = new Queue(qname, { connection });
  queue.on('error', (e) => process.stderr.write(`queue error: ${e?.message ?? e}\n`));
  await queue.waitUntilReady();

  let worker = null;
  let workerError = null;
  const alive = () => worker !== null && !worker.closing && workerError === null;
  try {
    // 1. Bulk enqueue with no worker.
    let t = nowNs();
    for (let pushed = 0; pushed < o.jobs; pushed += ENQUEUE_CHUNK) {
      await queue.addBulk(jobsOf(Math.min(ENQUEUE_CHUNK, o.jobs - pushed)));
    }
    r.enqueue_per_s = perS(o.jobs, nowNs() - t);

    // 2. Drain the backlog: the clock starts as the worker is created.
    probe.expect(o.jobs);
    t = nowNs();
    worker = new Worker(
      qname,
      async () => {
        probe.hit();
      },
      {
        connection,
        concurrency: o.concurrency,
        removeOnComplete: { count: 1000 },
      },
    );
    worker.on('error', (e) => {
      process.stderr.write(`worker error: ${e?.message ?? e}\n`);
    });
    worker.on('closed', () => {
      workerError ??= 'worker closed';
    });
    let err = await probe.wait(alive);
    if (err === null) r.drain_per_s = perS(o.jobs, nowNs() - t);
    else r.failures.push(`drain: ${err}`);

    // 3. End-to-end: producer and worker together, at most OUTSTANDING not yet run.
    probe.expect(o.jobs);
    t = nowNs();
    await produce(queue, probe, o.jobs, PRODUCER_BATCH, OUTSTANDING);
    err = await probe.wait(alive);
    if (err === null) r.end_to_end_per_s = perS(o.jobs, nowNs() - t);
    else r.failures.push(`end-to-end: ${err}`);

    // 4. Enqueue -> start latency on the idle worker, one job at a time.
    probe.latencyMode = true;
    await sleep(100);
    probe.starts.length = 0;
    const us = [];
    for (let i = 0; i < o.latencySamples; i++) {
      const t0 = nowNs();
      await queue.add(JOB_NAME, {});
      const started = await probe.nextStart(10_000);
      if (started === null) {
        r.failures.push('latency: a sample did not start within 10 s');
        break;
      }
      us.push(started > t0 ? Number((started - t0) / 1000n) : 0);
    }
    probe.latencyMode = false;
    if (us.length) {
      us.sort((a, b) => a - b);
      r.latency_p50_ms = quantileMs(us, 0.5);
      r.latency_p99_ms = quantileMs(us, 0.99);
    }
  } finally {
    if (worker) await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
  return r;
}

try {
  const o = parseArgs(process.argv.slice(2));
  const r = await run(o);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
} catch (e) {
  process.stderr.write(`error: ${e?.stack ?? e}\n`);
  process.exit(1);
}

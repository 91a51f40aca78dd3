/**
 * B5: scale out. asockio's HTTP workload (`HttpResponder`, 100 B bodies) as one process against two
 * processes of the same runtime sharing one port with `reusePort` (the kernel spreads the new
 * connections over them, as in `examples/cluster.ts`). `wrk` (1 thread, CPU 1) loads each in turn,
 * alternating which goes first. The server CPU per request is the sum over the worker processes of
 * their utime+stime change in `/proc/<pid>/stat`, divided by the requests `wrk` counted; each worker
 * reports the connections it accepted and the requests it answered, which give its share.
 *
 * Every worker runs on CPU 0: the machine has 2 cores and the load generator takes the other. The two
 * processes therefore share one core, and B5 measures what sharing the port costs per request (the
 * issue's target: at most 10% more CPU per request), not a throughput gain.
 *
 * Without `wrk`, a `--quick` run (or any run with `--no-wrk`) uses the built-in client, as B1 does.
 *
 * @module
 */
import { addSample, type BenchContext, rotated, type Row, si } from "./_common.ts";
import { type Child, cpuMicros, startChild, TASKSET } from "./_proc.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";
import { load, type LoadGenerator, loadGenerator, verify } from "./b1_http.ts";

const SIZE = 100;
const CONCURRENCY = [1, 10, 100, 200, 1000];
/** The concurrency of the headline cell and of the scaling target. */
export const B5_CONCURRENCY = 200;
const NOFILE = 65536;
const WORKLOAD = "bench/workloads/http_asockio.ts";

/** One contender: a group of worker processes on one port. */
interface Group {
  name: string;
  processes: number;
  port: number;
  workers: Array<{ child: Child; pid: number }>;
}

/** What one worker has counted since it started. */
interface Counts {
  accepted: number;
  answered: number;
}

/** Starts `processes` workers on CPU 0; the first binds a free port and the others join it. */
async function startGroup(runtime: Runtime, processes: number, children: Child[]): Promise<Group> {
  const name = processes === 1 ? "1 process" : `${processes} processes`;
  const group: Group = { name, processes, port: 0, workers: [] };
  for (let i = 0; i < processes; i++) {
    const args = processes === 1 ? [] : ["--reuse-port", ...(i ? ["--port", `${group.port}`] : [])];
    // Deno's reusePort is behind --unstable-net (without it the transport refuses to listen).
    const denoFlags = processes === 1 ? [] : ["--unstable-net"];
    const child = startChild(workloadCommand(runtime, WORKLOAD, args, false, denoFlags), {
      label: `b5 ${runtime} ${name} worker ${i + 1}`,
      cpu: 0,
      nofile: NOFILE,
    });
    children.push(child);
    const ready = await child.next("READY", 60_000);
    if (i === 0) group.port = Number(ready.port);
    else if (Number(ready.port) !== group.port) {
      throw new Error(`b5 ${runtime} ${name}: worker ${i + 1} listens on ${ready.port}, not ${group.port}`);
    }
    group.workers.push({ child, pid: Number(ready.pid) });
  }
  return group;
}

/** Each worker's counts, in worker order. */
function counts(group: Group): Promise<Counts[]> {
  return Promise.all(group.workers.map(async (w) => {
    w.child.send("stats");
    const s = await w.child.next("STATS", 30_000);
    return { accepted: Number(s.accepted), answered: Number(s.answered) };
  }));
}

/** Each value's share of their sum. */
const shares = (values: number[]) => {
  const total = values.reduce((a, b) => a + b, 0);
  return values.map((v) => (total ? v / total : NaN));
};

/**
 * Adds each worker's count as a sample of `<count><i>` and sets `<share><i>` to its share of the
 * counts summed over every repetition so far. Medians of each worker's share taken one by one would
 * not add up to 100% (at 1 connection one worker gets all of one repetition and none of the next).
 */
function addCounts(row: Row, count: string, share: string, values: number[]): void {
  values.forEach((v, i) => addSample(row, `${count}${i + 1}`, v));
  const totals = values.map((_, i) => row.samples[`${count}${i + 1}`]!.reduce((a, b) => a + b, 0));
  shares(totals).forEach((v, i) => (row.metrics[`${share}${i + 1}`] = v));
}

/** Loads one group at one concurrency and adds a sample to its row. */
async function measure(
  generator: LoadGenerator,
  group: Group,
  row: Row,
  concurrency: number,
  seconds: number,
  label: string,
): Promise<string> {
  const before = await counts(group);
  const cpuBefore = group.workers.map((w) => cpuMicros(w.pid));
  const r = await load(generator, group.port, SIZE, concurrency, seconds);
  const cpu = group.workers.reduce((sum, w, i) => sum + cpuMicros(w.pid) - cpuBefore[i]!, 0);
  const after = await counts(group);
  const errors = r.connect + r.read + r.write + r.status;
  if (r.requests === 0) throw new Error(`${label}: no request completed in ${r.durationUs / 1e6} s`);
  if (r.status > 0) throw new Error(`${label}: ${r.status} responses were not 2xx`);
  const answered = after.map((c, i) => c.answered - before[i]!.answered);
  const accepted = after.map((c, i) => c.accepted - before[i]!.accepted);
  // 2 workers and at least 100 connections: a worker with none means the port is not shared.
  if (group.processes > 1 && concurrency >= 100 && answered.some((n) => n === 0)) {
    throw new Error(`${label}: a worker answered no request (answered ${answered.join(" / ")})`);
  }
  const rps = r.requests / (r.durationUs / 1e6);
  addSample(row, "requestsPerSecond", rps);
  addSample(row, "cpuUsPerRequest", cpu / r.requests);
  addSample(row, "errors", errors);
  addSample(row, "timeouts", r.timeout);
  addCounts(row, "requestsWorker", "requestShare", answered);
  // wrk opens and closes one extra connection to check the address before its run: it counts too.
  addCounts(row, "connectionsWorker", "connectionShare", accepted);
  const split = group.processes > 1
    ? ` (${shares(answered).map((s) => `${Math.round(s * 100)}%`).join("/")} of requests)`
    : "";
  return `${group.name} ${si(rps)} req/s ${(cpu / r.requests).toFixed(1)} µs${split}`;
}

/** Runs B5 on one runtime. */
export async function runB5(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const generator = loadGenerator(ctx, "B5");
  const pinNote = "taskset not found: servers and the load generator were not pinned to separate CPUs";
  if (!TASKSET && !ctx.notes.includes(pinNote)) ctx.notes.push(pinNote);
  const coreNote = "B5: every worker process runs on CPU 0 and the load generator on CPU 1 (2 cores, and " +
    "wrk takes one), so the 2 processes share one core: B5 shows what sharing the port costs per " +
    "request, not a throughput gain.";
  if (!ctx.notes.includes(coreNote)) ctx.notes.push(coreNote);
  const quickNote = "B5 quick: one 1-second cell at 200 connections without warm-up, so its CPU ratio " +
    "(2 cold processes, each warming on half the load) is a smoke figure, not the scale-out measurement.";
  if (ctx.quick && !ctx.notes.includes(quickNote)) ctx.notes.push(quickNote);
  // Quick: one short headline cell, no warm-up (a smoke check that both layouts serve).
  const cells = ctx.quick ? [B5_CONCURRENCY] : CONCURRENCY;
  const seconds = ctx.quick ? 1 : 2;
  const children: Child[] = [];
  try {
    const groups = [await startGroup(runtime, 1, children), await startGroup(runtime, 2, children)];
    for (const g of groups) {
      await verify(g.port, SIZE);
      if (!ctx.quick) await load(generator, g.port, SIZE, 50, 1); // warm-up: JIT and buffers
    }
    ctx.progress(`b5 ${runtime}: 1 and 2 processes answer; ${cells.length} concurrencies`);
    for (const concurrency of cells) {
      const rows = new Map<string, Row>();
      for (const g of groups) {
        const row: Row = {
          bench: "b5",
          runtime,
          contender: g.name,
          params: { size: SIZE, concurrency, processes: g.processes, loadGenerator: generator.kind },
          metrics: {},
          samples: {},
        };
        rows.set(g.name, row);
        ctx.rows.push(row);
      }
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const line: string[] = [];
        for (const g of rotated(groups, rep)) {
          const row = rows.get(g.name)!;
          if (row.error) continue;
          const label = `b5 ${runtime} c${concurrency} ${g.name}`;
          try {
            line.push(await measure(generator, g, row, concurrency, seconds, label));
          } catch (err) {
            row.error = (err as Error).message.split("\n")[0];
            ctx.fail(label, err);
          }
        }
        ctx.progress(`b5 ${runtime} c${concurrency} rep ${rep}/${ctx.reps}: ${line.join(", ")}`);
      }
    }
  } finally {
    for (const child of children) {
      const code = await child.stop(3000);
      if (code !== 0) ctx.fail(child.label, new Error(`exited with code ${code}\n${child.tail()}`));
    }
  }
}

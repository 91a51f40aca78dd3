/**
 * What the benchmarks share inside `run.ts`: the result rows, the run context (progress, failures),
 * medians, number formatting, and one server/client pair run.
 *
 * @module
 */
import { type Child, startChild } from "./_proc.ts";
import type { Runtime } from "./_runtimes.ts";

/** One measured cell: a contender at some parameters, with every sample and their medians. */
export interface Row {
  /** `b1` … `b5`. */
  bench: string;
  /** The runtime it ran on. */
  runtime: Runtime;
  /** `asockio`, `bare`, `native`, `zeromq`, `1 process`, … */
  contender: string;
  /** What was varied: size, concurrency, count. */
  params: Record<string, number | string>;
  /** Median of each metric over the repetitions. */
  metrics: Record<string, number>;
  /** Every repetition's value of each metric, in run order. */
  samples: Record<string, number[]>;
  /** Set when a run of this cell failed. */
  error?: string;
}

/** The run's settings and sinks, passed to each benchmark. */
export interface BenchContext {
  /** `--quick`: the smoke subset. */
  quick: boolean;
  /** `--matrix full`: B1's whole cross product instead of its two sweeps. */
  fullMatrix: boolean;
  /** Repetitions per cell (interleaved across contenders). */
  reps: number;
  /** B3's streamed message, in bytes. */
  streamBytes: number;
  /** B7's messages per cell. */
  b7Count: number;
  /** Include zeromq and node-ipc in B2 (Node only). */
  peers: boolean;
  /** `--no-wrk`: B1 uses its built-in load client even where `wrk` is installed. */
  noWrk: boolean;
  /** `--tls`: B1 serves HTTPS (see `b1_http.ts`). */
  tls: boolean;
  /** `--b1 get|upload|all`: B1's GET cells, its upload row, or both (the default). */
  b1Rows?: "get" | "upload" | "all";
  /** `--upload-probe-ms`: during B1's uploads, another connection's GET every N ms (0: none). */
  uploadProbeMs?: number;
  /** Where rows go. */
  rows: Row[];
  /** Notes for the report (skipped parts, limits). */
  notes: string[];
  /** Prints a progress line with the elapsed time. */
  progress(message: string): void;
  /** Records a failure: the run exits non-zero at the end. */
  fail(where: string, err: unknown): void;
}

/**
 * The contenders in the order to run them in repetition `rep` (1-based): A B C, then B C A, then
 * C A B. A run that follows another cell can find the machine still busy (reclaiming memory, a
 * neighbour's burst), and no contender should always be the one that pays for it.
 *
 * @example
 * ```ts
 * rotated(["a", "b", "c"], 2); // ["b", "c", "a"]
 * ```
 */
export function rotated<T>(contenders: readonly T[], rep: number): T[] {
  const shift = (rep - 1) % Math.max(1, contenders.length);
  return [...contenders.slice(shift), ...contenders.slice(0, shift)];
}

/** One repetition of a contender: its samples by metric, and the progress line's summary of them. */
export interface RepResult {
  samples: Record<string, number>;
  summary: string;
}

/**
 * Runs every contender `ctx.reps` times, in an order rotated each repetition, into one row each
 * (`params` and the contender's name); a contender that fails once is skipped from then on.
 */
export async function runContenders<C extends { name: string }>(
  ctx: BenchContext,
  where: { bench: string; runtime: Runtime; params: Record<string, number | string> },
  contenders: readonly C[],
  runOnce: (contender: C, label: string) => Promise<RepResult>,
): Promise<void> {
  const { bench, runtime, params } = where;
  const rows = new Map<string, Row>();
  for (const c of contenders) {
    const row: Row = { bench, runtime, contender: c.name, params: { ...params }, metrics: {}, samples: {} };
    rows.set(c.name, row);
    ctx.rows.push(row);
  }
  const size = typeof params.count === "number" ? ` ${si(params.count)}` : "";
  for (let rep = 1; rep <= ctx.reps; rep++) {
    for (const c of rotated(contenders, rep)) {
      const row = rows.get(c.name)!;
      if (row.error) continue;
      const label = `${bench} ${runtime}${size} ${c.name}`;
      try {
        const { samples, summary } = await runOnce(c, label);
        for (const [metric, value] of Object.entries(samples)) addSample(row, metric, value);
        ctx.progress(`${label} rep ${rep}/${ctx.reps}: ${summary}`);
      } catch (err) {
        row.error = (err as Error).message.split("\n")[0];
        ctx.fail(label, err);
      }
    }
  }
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Adds a sample to a row's metric and refreshes its median. */
export function addSample(row: Row, metric: string, value: number): void {
  (row.samples[metric] ??= []).push(value);
  row.metrics[metric] = median(row.samples[metric]!);
}

/** `1234567` → `1.23M`. */
export function si(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return "–";
  const abs = Math.abs(value);
  if (Number.isInteger(value) && abs < 1e4) return String(value);
  const short = (v: number) => String(Number(v.toPrecision(digits)));
  if (abs >= 1e9) return `${short(value / 1e9)}G`;
  if (abs >= 1e6) return `${short(value / 1e6)}M`;
  if (abs >= 1e4) return `${short(value / 1e3)}k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toPrecision(digits);
}

/** `10240` → `10 KiB`. */
export function bytesLabel(bytes: number): string {
  if (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30} GiB`;
  if (bytes >= 2 ** 20 && bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(2)} MB`;
  return `${bytes} B`;
}

/** A server/client pair: commands, and how long the client may take. */
export interface PairSpec {
  label: string;
  server: string[];
  client: (port: number) => string[];
  timeoutMs: number;
  nofile?: number;
}

/**
 * Starts the server (CPU 0), then the client (CPU 1) against its port, and returns the client's
 * `RESULT` and the server child (still running; the caller stops it).
 */
export async function runPair(spec: PairSpec): Promise<{ result: Record<string, unknown>; server: Child }> {
  const server = startChild(spec.server, { label: `${spec.label} server`, cpu: 0, nofile: spec.nofile });
  try {
    const ready = await server.next("READY", 60_000);
    const client = startChild(spec.client(Number(ready.port)), {
      label: `${spec.label} client`,
      cpu: 1,
      nofile: spec.nofile,
    });
    try {
      const result = await client.next("RESULT", spec.timeoutMs);
      return { result, server };
    } finally {
      await client.stop(2000);
    }
  } catch (err) {
    await server.stop(500);
    throw err;
  }
}

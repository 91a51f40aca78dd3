/**
 * Writes a run's results: `bench/results/<name>.json` (everything, with the machine), `<name>.md`
 * (tables, the P1–P4 and scale-out ratios, and B6's ratio to a bare UDP echo) and `<name>.svg` (hand-written charts, no dependencies).
 *
 * @module
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { bytesLabel, type Row, si } from "./_common.ts";
import { type MachineInfo, ROOT, type Runtime } from "./_runtimes.ts";
import { b2Baseline } from "./b2_roundtrips.ts";
import { B5_CONCURRENCY } from "./b5_scale_out.ts";
import { B6_BASELINE } from "./b6_udp.ts";
import { B7_BASELINE } from "./b7_cluster.ts";
import { B8_BASELINE } from "./b8_websocket.ts";

/** Everything a run produced. */
export interface RunReport {
  name: string;
  command: string;
  date: string;
  seconds: number;
  quick: boolean;
  reps: number;
  fullMatrix: boolean;
  runtimes: Runtime[];
  benches: string[];
  machine: MachineInfo;
  rows: Row[];
  notes: string[];
  failures: string[];
}

/** One P1–P4 (or scale-out) check: a measured ratio against its target. */
export interface Target {
  id: string;
  runtime: Runtime;
  /** A few words for the chart. */
  short: string;
  what: string;
  value: number;
  /** `max`: the value must be at most `limit`; `min`: at least. */
  kind: "max" | "min";
  limit: number;
  unit: string;
  pass: boolean;
}

const find = (
  rows: Row[],
  bench: string,
  runtime: Runtime,
  contender: string,
  params: Record<string, unknown>,
) =>
  rows.find((r) =>
    r.bench === bench && r.runtime === runtime && r.contender === contender && !r.error &&
    Object.entries(params).every(([k, v]) => r.params[k] === v)
  );

/** Computes the P1–P4 and scale-out ratios from whatever rows the run has. */
export function targets(rows: Row[], runtimes: readonly Runtime[]): Target[] {
  const out: Target[] = [];
  const add = (t: Omit<Target, "pass">) => {
    if (!Number.isFinite(t.value)) return;
    out.push({ ...t, pass: t.kind === "max" ? t.value <= t.limit : t.value >= t.limit });
  };
  for (const runtime of runtimes) {
    for (const size of [100, 10240, 1048576]) {
      const a = find(rows, "b1", runtime, "asockio", { size, concurrency: 200 });
      const b = find(rows, "b1", runtime, "bare", { size, concurrency: 200 });
      if (a && b) {
        add({
          id: "P1",
          runtime,
          short: `HTTP CPU ${bytesLabel(size)}`,
          what: `HTTP CPU µs/request vs bare, ${bytesLabel(size)}, 200 conns`,
          value: a.metrics.cpuUsPerRequest! / b.metrics.cpuUsPerRequest!,
          kind: "max",
          limit: 1.1,
          unit: "×",
        });
      }
    }
    const counts = rows.filter((r) => r.bench === "b2" && r.runtime === runtime).map((r) =>
      Number(r.params.count)
    );
    const count = Math.max(...counts);
    const io = find(rows, "b2", runtime, "asockio ioIteration", { count });
    const apis = [["", "bare echo", "ioIteration", io, "bare"], [
      "batch API ",
      "bare echo",
      "takeFrames/sendFrames at both ends",
      find(rows, "b2", runtime, "asockio batch API, both ends", { count }),
      "bare",
    ], [
      "",
      "plain bare echo",
      "ioIteration; the bare echo re-encodes each frame",
      io,
      "bare, plain",
    ], [
      "batch API ",
      "deep bare echo",
      "takeFrames/sendFrames, 64 blocks of 1,024 in flight",
      find(rows, "b2", runtime, "asockio batch API, deep pipeline", { count }),
      "bare, deep pipeline",
    ]] as const;
    for (const [label, against, how, row, baseline] of apis) {
      const bare = find(rows, "b2", runtime, baseline, { count });
      if (!row || !bare) continue;
      add({
        id: "P2",
        runtime,
        short: `${label}vs ${against}`,
        what: `round trips/s vs ${against}, ${si(count)} pipelined (${how})`,
        value: row.metrics.roundTripsPerSecond! / bare.metrics.roundTripsPerSecond!,
        kind: "min",
        limit: 0.9,
        unit: "×",
      });
    }
    for (const peer of ["zeromq", "node-ipc"]) {
      const p = find(rows, "b2", runtime, peer, { count });
      if (io && p) {
        add({
          id: "P2",
          runtime,
          short: `vs ${peer}`,
          what: `round trips/s vs ${peer}, ${si(count)} pipelined (ioIteration)`,
          value: io.metrics.roundTripsPerSecond! / p.metrics.roundTripsPerSecond!,
          kind: "min",
          limit: 1,
          unit: "×",
        });
      }
    }
    const streamA = rows.find((r) =>
      r.bench === "b3" && r.runtime === runtime && r.params.kind === "stream" &&
      r.contender === "asockio stream" && !r.error
    );
    const streamB = rows.find((r) =>
      r.bench === "b3" && r.runtime === runtime && r.params.kind === "stream" &&
      r.contender === "bare pair" && !r.error
    );
    if (streamA && streamB) {
      add({
        id: "P3",
        runtime,
        short: "stream vs bare",
        what: `one streamed ${bytesLabel(Number(streamA.params.size))} message, MiB/s vs the bare pair`,
        value: streamA.metrics.mibPerSecond! / streamB.metrics.mibPerSecond!,
        kind: "min",
        limit: 0.9,
        unit: "×",
      });
    }
    const scale = rows.find((r) => r.bench === "b4" && r.runtime === runtime && !r.error);
    if (scale) {
      add({
        id: "P4",
        runtime,
        short: "heap/idle conn",
        what: `heap per idle connection, ${si(Number(scale.params.clients))} named clients`,
        value: scale.metrics.heapPerConnection!,
        kind: "max",
        limit: 4096,
        unit: "B",
      });
    }
    const http = rows.filter((r) =>
      r.bench === "b1" && r.runtime === runtime && r.contender === "asockio" && r.params.size === 100 &&
      !r.error
    );
    const at1000 = http.find((r) => r.params.concurrency === 1000);
    if (at1000 && http.length > 1) {
      const peak = Math.max(...http.map((r) => r.metrics.requestsPerSecond!));
      add({
        id: "P4",
        runtime,
        short: "1000 conns/peak",
        what: "HTTP 100 B req/s at 1000 conns vs peak over concurrency",
        value: at1000.metrics.requestsPerSecond! / peak,
        kind: "min",
        limit: 0.9,
        unit: "×",
      });
    }
    const one = find(rows, "b5", runtime, "1 process", { concurrency: B5_CONCURRENCY });
    const two = find(rows, "b5", runtime, "2 processes", { concurrency: B5_CONCURRENCY });
    if (one && two) {
      add({
        id: "Scale out",
        runtime,
        short: "CPU/req 2÷1 proc",
        what: `HTTP 100 B server CPU µs/request, 2 processes (reusePort) ÷ 1, ${B5_CONCURRENCY} conns`,
        value: two.metrics.cpuUsPerRequest! / one.metrics.cpuUsPerRequest!,
        kind: "max",
        limit: 1.1,
        unit: "×",
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** What loaded B1's servers, from its rows' `loadGenerator` (rows from before it was recorded: wrk). */
function loadGeneratorLabel(b1: Row[]): string {
  return b1.some((r) => r.params.loadGenerator === "builtin")
    ? "built-in load client, smoke only"
    : "wrk, 1 thread";
}

/** A Markdown table: columns of numbers are right-aligned, the others left-aligned. */
function table(head: string[], body: string[][]): string {
  const numeric = head.map((_, i) => body.every((row) => !row[i] || /^[\d.–]/.test(row[i]!)));
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (numeric[i] ? "---:" : "---")).join(" | ")} |`,
  ];
  for (const row of body) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}

function markdown(report: RunReport, checks: Target[]): string {
  const m = report.machine;
  const note = m.note;
  const rows = report.rows;
  const out: string[] = [];
  out.push(`# asockio bench: ${report.name}`);
  out.push("");
  out.push(
    `${report.date} · \`${report.command}\` · ${report.quick ? "quick (smoke) run" : "full run"}, ` +
      `${report.reps} interleaved repetition(s) per cell, medians · ${Math.round(report.seconds)} s`,
  );
  out.push("");
  out.push(
    `Machine: **${note}** (${m.cpuModel}, ${m.memoryGiB} GiB, ${m.kernel}); ${m.pinning}. ` +
      `Deno ${m.runtimes.deno}, Bun ${m.runtimes.bun}, Node ${m.runtimes.node}; ${
        m.wrk ?? "wrk not installed"
      }. asockio at commit ${m.commit ?? "unknown"}.`,
  );
  if (report.failures.length) {
    out.push("", `**${report.failures.length} failure(s):**`, "");
    for (const f of report.failures) out.push(`- ${f.split("\n")[0]}`);
  }
  if (report.notes.length) {
    out.push("", "Notes:", "");
    for (const n of report.notes) out.push(`- ${n}`);
  }
  if (checks.length) {
    out.push("", `## Targets (${note})`, "");
    out.push(table(
      ["target", "runtime", "what", "measured", "target", "met"],
      checks.map((t) => [
        t.id,
        t.runtime,
        t.what,
        t.unit === "B" ? `${Math.round(t.value)} B` : `${t.value.toFixed(2)}×`,
        `${t.kind === "max" ? "≤" : "≥"} ${t.unit === "B" ? `${t.limit} B` : `${t.limit}×`}`,
        t.pass ? "yes" : "**no**",
      ]),
    ));
  }
  const b1 = rows.filter((r) => r.bench === "b1" && r.params.method !== "POST");
  const uploads = rows.filter((r) => r.bench === "b1" && r.params.method === "POST");
  if (b1.length) {
    const builtin = b1.some((r) => r.params.loadGenerator === "builtin");
    out.push("", `## B1 HTTP over a raw connection (${note}; ${loadGeneratorLabel(b1)})`, "");
    if (builtin) {
      out.push(
        "**Smoke only:** these figures come from the built-in load client (`bench/_http_load.ts`), not " +
          "`wrk`. They show that the servers answer correctly under load; they are not comparable with " +
          "`wrk` runs or with other machines.",
        "",
      );
    }
    out.push(table(
      ["runtime", "size", "conns", "server", "req/s", "MiB/s", "server CPU µs/req", "vs bare CPU", "errors"],
      b1.map((r) => {
        const bare = find(rows, "b1", r.runtime, "bare", r.params);
        return [
          r.runtime,
          bytesLabel(Number(r.params.size)),
          String(r.params.concurrency),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.requestsPerSecond!),
          r.error ? "" : si(r.metrics.mibPerSecond!),
          r.error ? "" : r.metrics.cpuUsPerRequest!.toFixed(1),
          bare && !r.error
            ? `${(r.metrics.cpuUsPerRequest! / bare.metrics.cpuUsPerRequest!).toFixed(2)}×`
            : "",
          r.error
            ? ""
            : `${r.metrics.errors ?? 0}${r.metrics.timeouts ? ` (+${r.metrics.timeouts} timeouts)` : ""}`,
        ];
      }),
    ));
  }
  if (uploads.length) {
    out.push(
      "",
      `## B1 uploads (${note}; one POST at a time on one connection, the whole body read; the probe: another connection's GETs meanwhile)`,
      "",
    );
    out.push(table(
      [
        "runtime",
        "body",
        "server",
        "uploads/s",
        "MiB/s",
        "server CPU ms/upload",
        "vs native MiB/s",
        "probe GET ms p50 / p99 / max",
      ],
      uploads.map((r) => {
        const native = find(rows, "b1", r.runtime, "native", r.params);
        const m = r.metrics;
        return [
          r.runtime,
          bytesLabel(Number(r.params.size)),
          r.contender,
          r.error ? `failed: ${r.error}` : m.requestsPerSecond!.toFixed(2),
          r.error ? "" : si(m.mibPerSecond!),
          r.error ? "" : (m.cpuUsPerRequest! / 1000).toFixed(1),
          native && !r.error ? `${(m.mibPerSecond! / native.metrics.mibPerSecond!).toFixed(2)}×` : "",
          m.probeMaxMs === undefined
            ? ""
            : `${m.probeP50Ms!.toFixed(1)} / ${m.probeP99Ms!.toFixed(0)} / ${m.probeMaxMs.toFixed(0)}`,
        ];
      }),
    ));
  }
  const b2 = rows.filter((r) => r.bench === "b2");
  if (b2.length) {
    out.push("", `## B2 commands round trips (${note}; ~30-byte messages, pipelined, two processes)`, "");
    out.push(table(
      ["runtime", "messages", "contender", "round trips/s", "vs bare"],
      b2.map((r) => {
        const bare = find(rows, "b2", r.runtime, b2Baseline(r.contender), r.params);
        return [
          r.runtime,
          si(Number(r.params.count)),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.roundTripsPerSecond!),
          bare && !r.error
            ? `${(r.metrics.roundTripsPerSecond! / bare.metrics.roundTripsPerSecond!).toFixed(2)}×`
            : "",
        ];
      }),
    ));
  }
  const b3 = rows.filter((r) => r.bench === "b3");
  if (b3.length) {
    out.push("", `## B3 one-way framed throughput and one streamed message (${note})`, "");
    out.push(table(
      [
        "runtime",
        "message",
        "messages",
        "contender",
        "msgs/s",
        "MiB/s",
        "vs raw",
        "peak RSS server / client",
      ],
      b3.map((r) => {
        const stream = r.params.kind === "stream";
        const raw = find(rows, "b3", r.runtime, stream ? "bare pair" : "raw socket", r.params);
        const mib = (v: number | undefined) => Math.round((v ?? 0) / 2 ** 20);
        return [
          r.runtime,
          `${bytesLabel(Number(r.params.size))}${stream ? " (streamed)" : ""}`,
          si(Number(r.params.count)),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.messagesPerSecond!),
          r.error ? "" : si(r.metrics.mibPerSecond!),
          raw && !r.error ? `${(r.metrics.mibPerSecond! / raw.metrics.mibPerSecond!).toFixed(2)}×` : "",
          r.error || !r.metrics.serverPeakRss
            ? ""
            : `${mib(r.metrics.serverPeakRss)} / ${mib(r.metrics.clientPeakRss)} MiB` +
              (stream ? ` (+${mib(r.metrics.serverRssGrowth)} / +${mib(r.metrics.clientRssGrowth)})` : "") +
              (r.metrics.serverCpuSecondsPerGiB !== undefined
                ? `; CPU ${r.metrics.serverCpuSecondsPerGiB.toFixed(2)} / ${
                  r.metrics.clientCpuSecondsPerGiB!.toFixed(2)
                } s/GiB`
                : "") +
              (r.metrics.probeBusyP50Ms !== undefined
                ? `; probe p50/p99 ${r.metrics.probeIdleP50Ms!.toFixed(1)}/${
                  r.metrics.probeIdleP99Ms!.toFixed(1)
                } ms idle, ${r.metrics.probeBusyP50Ms.toFixed(1)}/${
                  r.metrics.probeBusyP99Ms!.toFixed(1)
                } ms during`
                : ""),
        ];
      }),
    ));
  }
  const b4 = rows.filter((r) => r.bench === "b4");
  if (b4.length) {
    out.push("", `## B4 connection scale (${note})`, "");
    out.push(table(
      ["runtime", "named clients", "handshakes/s", "heap per idle connection", "RSS per idle connection"],
      b4.map((r) => [
        r.runtime,
        si(Number(r.params.clients)),
        r.error ? `failed: ${r.error}` : si(r.metrics.handshakesPerSecond!),
        r.error
          ? ""
          : `${Math.round(r.metrics.heapPerConnection!)} B${r.metrics.gc ? "" : " (no forced GC)"}`,
        r.error ? "" : `${Math.round(r.metrics.rssPerConnection!)} B`,
      ]),
    ));
  }
  const b4b = rows.filter((r) => r.bench === "b4b");
  if (b4b.length) {
    out.push("", `## B4b memory per idle connection (${note}; growth after a forced GC ÷ connections)`, "");
    out.push(table(
      ["runtime", "conns", "server", "RSS / conn", "RSS above bare", "heap / conn", "RTT p50 / p99"],
      b4b.map((r) => {
        const bare = find(rows, "b4b", r.runtime, "bare", r.params);
        const kib = (v: number) => `${(v / 1024).toFixed(2)} KiB`;
        return [
          r.runtime,
          si(Number(r.params.clients)),
          r.contender,
          r.error ? `failed: ${r.error}` : kib(r.metrics.rssPerConnection!),
          bare && !r.error && r.contender !== "bare"
            ? kib(r.metrics.rssPerConnection! - bare.metrics.rssPerConnection!)
            : "",
          r.error ? "" : `${kib(r.metrics.heapPerConnection!)}${r.metrics.gc ? "" : " (no forced GC)"}`,
          r.metrics.p50Us === undefined
            ? ""
            : `${Math.round(r.metrics.p50Us)} / ${Math.round(r.metrics.p99Us!)} µs`,
        ];
      }),
    ));
  }
  const b5 = rows.filter((r) => r.bench === "b5");
  if (b5.length) {
    const builtin = b5.some((r) => r.params.loadGenerator === "builtin");
    out.push(
      "",
      `## B5 scale out: 1 process vs 2 on one port with reusePort (${note}; ${loadGeneratorLabel(b5)})`,
      "",
    );
    out.push(
      "asockio's `HttpResponder`, 100 B bodies. Every worker runs on CPU 0 and the load generator on " +
        "CPU 1: with 2 cores, the 2 processes share one core, so this measures what sharing the port " +
        "costs per request, not a throughput gain. Server CPU is the sum over the workers; the shares " +
        "are each worker's part of the requests it answered and of the connections it accepted, summed " +
        "over the repetitions (`wrk` opens one extra connection per run to check the address).",
      "",
    );
    if (builtin) {
      out.push("**Smoke only:** built-in load client, not `wrk`.", "");
    }
    const pct = (r: Row, metric: string) =>
      Array.from({ length: Number(r.params.processes) }, (_, i) => r.metrics[`${metric}${i + 1}`])
        .map((v) => (v === undefined || !Number.isFinite(v) ? "–" : `${Math.round(v * 100)}%`))
        .join(" / ");
    out.push(table(
      [
        "runtime",
        "conns",
        "server",
        "req/s",
        "server CPU µs/req",
        "CPU vs 1 process",
        "requests per worker",
        "connections per worker",
        "errors",
      ],
      b5.map((r) => {
        const one = find(rows, "b5", r.runtime, "1 process", { concurrency: r.params.concurrency });
        return [
          r.runtime,
          String(r.params.concurrency),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.requestsPerSecond!),
          r.error ? "" : r.metrics.cpuUsPerRequest!.toFixed(1),
          one && !r.error ? `${(r.metrics.cpuUsPerRequest! / one.metrics.cpuUsPerRequest!).toFixed(2)}×` : "",
          r.error ? "" : pct(r, "requestShare"),
          r.error ? "" : pct(r, "connectionShare"),
          r.error
            ? ""
            : `${r.metrics.errors ?? 0}${r.metrics.timeouts ? ` (+${r.metrics.timeouts} timeouts)` : ""}`,
        ];
      }),
    ));
  }
  const b6 = rows.filter((r) => r.bench === "b6");
  if (b6.length) {
    out.push("", `## B6 datagram echo round trips (${note}; 32-byte UDP datagrams, 64 in flight)`, "");
    out.push(table(
      ["runtime", "datagrams", "contender", "round trips/s", `vs ${B6_BASELINE} UDP echo`, "lost (median)"],
      b6.map((r) => {
        const bare = find(rows, "b6", r.runtime, B6_BASELINE, r.params);
        return [
          r.runtime,
          si(Number(r.params.count)),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.roundTripsPerSecond!),
          bare && !r.error ? `${b6Ratio(r, bare).toFixed(2)}×` : "",
          r.error ? "" : lossLabel(r),
        ];
      }),
    ));
  }
  const b7 = rows.filter((r) => r.bench === "b7");
  if (b7.length) {
    out.push(
      "",
      `## B7 named clients across nodes over NATS (${note}; 32-byte messages, one nats-server)`,
      "",
    );
    out.push(table(
      [
        "runtime",
        "messages",
        "contender",
        "messages/s",
        `vs ${B7_BASELINE}`,
        "send p50",
        "send p99",
        "peak RSS sender / holder",
      ],
      b7.map((r) => {
        const bare = find(rows, "b7", r.runtime, B7_BASELINE, r.params);
        const ms = (v: number | undefined) => v === undefined ? "" : `${v.toFixed(3)} ms`;
        const mib = (v: number) => Math.round(v / 2 ** 20);
        return [
          r.runtime,
          si(Number(r.params.count)),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.messagesPerSecond!),
          bare && !r.error
            ? `${(r.metrics.messagesPerSecond! / bare.metrics.messagesPerSecond!).toFixed(2)}×`
            : "",
          r.error ? "" : ms(r.metrics.p50Ms),
          r.error ? "" : ms(r.metrics.p99Ms),
          r.error || !r.metrics.senderPeakRss ? "" : `${mib(r.metrics.senderPeakRss)}` +
            (r.metrics.holderPeakRss ? ` / ${mib(r.metrics.holderPeakRss)}` : "") + " MiB",
        ];
      }),
    ));
  }
  const b8 = rows.filter((r) => r.bench === "b8");
  if (b8.length) {
    out.push("", `## B8 WebSocket echo round trips (${note}; 32-byte messages, 1,000 in flight)`, "");
    out.push(table(
      ["runtime", "messages", "contender", "round trips/s", `vs ${B8_BASELINE}`],
      b8.map((r) => {
        const own = find(rows, "b8", r.runtime, B8_BASELINE, r.params);
        return [
          r.runtime,
          si(Number(r.params.count)),
          r.contender,
          r.error ? `failed: ${r.error}` : si(r.metrics.roundTripsPerSecond!),
          own && !r.error ? `${b6Ratio(r, own).toFixed(2)}×` : "",
        ];
      }),
    ));
  }
  out.push("");
  return out.join("\n");
}

/** A B6 row's median loss rate, and the worst repetition's when that lost more. */
const lossLabel = (row: Row) => {
  const worst = Math.max(...(row.samples.lossRate ?? [0]));
  const median = `${(row.metrics.lossRate! * 100).toFixed(2)}%`;
  return worst > row.metrics.lossRate! ? `${median} (worst run ${(worst * 100).toFixed(2)}%)` : median;
};

/** A B6 (or B8) row's round trips/s as a ratio to the baseline's. */
const b6Ratio = (row: Row, bare: Row) => row.metrics.roundTripsPerSecond! / bare.metrics.roundTripsPerSecond!;

// ---------------------------------------------------------------------------------------------
// SVG

const COLORS: Record<string, string> = {
  asockio: "#2563eb",
  "asockio ioIteration": "#2563eb",
  "asockio InlineProcessor": "#60a5fa",
  bare: "#9ca3af",
  "raw socket": "#9ca3af",
  "raw socket, assembled": "#6b7280",
  native: "#f59e0b",
  zeromq: "#dc2626",
  "node-ipc": "#16a34a",
  "1 process": "#93c5fd",
  "2 processes": "#1d4ed8",
};
const colorOf = (name: string) => COLORS[name] ?? "#7c3aed";
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Bar {
  series: string;
  value: number;
  text: string;
  color?: string;
}
interface Panel {
  title: string;
  subtitle: string;
  groups: Array<{ label: string; bars: Bar[] }>;
  log?: boolean;
  reference?: { value: number; label: string };
}

const WIDTH = 960;
const LEFT = 200;
const PLOT = 590;
const BAR = 14;

function panelSvg(panel: Panel, y0: number): { svg: string; height: number } {
  const parts: string[] = [];
  const values = panel.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) =>
    v > 0 && Number.isFinite(v)
  );
  const max = Math.max(...values, panel.reference?.value ?? 0) * 1.05;
  const min = panel.log ? Math.min(...values) / 2 : 0;
  const x = (v: number) =>
    panel.log
      ? LEFT + (PLOT * Math.log(Math.max(v, min) / min)) / Math.log(max / min)
      : LEFT + (PLOT * Math.max(v, 0)) / max;
  let y = y0;
  parts.push(`<text x="16" y="${y + 18}" class="title">${esc(panel.title)}</text>`);
  parts.push(`<text x="16" y="${y + 36}" class="sub">${esc(panel.subtitle)}</text>`);
  y += 50;
  const series = new Map<string, string>();
  for (const bar of panel.groups.flatMap((g) => g.bars)) {
    if (!series.has(bar.series)) series.set(bar.series, bar.color ?? colorOf(bar.series));
  }
  let lx = LEFT;
  for (const [s, color] of series) {
    parts.push(`<rect x="${lx}" y="${y}" width="10" height="10" fill="${color}"/>`);
    parts.push(`<text x="${lx + 14}" y="${y + 9}" class="legend">${esc(s)}</text>`);
    lx += 24 + s.length * 6.5;
  }
  y += 20;
  const top = y;
  for (const group of panel.groups) {
    const h = group.bars.length * (BAR + 2);
    parts.push(
      `<text x="${LEFT - 8}" y="${y + h / 2 + 4}" class="label" text-anchor="end">${esc(group.label)}</text>`,
    );
    for (const bar of group.bars) {
      const w = Math.max(1, x(bar.value) - LEFT);
      parts.push(
        `<rect x="${LEFT}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" rx="2" fill="${
          bar.color ?? colorOf(bar.series)
        }"><title>${esc(`${bar.series}: ${bar.text}`)}</title></rect>`,
      );
      parts.push(`<text x="${LEFT + w + 4}" y="${y + BAR - 3}" class="value">${esc(bar.text)}</text>`);
      y += BAR + 2;
    }
    y += 8;
  }
  if (panel.reference) {
    const rx = x(panel.reference.value).toFixed(1);
    parts.push(`<line x1="${rx}" y1="${top - 4}" x2="${rx}" y2="${y - 4}" class="ref"/>`);
    parts.push(
      `<text x="${rx}" y="${y + 8}" class="reflabel" text-anchor="middle">${
        esc(panel.reference.label)
      }</text>`,
    );
    y += 12;
  }
  parts.push(`<line x1="${LEFT}" y1="${top - 4}" x2="${LEFT}" y2="${y - 4}" class="axis"/>`);
  return { svg: parts.join("\n"), height: y - y0 + 16 };
}

function panels(report: RunReport, checks: Target[]): Panel[] {
  const note = report.machine.note;
  const rows = report.rows;
  const out: Panel[] = [];
  if (checks.length) {
    out.push({
      title: `Targets P1–P4 and scale out: asockio's ratio to the target (${note})`,
      subtitle:
        "bar = measured ÷ target (cut at 3); a ≤ target is met left of the line, a ≥ target right of it",
      groups: checks.map((t) => ({
        label: `${t.id} ${t.runtime} ${t.short}`,
        bars: [{
          series: t.pass ? "met" : "not met",
          value: Math.min(3, t.value / t.limit),
          color: t.pass ? "#16a34a" : "#dc2626",
          text: `${t.unit === "B" ? `${Math.round(t.value)} B` : `${t.value.toFixed(2)}×`} (target ${
            t.kind === "max" ? "≤" : "≥"
          } ${t.limit}${t.unit === "B" ? " B" : "×"})`,
        }],
      })),
      reference: { value: 1, label: "target" },
    });
  }
  for (const runtime of report.runtimes) {
    const b1 = rows.filter((r) => r.bench === "b1" && r.runtime === runtime && r.params.concurrency === 200);
    if (b1.length) {
      const sizes = [...new Set(b1.map((r) => Number(r.params.size)))].sort((a, b) => a - b);
      const generator = loadGeneratorLabel(b1);
      out.push({
        title: `B1 HTTP on ${runtime}: requests/s at 200 connections (${note})`,
        subtitle: `log scale; ${generator}, on CPU 1, server on CPU 0; hover a bar for its value`,
        log: true,
        groups: sizes.map((size) => ({
          label: bytesLabel(size),
          bars: b1.filter((r) => r.params.size === size && !r.error).map((r) => ({
            series: r.contender,
            value: r.metrics.requestsPerSecond!,
            text: `${si(r.metrics.requestsPerSecond!)} req/s, ${
              r.metrics.cpuUsPerRequest!.toFixed(1)
            } CPU µs/req`,
          })),
        })),
      });
    }
  }
  const b2 = rows.filter((r) => r.bench === "b2" && !r.error);
  if (b2.length) {
    const count = Math.max(...b2.map((r) => Number(r.params.count)));
    out.push({
      title: `B2 round trips/s, ${si(count)} pipelined ~30-byte messages (${note})`,
      subtitle: "client and server in two processes on the same runtime",
      groups: report.runtimes.map((runtime) => ({
        label: runtime,
        bars: b2.filter((r) => r.runtime === runtime && r.params.count === count).map((r) => ({
          series: r.contender,
          value: r.metrics.roundTripsPerSecond!,
          text: `${si(r.metrics.roundTripsPerSecond!)}/s`,
        })),
      })).filter((g) => g.bars.length),
    });
  }
  for (const runtime of report.runtimes) {
    const b3 = rows.filter((r) => r.bench === "b3" && r.runtime === runtime && !r.error);
    if (!b3.length) continue;
    const keys = [...new Set(b3.map((r) => `${r.params.kind}:${r.params.size}`))];
    out.push({
      title: `B3 one-way framed MiB/s on ${runtime} (${note})`,
      subtitle: "log scale; asockio named client → asockio server vs the raw socket writing the same bytes",
      log: true,
      groups: keys.map((key) => {
        const [kind, size] = key.split(":");
        return {
          label: `${bytesLabel(Number(size))}${kind === "stream" ? " streamed" : ""}`,
          bars: b3.filter((r) => `${r.params.kind}:${r.params.size}` === key).map((r) => ({
            series: r.contender,
            value: r.metrics.mibPerSecond!,
            text: `${si(r.metrics.mibPerSecond!)} MiB/s, ${si(r.metrics.messagesPerSecond!)} msgs/s`,
          })),
        };
      }),
    });
  }
  const b4 = rows.filter((r) => r.bench === "b4" && !r.error);
  if (b4.length) {
    out.push({
      title: `B4 heap per idle named connection (${note})`,
      subtitle: "heapUsed delta after a forced GC ÷ connections; the line is the 4 KiB target",
      groups: b4.map((r) => ({
        label: `${r.runtime} ${si(Number(r.params.clients))}`,
        bars: [{
          series: "asockio",
          value: r.metrics.heapPerConnection!,
          text: `${Math.round(r.metrics.heapPerConnection!)} B/conn, ${
            si(r.metrics.handshakesPerSecond!)
          } handshakes/s`,
        }],
      })),
      reference: { value: 4096, label: "4 KiB" },
    });
  }
  for (const runtime of report.runtimes) {
    const b5 = rows.filter((r) => r.bench === "b5" && r.runtime === runtime && !r.error);
    if (!b5.length) continue;
    const concurrencies = [...new Set(b5.map((r) => Number(r.params.concurrency)))].sort((a, b) => a - b);
    out.push({
      title: `B5 scale out on ${runtime}: requests/s, 1 process vs 2 sharing the port (${note})`,
      subtitle: `asockio HTTP, 100 B; ${
        loadGeneratorLabel(b5)
      } on CPU 1, every worker on CPU 0; rows are connections; hover a bar for its value`,
      groups: concurrencies.map((concurrency) => ({
        label: `${concurrency} conns`,
        bars: b5.filter((r) => r.params.concurrency === concurrency).map((r) => ({
          series: r.contender,
          value: r.metrics.requestsPerSecond!,
          text: `${si(r.metrics.requestsPerSecond!)} req/s, ${
            r.metrics.cpuUsPerRequest!.toFixed(1)
          } CPU µs/req`,
        })),
      })),
    });
  }
  const b6 = rows.filter((r) => r.bench === "b6" && !r.error);
  if (b6.length) {
    out.push({
      title: `B6 datagram echo round trips/s over UDP (${note})`,
      subtitle:
        `32-byte datagrams, 64 in flight, client and server in two processes; ratio to the ${B6_BASELINE} ` +
        "UDP echo on the runtime's own API, and the loss rate",
      groups: report.runtimes.map((runtime) => ({
        label: runtime,
        bars: b6.filter((r) => r.runtime === runtime).map((r) => {
          const bare = find(rows, "b6", runtime, B6_BASELINE, r.params);
          const ratio = bare && r !== bare ? `, ${b6Ratio(r, bare).toFixed(2)}×` : "";
          return {
            series: r.contender,
            value: r.metrics.roundTripsPerSecond!,
            text: `${si(r.metrics.roundTripsPerSecond!)}/s${ratio}, lost ${lossLabel(r)}`,
          };
        }),
      })).filter((g) => g.bars.length),
    });
  }
  const b8 = rows.filter((r) => r.bench === "b8" && !r.error);
  if (b8.length) {
    out.push({
      title: `B8 WebSocket echo round trips/s (${note})`,
      subtitle:
        `32-byte messages, 1,000 in flight, one client on the native socket API; ratio to the ${B8_BASELINE}`,
      groups: report.runtimes.map((runtime) => ({
        label: runtime,
        bars: b8.filter((r) => r.runtime === runtime).map((r) => {
          const own = find(rows, "b8", runtime, B8_BASELINE, r.params);
          const ratio = own && r !== own ? `, ${b6Ratio(r, own).toFixed(2)}×` : "";
          return {
            series: r.contender,
            value: r.metrics.roundTripsPerSecond!,
            text: `${si(r.metrics.roundTripsPerSecond!)}/s${ratio}`,
          };
        }),
      })).filter((g) => g.bars.length),
    });
  }
  return out;
}

function svg(report: RunReport, checks: Target[]): string {
  const body: string[] = [];
  let y = 70;
  for (const panel of panels(report, checks)) {
    const { svg, height } = panelSvg(panel, y);
    body.push(svg);
    y += height + 10;
  }
  const m = report.machine;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y + 10}" viewBox="0 0 ${WIDTH} ${
    y + 10
  }" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>
.title { font-size: 15px; font-weight: 600; fill: #111827 }
.sub, .legend, .reflabel { font-size: 11px; fill: #6b7280 }
.label { font-size: 12px; fill: #374151 }
.value { font-size: 11px; fill: #111827 }
.axis { stroke: #9ca3af; stroke-width: 1 }
.ref { stroke: #111827; stroke-width: 1.5; stroke-dasharray: 4 3 }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="16" y="28" font-size="20" font-weight="700" fill="#111827">asockio bench: ${esc(report.name)}</text>
<text x="16" y="50" class="sub">${
    esc(
      `${report.date.slice(0, 10)} · ${
        m.commit ?? ""
      } · ${m.note} · ${m.cpuModel} · Deno ${m.runtimes.deno}, Bun ${m.runtimes.bun}, Node ${m.runtimes.node} · ${
        report.quick ? "quick run" : `${report.reps} reps, medians`
      }`,
    )
  }</text>
${body.join("\n")}
</svg>
`;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** Writes the JSON, Markdown and SVG of a run; returns their repo-relative paths. */
export async function writeReport(report: RunReport): Promise<string[]> {
  const dir = join(ROOT, "bench", "results");
  await mkdir(dir, { recursive: true });
  const checks = targets(report.rows, report.runtimes);
  const base = join(dir, report.name);
  await writeAtomic(`${base}.json`, JSON.stringify({ ...report, targets: checks }, null, 2) + "\n");
  await writeAtomic(`${base}.md`, markdown(report, checks));
  await writeAtomic(`${base}.svg`, svg(report, checks));
  return ["json", "md", "svg"].map((ext) => `bench/results/${report.name}.${ext}`);
}

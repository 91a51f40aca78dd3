/**
 * What every workload process shares: its arguments, the line protocol it speaks with `run.ts` on
 * stdout/stdin, and heap readings. Nothing here touches a socket.
 *
 * Protocol: the child prints `READY {json}` once it listens (or is connected), `RESULT {json}` when a
 * client run ends, and answers the stdin line `stats` with `STATS {json}` (`snapshot <path>`: writes a heap snapshot there, then
 * `STATS {path}`). It exits when stdin closes,
 * so a crashed or killed parent never leaves it behind.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";

/** `--key value` pairs (and bare `--flag`s as `"true"`). */
export function parseArgs(argv: readonly string[] = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out.set(arg.slice(2), "true");
    else out.set(arg.slice(2), argv[++i]!);
  }
  return out;
}

/** A numeric argument, or `fallback`. */
export function numArg(args: Map<string, string>, name: string, fallback: number): number {
  const raw = args.get(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new TypeError(`Cannot parse --${name}: ${raw} is not a number`);
  return value;
}

/** Prints one protocol line. */
export function report(kind: "READY" | "RESULT" | "STATS", data: Record<string, unknown>): void {
  process.stdout.write(`${kind} ${JSON.stringify(data)}\n`);
}

/**
 * Runs a forced garbage collection where the runtime offers one (`--expose-gc`, `Bun.gc`). With `shrink`
 * it then asks the runtime to hand back what it keeps only for speed: V8's last-resort collection, which
 * shrinks a young generation that a burst of allocation grew (25 MiB and more here, kept after an
 * ordinary forced GC), and `Bun.shrink()`, which returns the allocator's free pages.
 */
export function forceGc(shrink = false): boolean {
  const g = globalThis as {
    gc?: (options?: { type: string; execution: string; flavor: string }) => void;
    Bun?: { gc(force: boolean): void; shrink?(): void };
  };
  if (g.Bun) {
    g.Bun.gc(true);
    if (shrink) g.Bun.shrink?.();
    return true;
  }
  if (typeof g.gc === "function") {
    g.gc();
    g.gc();
    if (shrink) g.gc({ type: "major", execution: "sync", flavor: "last-resort" });
    return true;
  }
  return false;
}

/** This process's peak resident set size in bytes (`VmHWM` on Linux), or its RSS now elsewhere. */
export function peakRss(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage().rss;
}

/** Heap and RSS now, after a forced GC where possible (see `forceGc` for `shrink`), and the peak RSS. */
export function memory(shrink = false): { heapUsed: number; rss: number; peakRss: number; gc: boolean } {
  const gc = forceGc(shrink);
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, peakRss: peakRss(), gc };
}

/**
 * Writes a heap snapshot to `path` after a forced GC: V8's format (`.heapsnapshot`) on Deno and Node, JSC's
 * (`Bun.generateHeapSnapshot()`, as JSON) on Bun. `bench/heap_census.ts` sums either by constructor.
 */
export async function heapSnapshot(path: string): Promise<string> {
  forceGc(true);
  const bun = (globalThis as { Bun?: { generateHeapSnapshot(): unknown } }).Bun;
  const { writeFileSync } = await import("node:fs");
  if (bun) writeFileSync(path, JSON.stringify(bun.generateHeapSnapshot()));
  else (await import("node:v8")).writeHeapSnapshot(path);
  return path;
}

/**
 * Answers `stats` lines on stdin with `extra()` plus memory (read with `memory(shrink)`), and calls
 * `onExit` then exits when stdin closes.
 */
export function serveControl(
  extra: () => Record<string, unknown> = () => ({}),
  onExit?: () => unknown,
  shrink = false,
): void {
  let buffered = "";
  const stdin = process.stdin;
  stdin.setEncoding("utf8");
  stdin.on("data", (text: string) => {
    buffered += text;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line === "stats") report("STATS", { ...extra(), ...memory(shrink) });
      else if (line.startsWith("snapshot ")) {
        void heapSnapshot(line.slice(9)).then((path) => report("STATS", { path }));
      }
    }
  });
  stdin.on("end", async () => {
    try {
      await onExit?.();
    } finally {
      process.exit(0);
    }
  });
}

/** Bytes of `X`, the body every benchmark sends. */
export function xBytes(size: number): Uint8Array {
  return new Uint8Array(size).fill(0x58);
}

/** The 8-byte little-endian length header of a frame (the bare contenders' own framing code). */
export function frameHeader(length: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true);
  return out;
}

/** The header followed by the payload. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out.set(frameHeader(payload.length));
  out.set(payload, 8);
  return out;
}

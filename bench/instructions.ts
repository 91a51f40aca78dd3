/**
 * Instructions per round trip of asockio's echo server on Node, counted by valgrind's callgrind: a
 * figure that other load on a shared machine does not move, for a change on the hot path.
 *
 * The B2 echo server (`bench/workloads/framed_asockio.ts`) runs under callgrind, answering the B2
 * client at two counts; the difference of the two totals over the difference of the counts is the
 * server's instructions per round trip, with start-up and warm-up cancelled out. `--against DIR`
 * measures another checkout (say a `git worktree` of the commit before) in the same run. JIT code is
 * named from `--perf-basic-prof`, so `--top N` lists the functions that cost the most, side by side.
 *
 * ```sh
 * apt-get install -y valgrind
 * git worktree add ../before HEAD~1 && (cd ../before && npm ci)
 * deno run -A bench/instructions.ts --api io,inline --against ../before --top 15
 * ```
 *
 * @module
 */
import process from "node:process";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { exitWithUsage, parseCli } from "../scripts/_cli.mjs";
import { binary, ROOT } from "./_runtimes.ts";

const CLI = {
  command: "deno run -A bench/instructions.ts [options]",
  summary: "Counts the echo server's instructions per round trip on Node under valgrind (callgrind).",
  options: {
    api: { type: "list", default: ["io"], choices: ["io", "inline", "frames"], help: "the server APIs" },
    count: { type: "number", default: 300_000, help: "round trips of the longer run (the shorter: a third)" },
    warmup: { type: "number", default: 50_000, help: "untimed round trips first, in both runs" },
    against: { type: "string", value: "DIR", help: "another checkout to measure in the same run" },
    top: { type: "number", default: 0, min: 0, help: "list the N functions whose cost differs most" },
  },
  notes: "Needs valgrind (apt-get install -y valgrind). Exits with 1 when a run fails.",
} as const;
const args = parseCli(process.argv.slice(2), CLI);
if (spawnSync("valgrind", ["--version"]).status !== 0) {
  exitWithUsage(CLI, "valgrind is not installed: apt-get install -y valgrind");
}

/** Builds `tree`'s B2 workload for Node with `tree`'s own build step; returns the script's path. */
function built(tree: string): string {
  const r = spawnSync(binary("deno"), [
    "eval",
    "import { buildForNode } from './bench/_runtimes.ts'; await buildForNode(['bench/workloads/framed_asockio.ts']);",
  ], { cwd: tree, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`Cannot build ${tree} for Node:\n${r.stderr}`);
  return join(tree, ".build/bench-node/bench/workloads/framed_asockio.js");
}

interface Line {
  kind: string;
  data: Record<string, unknown>;
}

function start(command: string, argv: string[]): { exited: Promise<number>; next(): Promise<Line> } & {
  end(): void;
  pid: number;
} {
  // In a temporary directory: the V8 logs the runs may write (isolate-*-v8.log) stay out of the tree.
  const child = spawn(command, argv, { cwd: tmpdir(), stdio: ["pipe", "pipe", "pipe"] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: Line) => void)[] = [];
  lines.on("line", (text) => {
    const m = /^(READY|RESULT) (.*)$/.exec(text);
    if (m) waiting.shift()?.({ kind: m[1]!, data: JSON.parse(m[2]!) });
  });
  child.stderr!.resume();
  return {
    pid: child.pid!,
    exited: new Promise((done) => child.on("exit", (code) => done(code ?? 1))),
    next: () => new Promise((done) => waiting.push(done)),
    end: () => child.stdin!.end(),
  };
}

/** The server's instructions by function (JIT code named from its perf map), after `count` round trips. */
async function measure(script: string, api: string, count: number): Promise<Map<string, number>> {
  const out = `/tmp/asockio-callgrind-${process.pid}`;
  const server = start("valgrind", [
    "--tool=callgrind",
    "--smc-check=all-non-file",
    `--callgrind-out-file=${out}.%p`,
    binary("node"),
    "--single-threaded",
    "--perf-basic-prof",
    script,
    "server",
    "--mode",
    "echo",
    "--api",
    api,
  ]);
  const ready = await server.next();
  const clientArgs = ["client", "--mode", "echo", "--port", `${ready.data.port}`, "--count", `${count}`];
  const client = start(binary("node"), [script, ...clientArgs, "--warmup", `${args.warmup}`, ...frames(api)]);
  await client.next();
  client.end();
  server.end();
  if (await server.exited !== 0) throw new Error(`The server under valgrind failed (${api}, ${count})`);
  const costs = functionCosts(`${out}.${server.pid}`, `/tmp/perf-${server.pid}.map`);
  rmSync(`${out}.${server.pid}`, { force: true });
  rmSync(`/tmp/perf-${server.pid}.map`, { force: true });
  return costs;
}

function frames(api: string): string[] {
  return api === "frames" ? ["--api", "frames"] : [];
}

/** Sums callgrind's self cost per function, naming JIT addresses from the perf map. */
function functionCosts(profile: string, perfMap: string): Map<string, number> {
  const symbols = readFileSync(perfMap, "utf8").trim().split("\n").map((line) => {
    const [address, size, ...name] = line.split(" ");
    return { start: parseInt(address!, 16), size: parseInt(size!, 16), name: name.join(" ") };
  }).sort((a, b) => a.start - b.start);
  const named = (address: number): string => {
    let lo = 0, hi = symbols.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (symbols[mid]!.start <= address) lo = mid + 1;
      else hi = mid - 1;
    }
    const s = symbols[hi];
    return s && address < s.start + s.size ? s.name.replace(/file:\/\/\S*?\/bench-node\//, "") : "JIT code";
  };
  const r = spawnSync("callgrind_annotate", ["--threshold=100", profile], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const costs = new Map<string, number>();
  for (const line of r.stdout.split("\n")) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (!m || m[2]!.startsWith("PROGRAM TOTALS")) continue;
    const jit = /^\?\?\?:0x([0-9a-f]+)/.exec(m[2]!);
    const name = jit ? named(parseInt(jit[1]!, 16)) : m[2]!.replace(/ \[.*$/, "").replace(/^\?\?\?:/, "");
    costs.set(name, (costs.get(name) ?? 0) + Number(m[1]!.replaceAll(",", "")));
  }
  return costs;
}

/** Instructions per round trip, by function, between a run of `count / 3` and one of `count`. */
async function perRoundTrip(script: string, api: string): Promise<Map<string, number>> {
  const short = Math.round(args.count / 3);
  const [a, b] = [await measure(script, api, short), await measure(script, api, args.count)];
  const per = new Map<string, number>();
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    per.set(name, ((b.get(name) ?? 0) - (a.get(name) ?? 0)) / (args.count - short));
  }
  return per;
}

const total = (costs: Map<string, number>) => [...costs.values()].reduce((s, v) => s + v, 0);
/** Function names without their file, line and column, so that two checkouts' functions line up. */
const key = (name: string) => name.replace(/^(JS:\S*) .*$/, "$1");

const trees = [ROOT, ...(args.against ? [resolve(args.against)] : [])];
for (const tree of trees) {
  if (!existsSync(join(tree, "node_modules"))) exitWithUsage(CLI, `${tree}: run npm ci there first`);
}
const scripts = trees.map(built);
let failed = false;
for (const api of args.api) {
  try {
    const runs = [];
    for (const script of scripts) runs.push(await perRoundTrip(script, api));
    const figures = runs.map((r, i) => `${trees[i]}: ${total(r).toFixed(0)}`).join(", ");
    console.log(`${api}: server instructions per round trip: ${figures}`);
    if (args.top > 0) {
      const byKey = runs.map((r) => {
        const m = new Map<string, number>();
        for (const [name, v] of r) m.set(key(name), (m.get(key(name)) ?? 0) + v);
        return m;
      });
      const names = [...new Set(byKey.flatMap((m) => [...m.keys()]))];
      const spread = (n: string) =>
        Math.max(...byKey.map((m) => m.get(n) ?? 0)) - Math.min(...byKey.map((m) => m.get(n) ?? 0));
      const ranked = names.sort((
        x,
        y,
      ) => (byKey.length > 1 ? spread(y) - spread(x) : (byKey[0]!.get(y) ?? 0) - (byKey[0]!.get(x) ?? 0)));
      for (const n of ranked.slice(0, args.top)) {
        console.log(
          `  ${byKey.map((m) => (m.get(n) ?? 0).toFixed(1).padStart(8)).join(" ")}  ${n.slice(0, 110)}`,
        );
      }
    }
  } catch (err) {
    failed = true;
    console.error(`${api}: ${(err as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);

/**
 * The runtimes under test and the machine they run on: binaries from `node_modules/.bin`, the Node
 * build of the workloads (Node runs compiled JavaScript, as users of the npm package do), versions,
 * CPU model and core count.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { TASKSET } from "./_proc.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const NODE_OUT = join(ROOT, ".build", "bench-node");

/** A runtime the bench can run workloads on. */
export type Runtime = "deno" | "bun" | "node";

/** Every runtime, in report order. */
export const RUNTIMES: readonly Runtime[] = ["deno", "bun", "node"];

/** The runtime's binary. */
export function binary(runtime: Runtime): string {
  return join(BIN, runtime);
}

/**
 * The command that runs a workload (a repo-relative `.ts` path) on `runtime`. `gc` exposes a
 * forced GC (`--expose-gc`; Bun always has `Bun.gc`). `denoFlags` go to `deno run` only (B5's
 * `--unstable-net`, which Deno's `reusePort` needs).
 */
export function workloadCommand(
  runtime: Runtime,
  file: string,
  args: string[],
  gc = false,
  denoFlags: readonly string[] = [],
): string[] {
  if (runtime === "deno") {
    return [
      binary("deno"),
      "run",
      "-A",
      ...denoFlags,
      ...(gc ? ["--v8-flags=--expose-gc"] : []),
      join(ROOT, file),
      ...args,
    ];
  }
  if (runtime === "bun") return [binary("bun"), join(ROOT, file), ...args];
  return [
    binary("node"),
    ...(gc ? ["--expose-gc"] : []),
    join(NODE_OUT, file.replace(/\.ts$/, ".js")),
    ...args,
  ];
}

/**
 * Compiles the workloads (and the asockio sources they import) for Node with `tsc`, with the npm
 * build's settings, into `.build/bench-node/`.
 */
export async function buildForNode(files: readonly string[]): Promise<void> {
  const buildDir = join(ROOT, ".build");
  await mkdir(buildDir, { recursive: true });
  const denoJson = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
  const tsconfig = {
    compilerOptions: {
      ...(denoJson.compilerOptions ?? {}),
      target: "ES2022",
      lib: ["ES2023", "ESNext.Disposable"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      types: ["node"],
      rootDir: "..",
      outDir: "bench-node",
      rewriteRelativeImportExtensions: true,
      isolatedModules: true,
      skipLibCheck: true,
      noEmitOnError: true,
      newLine: "lf",
    },
    files: files.map((f) => "../" + f),
  };
  const path = join(buildDir, "tsconfig.bench.json");
  await writeFile(path, JSON.stringify(tsconfig, null, 2) + "\n");
  const r = spawnSync(join(BIN, "tsc"), ["-p", path, "--pretty", "false"], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`Cannot build the workloads for Node: tsc failed\n${r.stdout}${r.stderr}`);
  }
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "";
}

/** The version string of each runtime binary. */
export function runtimeVersions(): Record<Runtime, string> {
  return {
    deno: firstLine(binary("deno"), ["--version"]).replace(/^deno /, "").split(" ")[0] ?? "",
    bun: firstLine(binary("bun"), ["--version"]),
    node: firstLine(binary("node"), ["--version"]).replace(/^v/, ""),
  };
}

/** `wrk`'s path, or `undefined` when it is not installed. */
export function findWrk(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/local/bin"])) {
    const path = join(dir, "wrk");
    if (dir && existsSync(path)) return path;
  }
  return undefined;
}

/** What the report says about the machine. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  /** Shown beside every figure. */
  note: string;
  pinning: string;
  runtimes: Record<Runtime, string>;
  wrk: string | undefined;
  /** The commit measured, with `+dirty` when asockio's sources differ from it. */
  commit: string;
}

/** The checked-out commit (read-only git), marked when the measured sources have local changes. */
function commitInfo(): string {
  const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" });
  if (head.status !== 0) return "unknown";
  const dirty = spawnSync("git", [
    "status",
    "--porcelain",
    "--",
    "mod.ts",
    "core",
    "transports",
    "processors",
  ], {
    cwd: ROOT,
    encoding: "utf8",
  });
  return `${head.stdout.trim()}${dirty.stdout.trim() ? "+dirty" : ""}`;
}

/** Collects {@linkcode MachineInfo}. */
export function machineInfo(): MachineInfo {
  const nproc = Number(firstLine("nproc", [])) || cpus().length;
  const wrk = findWrk();
  return {
    nproc,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: firstLine("uname", ["-sr"]),
    note: `${nproc} shared cores`,
    pinning: TASKSET
      ? "server on CPU 0, load generator on CPU 1 (taskset)"
      : "not pinned (taskset not found)",
    runtimes: runtimeVersions(),
    wrk: wrk ? firstLine(wrk, ["-v"]).split(" [")[0] : undefined,
    commit: commitInfo(),
  };
}

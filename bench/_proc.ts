/**
 * Child processes for `run.ts`: start one pinned to a CPU (with `taskset` where it exists) and with
 * a raised `ulimit -n`, read its protocol lines, read its CPU time from `/proc`, and kill every
 * child still running when the run ends, however it ends.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";

/** Where `run.ts` found `taskset`, or `undefined` (then nothing is pinned, and the report says so). */
export const TASKSET: string | undefined = ["/usr/bin/taskset", "/bin/taskset"].find((p) => existsSync(p));

/** Clock ticks per second of `/proc/<pid>/stat` times. */
export const CLK_TCK: number = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** A protocol line a child printed: `READY`, `RESULT` or `STATS` with its JSON. */
export type Reply = Record<string, unknown>;

/** Options for {@linkcode startChild}. */
export interface ChildOptions {
  /** A short name for progress and error messages. */
  label: string;
  /** The CPU to pin to; ignored without `taskset`. */
  cpu?: number;
  /** Raise the open-file limit to this (through `bash -c 'ulimit -n'`). */
  nofile?: number;
  /** Working directory. */
  cwd?: string;
  /** Extra environment. */
  env?: Record<string, string>;
}

/** A running child. */
export interface Child {
  /** The label given at start. */
  readonly label: string;
  /** The pid of the process (the runtime itself: `bash`, `taskset` and `exec` keep it). */
  readonly pid: number;
  /** Resolves with the JSON of the next `kind` line; rejects when the child exits first or time runs out. */
  next(kind: string, timeoutMs: number): Promise<Reply>;
  /** Sends a line to the child's stdin. */
  send(line: string): void;
  /** Closes stdin (servers then exit), waits up to `graceMs`, then kills. Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** Resolves with the exit code once the child has exited. */
  readonly exited: Promise<number | null>;
  /** The last lines of its stderr and of non-protocol stdout, for error reports. */
  tail(): string;
}

const running = new Set<ChildProcess>();

/** Kills every child still running (SIGKILL, by pid). Safe to call twice. */
export function killAll(): void {
  for (const proc of running) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

/**
 * Starts `argv` as a child, pinned and with the file limit raised when asked.
 *
 * @example
 * ```ts
 * const server = startChild(["node", "server.js"], { label: "server", cpu: 0 });
 * const { port } = await server.next("READY", 30_000);
 * await server.stop();
 * ```
 */
export function startChild(argv: string[], options: ChildOptions): Child {
  hookExit();
  let command = argv;
  if (TASKSET && options.cpu !== undefined) command = [TASKSET, "-c", String(options.cpu), ...command];
  if (options.nofile) {
    command = [
      "bash",
      "-c",
      `ulimit -n ${options.nofile} 2>/dev/null || ulimit -n hard; exec "$@"`,
      "bash",
      ...command,
    ];
  }
  const proc = spawn(command[0]!, command.slice(1), {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  running.add(proc);
  const tailLines: string[] = [];
  const keep = (line: string) => {
    tailLines.push(line);
    if (tailLines.length > 30) tailLines.shift();
  };
  const queues = new Map<string, Reply[]>();
  const waiters = new Map<string, Array<(reply: Reply) => void>>();
  let exitCode: number | null | undefined;
  let exitListeners: Array<() => void> = [];
  const exited = new Promise<number | null>((resolve) => {
    proc.on("exit", (code, signal) => {
      running.delete(proc);
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
      for (const f of exitListeners) f();
      exitListeners = [];
    });
    proc.on("error", (err) => {
      keep(`spawn error: ${err.message}`);
      running.delete(proc);
      exitCode = -1;
      resolve(-1);
      for (const f of exitListeners) f();
      exitListeners = [];
    });
  });
  let stdoutBuffer = "";
  proc.stdout!.setEncoding("utf8");
  proc.stdout!.on("data", (text: string) => {
    stdoutBuffer += text;
    let nl;
    while ((nl = stdoutBuffer.indexOf("\n")) >= 0) {
      const line = stdoutBuffer.slice(0, nl);
      stdoutBuffer = stdoutBuffer.slice(nl + 1);
      const match = /^(READY|RESULT|STATS|WRK) (\{.*\})\s*$/.exec(line);
      if (!match) {
        keep(line);
        continue;
      }
      let reply: Reply;
      try {
        reply = JSON.parse(match[2]!);
      } catch {
        keep(line);
        continue;
      }
      const waiting = waiters.get(match[1]!);
      if (waiting?.length) waiting.shift()!(reply);
      else queues.set(match[1]!, [...(queues.get(match[1]!) ?? []), reply]);
    }
  });
  let stderrBuffer = "";
  proc.stderr!.setEncoding("utf8");
  proc.stderr!.on("data", (text: string) => {
    stderrBuffer = (stderrBuffer + text).slice(-4000);
  });
  // A child that closed its stdin early must not crash the parent with EPIPE.
  proc.stdin!.on("error", () => {});
  const tail = () => [...tailLines, ...stderrBuffer.trim().split("\n").slice(-15)].filter(Boolean).join("\n");

  return {
    label: options.label,
    pid: proc.pid ?? -1,
    exited,
    tail,
    next(kind, timeoutMs) {
      const queued = queues.get(kind);
      if (queued?.length) return Promise.resolve(queued.shift()!);
      return new Promise<Reply>((resolve, reject) => {
        let timer: ReturnType<typeof setTimeout> | undefined = undefined;
        const onExit = () => {
          clearTimeout(timer);
          // Let the last stdout/stderr bytes arrive before reporting.
          setTimeout(() => {
            const late = queues.get(kind);
            if (late?.length) return resolve(late.shift()!);
            reject(new Error(`${options.label} exited with code ${exitCode} before ${kind}\n${tail()}`));
          }, 50);
        };
        const done = (reply: Reply) => {
          clearTimeout(timer);
          exitListeners = exitListeners.filter((f) => f !== onExit);
          resolve(reply);
        };
        timer = setTimeout(() => {
          const list = waiters.get(kind) ?? [];
          waiters.set(kind, list.filter((f) => f !== done));
          exitListeners = exitListeners.filter((f) => f !== onExit);
          reject(new Error(`${options.label} sent no ${kind} within ${timeoutMs / 1000} s\n${tail()}`));
        }, timeoutMs);
        waiters.set(kind, [...(waiters.get(kind) ?? []), done]);
        if (exitCode !== undefined) onExit();
        else exitListeners.push(onExit);
      });
    },
    send(line) {
      if (proc.stdin!.writable) proc.stdin!.write(line + "\n");
    },
    async stop(graceMs = 3000) {
      if (exitCode !== undefined) return exitCode;
      proc.stdin!.end();
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** User plus system CPU time of a process so far, in microseconds (all its threads). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After ")": state is field 3 of the whole line, so utime (14) and stime (15) are at 11 and 12.
  return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1e6;
}

/** The peak resident set size of a running process, in bytes (`VmHWM`), or 0 when unknown. */
export function peakRss(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

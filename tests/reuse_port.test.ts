/**
 * `reusePort` across processes: two worker children of this runtime share one port and the kernel
 * spreads connections over both; where the runtime cannot share ports, listening fails with a typed
 * error and the process lives on. Loopback only; the first worker binds port 0.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { detectRuntime, IoCore } from "../mod.ts";
import { runToEnd } from "./_child_peers.ts";
import { HangError, TEST_TIMEOUT } from "./_helpers.ts";

const CONNECTIONS = 200;
const CONCURRENCY = 16;
/** Each worker must take at least this share of the connections. */
const MIN_SHARE = 0.2;

const runtime = detectRuntime();
const CHILD = fileURLToPath(import.meta.url).replace(/reuse_port\.test\.(ts|js)$/, "_reuse_port_child.$1");
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
/** Node's own `node:net` passes `reusePort` on from 22.12 (and 23.1). */
const nodeHasReusePort = major > 22 || (major === 22 && minor >= 12);
/** Whether this Deno process itself runs with `--unstable-net` (only then is `listenDatagram` there). */
const denoUnstableNet =
  typeof (globalThis as { Deno?: { listenDatagram?: unknown } }).Deno?.listenDatagram ===
    "function";

/** Why this runtime cannot share a port, or undefined when it can. */
const noReusePortReason = runtime === "node" && !nodeHasReusePort
  ? `node:net supports reusePort from Node 22.12, this is ${process.version}`
  : undefined;
/** Why no runtime refusal can be seen here, or undefined when it can. */
const noRefusalReason = runtime === "bun"
  ? "Bun supports reusePort, so there is no refusal to check"
  : runtime === "node" && nodeHasReusePort
  ? `Node ${process.version} supports reusePort, so there is no refusal to check`
  : undefined;

/**
 * Arguments that run the child on this runtime. Children get their own flags: on Deno, `unstableNet`
 * adds `--unstable-net` whether or not this test process has it.
 */
function childArgs(unstableNet: boolean): string[] {
  if (runtime !== "deno") return [CHILD];
  return ["run", "-A", "--no-config", ...(unstableNet ? ["--unstable-net"] : []), CHILD];
}

/** A `serve` child: started, its port known, and a way to stop it. */
interface Worker {
  readonly child: ChildProcess;
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts a `serve` child on `port` and waits (bounded) for its `listening <port>` line. */
function startWorker(port: number): Promise<Worker> {
  const child = spawn(process.execPath, [...childArgs(true), "serve", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  };
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      void stop();
      reject(new HangError(`Timed out waiting for a worker to listen; stderr: ${stderr}`));
    }, 8000);
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const match = /listening (\d+)\n/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ child, port: Number(match[1]), stop });
      }
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`The worker exited with ${code ?? signal} before listening; stderr: ${stderr}`));
    });
  });
}

/** One HTTP request on a fresh connection; resolves with the answering worker's pid. */
function askWorker(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.write("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    });
    socket.setTimeout(5000, () => socket.destroy(new HangError("Timed out waiting for a worker's answer")));
    socket.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const match = /worker (\d+) accepted/.exec(text);
      if (match) resolve(Number(match[1]));
      else reject(new Error(`Unexpected answer: ${JSON.stringify(text)}`));
    });
  });
}

describe("reusePort across processes", () => {
  it(
    `two worker processes share one port and each accepts at least ${MIN_SHARE * 100}% of ${CONNECTIONS} ` +
      `connections${runtime === "deno" ? ` (this Deno has --unstable-net: ${denoUnstableNet})` : ""}`,
    { ...TEST_TIMEOUT, skip: noReusePortReason },
    async () => {
      const workers: Worker[] = [];
      try {
        workers.push(await startWorker(0));
        const port = workers[0]!.port;
        workers.push(await startWorker(port));
        const counts = new Map<number, number>();
        let next = 0;
        const lane = async () => {
          while (next < CONNECTIONS) {
            next++;
            const pid = await askWorker(port);
            counts.set(pid, (counts.get(pid) ?? 0) + 1);
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, lane));
        const pids = workers.map((w) => w.child.pid!);
        assert.deepEqual([...counts.keys()].sort(), [...pids].sort(), "only the two workers answered");
        for (const pid of pids) {
          const count = counts.get(pid) ?? 0;
          assert.ok(
            count >= CONNECTIONS * MIN_SHARE,
            `worker ${pid} accepted ${count} of ${CONNECTIONS}: ${JSON.stringify([...counts])}`,
          );
        }
      } finally {
        await Promise.all(workers.map((w) => w.stop()));
      }
    },
  );

  it(
    `listening with reusePort where the runtime cannot${
      runtime === "deno" ? " (Deno without --unstable-net)" : ""
    } fails with an UnsupportedError naming the reason, and the process ends on its own with 0`,
    { ...TEST_TIMEOUT, skip: noRefusalReason },
    async () => {
      // runToEnd never adds --unstable-net, so a Deno child lacks it whatever this process has.
      const run = await runToEnd(CHILD, ["refuse"], 15_000);
      assert.equal(run.code, 0, `the child ended with ${run.code}; stderr:\n${run.stderr}`);
      const line = run.stdout.split("\n").find((l) => l.startsWith("RESULT "));
      assert.ok(line, `the child printed no result; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
      const result = JSON.parse(line.slice("RESULT ".length));
      assert.equal(result.listened, false, `the child listened; stdout:\n${run.stdout}`);
      assert.equal(result.name, "UnsupportedError");
      assert.equal(
        result.message,
        runtime === "deno"
          ? "Cannot listen on tcp:127.0.0.1:0 with reusePort: Deno needs the --unstable-net flag for it"
          : `Cannot listen on tcp:127.0.0.1:0 with reusePort: node:net supports it from Node 22.12, this is ${process.version}`,
      );
      if (runtime === "deno" && !denoUnstableNet) {
        // This process lacks the flag too: the same refusal here, and the test runner lives on.
        const core = new IoCore({
          listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0, reusePort: true }],
        });
        try {
          await assert.rejects(core.listen(), {
            name: "UnsupportedError",
            message:
              "Cannot listen on tcp:127.0.0.1:0 with reusePort: Deno needs the --unstable-net flag for it",
          });
        } finally {
          await core.close();
        }
      }
    },
  );
});

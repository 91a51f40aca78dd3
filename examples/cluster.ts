/**
 * Scale out: a launcher that runs N worker processes of this same runtime, each with one `IoCore`
 * listening on the same TCP port with `reusePort: true` (the kernel spreads new connections over
 * them), answering HTTP with `hello from worker <pid>`.
 *
 * ```sh
 * node_modules/.bin/deno run --unstable-net --allow-net --allow-run --allow-env examples/cluster.ts --workers 4
 * node_modules/.bin/bun examples/cluster.ts --workers 4
 * node_modules/.bin/node examples/cluster.ts --workers 4   # Node 24 (types stripped); reusePort needs Node >= 22.12
 * ```
 *
 * Options: `--workers N` (default: one per CPU), `--port P` (default 8080; `0` lets the first worker
 * pick one and the others join it), `--hostname H` (default 127.0.0.1), `--drain-ms MS` (default 5000).
 *
 * With `--nats URL` the workers join one cluster over NATS (`natsCluster`, with nats.js from
 * `npm install nats`; on Deno add `--allow-read`). Each worker then also accepts named clients
 * (devices) on `--device-port` (default 8081, shared the same way), adopting every keyword, and
 * `GET /send?to=<keyword>&text=<text>` on the HTTP port sends `text` to that device through
 * whichever worker took the request, wherever the device connected. The answer names both:
 * `sent by worker-<pid> to sensor-17 on worker-<pid>`, or 404 `sensor-17 is offline`.
 *
 * ```sh
 * nats-server -js &
 * node_modules/.bin/node examples/cluster.ts --workers 4 --nats nats://127.0.0.1:4222
 * curl 'http://127.0.0.1:8080/send?to=sensor-17&text=hello'
 * ```
 *
 * SIGTERM or SIGINT to the launcher is forwarded to the workers; each one drains with
 * `core.shutdown()` (stops accepting, closes its connections once what is queued is written, waits at
 * most `--drain-ms`, then closes its core) and the launcher exits once they are gone. A worker that dies otherwise is restarted after a short
 * delay, at most {@linkcode MAX_RESTARTS_PER_MINUTE} times a minute.
 *
 * @module
 */
import { ClientNotConnectedError, detectRuntime, IoCore, type IoCoreOptions } from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import { natsCluster, type NatsConnectionLike } from "../cluster/nats.ts";
import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import process from "node:process";

/** Restarts of crashed workers allowed in any 60 s window, over the whole cluster. */
export const MAX_RESTARTS_PER_MINUTE = 10;
/** How long a crashed worker's slot waits before it is started again. */
const RESTART_DELAY_MS = 500;

/** The command line, read when this file runs as the program (not when a test imports it). */
interface Args {
  workers: string | undefined;
  port: number;
  hostname: string;
  drainMs: number;
  nats: string | undefined;
  devicePort: number;
  worker: boolean;
}

/** Reads the command line. */
function readArgs(): Args {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      workers: { type: "string" },
      port: { type: "string", default: "8080" },
      hostname: { type: "string", default: "127.0.0.1" },
      "drain-ms": { type: "string", default: "5000" },
      nats: { type: "string" },
      "device-port": { type: "string", default: "8081" },
      worker: { type: "boolean", default: false },
    },
  });
  return {
    workers: values.workers,
    port: Number(values.port),
    hostname: values.hostname,
    drainMs: Number(values["drain-ms"]),
    nats: values.nats,
    devicePort: Number(values["device-port"]),
    worker: values.worker,
  };
}

if (/[\\/]cluster\.[jt]s$/.test(process.argv[1] ?? "")) {
  const args = readArgs();
  if (args.worker) await runWorker(args);
  else await runLauncher(args);
}

/**
 * One worker: a core on the shared port whose raw (HTTP) clients get `hello from worker <pid>`;
 * with `--nats`, also a node of the cluster, with devices on the shared device port.
 */
async function runWorker({ hostname, port, drainMs, nats, devicePort }: Args): Promise<void> {
  let draining = false;
  const node = `worker-${process.pid}`;

  class Hello extends HttpResponder {
    override async handle(request: HttpRequest): Promise<HttpResponse> {
      // While draining, the answer says connection: close (a keep-alive client reconnects elsewhere).
      const url = new URL(request.target, "http://worker");
      const to = url.searchParams.get("to");
      if (url.pathname !== "/send" || to === null) {
        return {
          headers: { "content-type": "text/plain" },
          body: `hello from worker ${process.pid}\n`,
          close: draining,
        };
      }
      try {
        // Wherever the device connected: here, or on another worker through NATS.
        await core.sendMessageToKeyword(to, url.searchParams.get("text") ?? "");
        const at = await core.locateKeyword(to);
        return { body: `sent by ${node} to ${to} on ${at?.node ?? "?"}\n`, close: draining };
      } catch (err) {
        if (!(err instanceof ClientNotConnectedError)) throw err;
        return { status: 404, body: `${to} is offline\n`, close: draining };
      }
    }
  }

  const options: IoCoreOptions = {
    listeners: [{ transport: "tcp", hostname, port, reusePort: true, name: "http" }],
    rawConnection: (info) => info.listener.name === "http",
    unknownClients: "allow",
    unknownClientProcessor: Hello,
  };
  let nc: (NatsConnectionLike & { close(): Promise<void> }) | undefined;
  if (nats !== undefined) {
    // nats.js is the application's dependency (an optional peer of asockio), loaded only here.
    const { connect } = await import("nats");
    nc = await connect({ servers: nats });
    options.listeners!.push({
      transport: "tcp",
      hostname,
      port: devicePort,
      reusePort: true,
      name: "devices",
    });
    options.acceptUnexpectedKeywords = "adopt"; // every device keyword, without addClient
    options.cluster = natsCluster(nc, { name: "example", node });
  }
  const core = new IoCore(options);
  const [addr, devices] = await core.listen();
  if (addr?.transport !== "tcp") throw new Error("Cannot start worker: the listener is not TCP");
  const also = devices?.transport === "tcp" ? ` (devices on ${devices.hostname}:${devices.port})` : "";
  console.log(`worker ${process.pid} listening on ${addr.hostname}:${addr.port}${also}`);

  // Stop accepting (the other workers take the new connections), close each connection once what is
  // queued for it is written, close what is left after --drain-ms.
  const drain = () => {
    draining = true;
    void core.shutdown({ timeoutMs: drainMs });
  };
  process.on("SIGTERM", drain);
  process.on("SIGINT", drain);

  // Consume the events nobody else reads, and end with the core.
  for await (const _events of core) { /* the processor does the work */ }
  await nc?.close();
  console.log(`worker ${process.pid} drained`);
  process.exit(0);
}

/** The launcher: starts, restarts and stops the workers. */
async function runLauncher(args: Args): Promise<void> {
  const { hostname, drainMs, nats } = args;
  const count = args.workers === undefined ? availableParallelism() : Number(args.workers);
  if (!Number.isSafeInteger(count) || count < 1) throw new TypeError(`Invalid --workers: ${args.workers}`);
  const file = fileURLToPath(import.meta.url);
  // Children get their own flags: Deno needs --unstable-net for reusePort; with --nats, the
  // project's config (to find "nats" in node_modules) and the reads and environment nats.js needs.
  const runtime = detectRuntime() !== "deno"
    ? [file]
    : nats === undefined
    ? ["run", "--unstable-net", "--allow-net", "--no-config", file]
    : ["run", "--unstable-net", "--allow-net", "--allow-read", "--allow-env", file];
  const workers = new Map<number, ChildProcess>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const restarts: number[] = [];
  let stopping = false;
  let exitCode = 0;
  let boundPort = args.port;
  let boundDevicePort = args.devicePort;

  /** Starts the worker of `slot`; resolves with the ports it bound. */
  const start = (slot: number): Promise<[number, number]> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [
        ...runtime,
        "--worker",
        "--port",
        String(boundPort),
        "--hostname",
        hostname,
        "--drain-ms",
        String(drainMs),
        ...(nats === undefined ? [] : ["--nats", nats, "--device-port", String(boundDevicePort)]),
      ], { stdio: ["ignore", "pipe", "inherit"] });
      workers.set(slot, child);
      let partial = "";
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        const lines = (partial + chunk).split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          console.log(`[${slot}] ${line}`);
          const match = /listening on [^ ]*:(\d+)(?: \(devices on [^ ]*:(\d+)\))?$/.exec(line);
          if (match) resolve([Number(match[1]), Number(match[2] ?? 0)]);
        }
      });
      child.on("exit", (code, signal) => {
        workers.delete(slot);
        reject(new Error(`Worker ${slot} exited with ${code ?? signal} before listening`));
        if (stopping) {
          if (workers.size === 0) process.exit(exitCode);
          return;
        }
        console.error(`[${slot}] worker ${child.pid} died (${code ?? signal})`);
        const now = Date.now();
        while (restarts.length && restarts[0]! < now - 60_000) restarts.shift();
        if (restarts.length >= MAX_RESTARTS_PER_MINUTE) {
          console.error(`[${slot}] not restarted: ${MAX_RESTARTS_PER_MINUTE} restarts in the last minute`);
          if (workers.size === 0) process.exit(1);
          return;
        }
        restarts.push(now);
        const timer = setTimeout(() => {
          timers.delete(timer);
          start(slot).catch(() => {}); // its exit handler decides again
        }, RESTART_DELAY_MS);
        timers.add(timer);
      });
    });

  const stop = (signal: "SIGTERM" | "SIGINT") => {
    if (stopping) return;
    stopping = true;
    console.log(`launcher: ${signal}, draining ${workers.size} workers`);
    for (const timer of timers) clearTimeout(timer);
    for (const child of workers.values()) child.kill("SIGTERM");
    if (workers.size === 0) process.exit(exitCode);
    // A worker that ignores SIGTERM is killed once its drain time has passed.
    setTimeout(() => {
      for (const child of workers.values()) child.kill("SIGKILL");
    }, drainMs + 2000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  try {
    // The first worker binds (port 0 resolves there); the others join its port.
    [boundPort, boundDevicePort] = await start(0);
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(i + 1)));
    const devices = nats === undefined ? "" : `, devices on ${hostname}:${boundDevicePort}`;
    console.log(`launcher: ${count} workers on http://${hostname}:${boundPort}${devices}`);
  } catch (err) {
    // A worker that cannot even start (port taken, no reusePort here) stops the whole cluster.
    console.error(`launcher: ${(err as Error).message}`);
    exitCode = 1;
    stop("SIGTERM");
  }
}

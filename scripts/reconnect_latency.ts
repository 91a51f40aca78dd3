/**
 * Reconnect latency: how long an outgoing named client takes to be back in business after its server
 * process is killed with SIGKILL and restarted on the same port.
 *
 * An echo server runs as a child process of the same runtime (the suite's `ECHO_SERVER_PEER`); a client
 * core in this process connects to it with a named outgoing client and the reconnect policy. Each run
 * kills the server, waits until the client reports the disconnection, restarts the server, and measures
 * from the moment the restarted server printed that it listens to the first echo the client receives.
 * Meanwhile the client sends a numbered message every few milliseconds; all of them must come back
 * exactly once and in order (they wait in the client's send buffer while it is away).
 *
 * Usage (any runtime):
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/reconnect_latency.ts --restarts 20
 * node_modules/.bin/bun scripts/reconnect_latency.ts --initial-delay-ms 10
 * node_modules/.bin/node scripts/reconnect_latency.ts
 * ```
 *
 * Options: `--help` lists them. Exits with 1 on any failure (a lost, duplicated or reordered message, or a
 * wait past its timeout) and 2 on bad arguments.
 *
 * @module
 */
import process from "node:process";
import type { ClientId, IoIterationResult } from "../mod.ts";
import { DEFAULT_RECONNECT, type ReconnectOptions } from "../core/clients/reconnect.ts";
import type { EchoServerChild } from "../tests/_child_peers.ts";
import { parseCli } from "./_cli.mjs";

const CLI = {
  command: "scripts/reconnect_latency.ts [options]   (with deno run -A, bun or node)",
  summary:
    "Kills an echo server child process with SIGKILL and restarts it on the same port, N times, and measures\n" +
    "how long the client core in this process takes to get an echo back from the restarted server.",
  options: {
    restarts: { type: "number", default: 20, help: "how many times to kill and restart the server" },
    initialDelayMs: {
      type: "number",
      default: DEFAULT_RECONNECT.initialDelayMs,
      min: 0,
      value: "D",
      help: "reconnect.initialDelayMs of the client (the policy's own by default)",
    },
    sendEveryMs: {
      type: "number",
      default: 5,
      value: "S",
      help: "how often the client sends a message while the server is away",
    },
    timeoutMs: { type: "number", default: 20_000, value: "T", help: "the bound of each wait" },
  },
  notes: "Exits with 1 on any failure, 2 on bad arguments.",
} as const;
const args = parseCli(process.argv.slice(2), CLI);
// Loaded once the arguments are parsed, so `--help` and a bad flag answer without loading the library.
const { IoCore } = await import("../mod.ts");
const { startEchoServerChild } = await import("../tests/_child_peers.ts");
const { HangError, tempDir, withTimeout } = await import("../tests/_helpers.ts");
const { runtimeLabel } = await import("../tests/_script_args.ts");

/** One kill-and-restart. */
interface Run {
  /** From the server's `ready` line (its clock) to the first echo the client got (this clock). */
  latencyMs: number;
  /** From the SIGKILL to the client's disconnection event. */
  noticedMs: number;
  /** From the SIGKILL to the restarted server's `ready` line. */
  downMs: number;
  /** The most consecutive failed attempts the client reported while the server was away. */
  failedAttempts: number;
  /** Messages sent while the client was away (all buffered), and in all during the run. */
  buffered: number;
  sent: number;
}

const reconnect: ReconnectOptions | undefined = args.initialDelayMs === DEFAULT_RECONNECT.initialDelayMs
  ? undefined // the default policy, as a user who says nothing gets it
  : { initialDelayMs: args.initialDelayMs };
const policy = { ...DEFAULT_RECONNECT, ...reconnect };

console.log(`asockio reconnect latency on ${runtimeLabel()}: ${args.restarts} restarts of an echo server`);
console.log(
  `client policy: initialDelayMs ${policy.initialDelayMs}, maxDelayMs ${policy.maxDelayMs}, jitter ${policy.jitter}${
    reconnect ? "" : " (the defaults)"
  }; a message every ${args.sendEveryMs} ms while away`,
);

const dir = await tempDir("asockio-relat-");
const core = new IoCore({ logger: null });
const echoes: { text: string; at: number }[] = [];
const decoder = new TextDecoder();
let disconnected = false;
let server: EchoServerChild | undefined;
const runs: Run[] = [];
const failures: string[] = [];

/** Reads one `ioIteration` result: echoes with their arrival time, and disconnections. */
function take(id: ClientId, r: IoIterationResult): void {
  if (r.clientsWithDisconnectedConnection.has(id)) disconnected = true;
  if (!r.clientsHaveDataToRead.has(id)) return;
  const at = Date.now();
  for (const message of core.getMessagesFromClient(id)) echoes.push({ text: decoder.decode(message), at });
}

/** Runs `ioIteration` until `done()`, calling `tick` before each call; throws HangError past the timeout. */
async function pump(id: ClientId, what: string, done: () => boolean, tick?: () => void): Promise<void> {
  const deadline = Date.now() + args.timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new HangError(`Timed out after ${args.timeoutMs} ms waiting for ${what}`);
    }
    tick?.();
    take(id, await core.ioIteration(tick ? args.sendEveryMs : 50));
  }
}

/** Sends `text` and waits for its echo. */
async function roundTrip(id: ClientId, text: string): Promise<void> {
  const from = echoes.length;
  core.sendMessageToClient(id, text);
  await pump(id, `the echo of ${text}`, () => echoes.slice(from).some((e) => e.text === text));
}

async function kill(child: EchoServerChild): Promise<void> {
  child.child.kill("SIGKILL");
  await withTimeout(child.child.exited, args.timeoutMs, "the killed server to exit");
}

async function restartOnce(id: ClientId, run: number, port: number): Promise<Run> {
  await roundTrip(id, `r${run}-live`);
  const prefix = `r${run}-`;
  const from = echoes.length;
  disconnected = false;
  const killedAt = Date.now();
  await kill(server!);
  await pump(id, "the client to report the disconnection", () => disconnected);
  const noticedAt = Date.now();

  // Restart while the client keeps sending: a numbered message every sendEveryMs.
  let restarted: EchoServerChild | undefined;
  let restartError: unknown;
  const restarting = startEchoServerChild(dir.path, "tcp", String(port), args.timeoutMs).then(
    (s) => (restarted = s),
    (err) => (restartError = err),
  );
  const sent: string[] = [];
  let lastSend = 0;
  let buffered = 0;
  let failedAttempts = 0;
  const send = () => {
    if (restartError) throw restartError;
    const info = core.getClientInfo(id)!;
    failedAttempts = Math.max(failedAttempts, info.reconnectAttempts);
    if (Date.now() - lastSend < args.sendEveryMs) return;
    lastSend = Date.now();
    if (info.state !== "connected") buffered++;
    const text = `${prefix}${sent.length}`;
    sent.push(text);
    core.sendMessageToClient(id, text);
  };
  const mine = () =>
    echoes.slice(from).filter((e) => e.text.startsWith(prefix) && e.text !== `${prefix}live`);
  await pump(id, "the first echo from the restarted server", () => mine().length > 0, send);
  const firstEchoAt = mine()[0]!.at;
  await withTimeout(restarting, args.timeoutMs, "the restarted server's ready line");
  if (restartError) throw restartError;
  server = restarted!;

  // Everything sent since the disconnection comes back once, in order.
  const last = sent[sent.length - 1];
  await pump(id, `the echo of ${last}`, () => mine().some((e) => e.text === last));
  const got = mine().map((e) => e.text);
  if (got.length !== sent.length || got.some((t, i) => t !== sent[i])) {
    const lost = sent.filter((t) => !got.includes(t));
    const dupes = got.filter((t, i) => got.indexOf(t) !== i);
    throw new Error(
      `Run ${run}: sent ${sent.length} messages, got ${got.length} echoes back; lost [${
        lost.slice(0, 10)
      }], ` +
        `duplicated [${dupes.slice(0, 10)}], first echoes [${got.slice(0, 10)}]`,
    );
  }
  return {
    latencyMs: firstEchoAt - server.readyAt,
    noticedMs: noticedAt - killedAt,
    downMs: server.readyAt - killedAt,
    failedAttempts,
    buffered,
    sent: sent.length,
  };
}

const started = Date.now();
try {
  server = await startEchoServerChild(dir.path, "tcp", "0", args.timeoutMs);
  const port = server.port;
  const id = core.addClient({
    keyword: "worker",
    connect: { transport: "tcp", hostname: "127.0.0.1", port },
    reconnect,
  });
  await pump(id, "the first connection", () => core.getClientInfo(id)?.state === "connected");
  console.log(`echo server child on 127.0.0.1:${port}\n`);
  for (let run = 1; run <= args.restarts; run++) {
    const r = await restartOnce(id, run, port);
    runs.push(r);
    console.log(
      `run ${String(run).padStart(3)}: ${String(r.latencyMs).padStart(5)} ms  ` +
        `(server down ${r.downMs} ms; the client saw the loss after ${r.noticedMs} ms, ` +
        `then ${r.failedAttempts} refused attempt(s); ${r.buffered} of ${r.sent} messages sent while away)`,
    );
  }
} catch (err) {
  failures.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
} finally {
  server?.child.kill("SIGKILL");
  await core.close();
  if (server) await withTimeout(server.child.exited, 5_000, "the server to exit").catch(() => {});
  await dir.cleanup();
}

console.log("");
console.log(`runtime:   ${runtimeLabel()}`);
console.log(
  "measured:  from the restarted server's `ready` line (its Date.now() right after listen() bound the port)",
);
console.log(
  "           to the first echo the client core delivered (Date.now() when ioIteration reported it). It",
);
console.log(
  "           covers the rest of the backoff delay, the TCP connect, the handshake (keyword, OK), the flush",
);
console.log(
  "           of the buffered messages and one echo round trip. Same machine, same clock, 1 ms steps.",
);
console.log(
  "           Most of it is the wait for the client's next attempt: it retries initialDelayMs after the loss",
);
console.log(
  "           and doubles the delay after each refused attempt, so it depends on how long the server takes",
);
console.log("           to start (the `server down` figure).");
if (runs.length) {
  const sorted = runs.map((r) => r.latencyMs).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  console.log(
    `latency:   median ${median} ms, worst ${sorted[sorted.length - 1]} ms, best ${
      sorted[0]
    } ms over ${runs.length} restarts`,
  );
  console.log(`runs (ms): ${runs.map((r) => r.latencyMs).join(", ")}`);
  console.log(
    `messages:  ${runs.reduce((n, r) => n + r.sent, 0)} sent across the restarts, each echoed once, in order`,
  );
}
console.log(`duration:  ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (runs.length < args.restarts && failures.length === 0) failures.push(`Only ${runs.length} runs completed`);
for (const f of failures) console.log(`FAILED: ${f}`);
console.log(failures.length ? "\nreconnect latency: FAILED" : "\nreconnect latency: OK");
process.exit(failures.length ? 1 : 0);

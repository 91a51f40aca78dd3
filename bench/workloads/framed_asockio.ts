/**
 * Framed-message workloads on asockio, both ends (B2 round trips, B3 one-way throughput and bulk,
 * B4 connection scale). Run by `run.ts` on the runtime under test:
 *
 * - `server --mode echo|sink|scale --api io|inline|frames|forward [--expect N] [--max-message B] [--clients N]`
 * - `client --mode echo|sink --port P --count N [--size B] [--warmup N] [--window N] [--batch N] [--api io|frames] [--forward]`
 *
 * `--api frames` reads with `takeFrames` and answers with `sendFrames` (the batch API); the client
 * then sends each answer batch on as its next requests. `--api forward` (server) and `--forward`
 * (client): the client sends on one connection and reads on a second one, and the server forwards
 * each batch from the first client to the second.
 *
 * @module
 */
import process from "node:process";
import { InlineProcessor, IoCore, type IoCoreLimits } from "../../mod.ts";
import { numArg, parseArgs, peakRss, report, serveControl, xBytes } from "../_child.ts";

const args = parseArgs();
const role = process.argv[2];
const mode = args.get("mode") ?? "echo";
const api = args.get("api") ?? "io";
const KEYWORD = "bench client";
/** The second connection of `--forward`: the server forwards to it what arrives on the first. */
const KEYWORD_OUT = "bench client out";
const done = new TextEncoder().encode("done");

function limitsFor(maxMessage: number): IoCoreLimits {
  if (maxMessage <= 64 * 1024 * 1024) return {};
  // One message larger than the default caps: every cap must hold it whole (plus its copy on send).
  const cap = 2 * maxMessage + 64 * 1024 * 1024;
  return { maxMessageBytes: maxMessage, inputBytes: cap, outputBytes: cap };
}

async function server(): Promise<void> {
  const expect = numArg(args, "expect", 0);
  const clients = numArg(args, "clients", 1);
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    logger: null,
    limits: { ...limitsFor(numArg(args, "max-message", 0)), handshakeTimeoutMs: 120_000 },
  });
  const [addr] = await core.listen();
  let received = 0;
  let receivedBytes = 0;
  class Echo extends InlineProcessor {
    override onDataReceived(data: Uint8Array): void {
      this.outputMessages.push(data);
    }
  }
  class Sink extends InlineProcessor {
    override onDataReceived(data: Uint8Array): void {
      received++;
      receivedBytes += data.length;
      if (received === expect) this.outputMessages.push(done);
    }
  }
  if (mode === "scale") {
    for (let i = 0; i < clients; i++) core.addClient({ keyword: `c${i}` });
  } else {
    const processor = api === "inline" ? (mode === "echo" ? Echo : Sink) : undefined;
    core.addClient({ keyword: KEYWORD, processor });
  }
  const forwardTo = api === "forward" ? core.addClient({ keyword: KEYWORD_OUT }) : undefined;
  const batches = api === "frames" || api === "forward";
  let connected = 0;
  let stopping = false;
  const count = (
    r: { newlyConnectedExpectedClients: ReadonlySet<number> } & {
      clientsWithDisconnectedConnection: ReadonlySet<number>;
    },
  ) => connected += r.newlyConnectedExpectedClients.size - r.clientsWithDisconnectedConnection.size;
  // With processors, nothing waits in ioIteration (a waiting call is woken by every drain); a slow
  // poll keeps the event sets drained instead.
  const poll = api === "inline" ? setInterval(() => core.ioIteration(0).then(count), 1000) : undefined;
  const loop = (async () => {
    while (!stopping && api !== "inline") {
      const r = await core.ioIteration(1000);
      count(r);
      for (const id of r.clientsHaveDataToRead) {
        if (batches && mode === "echo") {
          const batch = core.takeFrames(id);
          if (batch) core.sendFrames(forwardTo ?? id, batch);
          continue;
        }
        const messages = core.getMessagesFromClient(id);
        if (mode === "echo") {
          core.sendMessagesToClient(id, messages);
          continue;
        }
        for (let i = 0; i < messages.length; i++) receivedBytes += messages[i]!.length;
        const before = received;
        received += messages.length;
        if (before < expect && received >= expect) core.sendMessageToClient(id, done);
      }
    }
  })();
  serveControl(
    () => ({ connected, connections: core.stats().connections, received, receivedBytes }),
    async () => {
      stopping = true;
      clearInterval(poll);
      await core.close();
      await loop;
    },
  );
  report("READY", { port: addr!.transport === "tcp" ? addr!.port : 0, pid: process.pid });
}

async function client(): Promise<void> {
  const port = numArg(args, "port", 0);
  const count = numArg(args, "count", 100_000);
  const size = numArg(args, "size", 30);
  const batches = args.get("api") === "frames";
  const core = new IoCore({ logger: null, limits: limitsFor(size) });
  const connect = { transport: "tcp", hostname: "127.0.0.1", port } as const;
  const id = core.addClient({ keyword: KEYWORD, connect });
  // Answers come back on `outId`: the same connection, or with --forward the second one.
  const outId = args.has("forward") ? core.addClient({ keyword: KEYWORD_OUT, connect }) : id;
  const waiting = new Set([id, outId]);
  while (waiting.size) {
    const r = await core.ioIteration(10_000);
    for (const connected of r.newlyConnectedExpectedClients) waiting.delete(connected);
    for (const lost of r.clientsWithDisconnectedConnection) {
      throw new Error(`Cannot connect the bench client: ${core.getClientInfo(lost)?.lastError?.message}`);
    }
  }
  const check = (r: { clientsWithDisconnectedConnection: ReadonlySet<number> }) => {
    if (r.clientsWithDisconnectedConnection.size) throw new Error("Lost the connection to the server");
  };
  const payload = xBytes(size);
  let seconds: number;
  if (mode === "echo") {
    const window = numArg(args, "window", 16_384);
    const batchSize = numArg(args, "batch", 1024);
    const batch = Array.from({ length: batchSize }, () => payload);
    const phase = async (total: number) => {
      let sent = 0;
      let answered = 0;
      while (answered < total) {
        while (sent < total && sent - answered < window) {
          const n = Math.min(batchSize, total - sent);
          core.sendMessagesToClient(id, n === batchSize ? batch : batch.slice(0, n));
          sent += n;
        }
        const r = await core.ioIteration(10_000);
        check(r);
        if (!batches) {
          answered += core.getMessagesFromClient(outId).length;
          continue;
        }
        // The batch API at both ends: each answer batch goes out again, as it came, as new requests.
        const answer = core.takeFrames(outId);
        if (answer === undefined) continue;
        answered += answer.count;
        if (sent + answer.count <= total) {
          core.sendFrames(id, answer);
          sent += answer.count;
        }
      }
    };
    await phase(numArg(args, "warmup", Math.min(count, 50_000)));
    const started = performance.now();
    await phase(count);
    seconds = (performance.now() - started) / 1000;
  } else {
    // One-way: keep a few MiB queued, refill when the core reports the queue written.
    const perBatch = Math.max(1, Math.floor((1024 * 1024) / Math.max(1, size)));
    const batch = Array.from({ length: perBatch }, () => payload);
    const highWater = Math.max(4 * 1024 * 1024, size + 8);
    const started = performance.now();
    let sent = 0;
    while (sent < count) {
      while (sent < count && core.stats().outputBytes < highWater) {
        const n = Math.min(perBatch, count - sent);
        if (n === 1) core.sendMessageToClient(id, payload);
        else core.sendMessagesToClient(id, n === perBatch ? batch : batch.slice(0, n));
        sent += n;
      }
      check(await core.ioIteration(10_000));
    }
    while (core.getMessageFromClient(id) === undefined) check(await core.ioIteration(10_000));
    seconds = (performance.now() - started) / 1000;
  }
  const rss = peakRss();
  await core.close();
  report("RESULT", { seconds, count, size, rss });
  process.exit(0);
}

if (role === "server") await server();
else if (role === "client") await client();
else throw new TypeError(`Cannot run framed_asockio: role must be server or client, got ${role}`);

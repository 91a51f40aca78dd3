/**
 * One message of any length from one process to another (B3 and `scripts/stream.ts`), both ends:
 *
 * - `receiver --api asockio|bare --bytes N`: listens on 127.0.0.1. `asockio` reads the message as a
 *   `MessageStream` (`streamThresholdBytes` 1 MiB, with a BYOB reader) and echoes the small messages of a second client
 *   (`probe`); `bare` counts the bytes on the runtime's own socket API, and echoes what arrives on a second
 *   listener (`probePort` in `READY`). Both checksum the payload, answer with one small frame at its end,
 *   and print `RESULT {checksum, rssBaseline, peakRss, cpuSeconds}`.
 * - `sender --api asockio|bare --port P --bytes N`: writes the frame's header and `N` payload bytes of the
 *   pattern ({@linkcode patternChunks}) as fast as the connection drains, and prints `RESULT {seconds,
 *   rssBaseline, peakRss, cpuSeconds}` (CPU time from the transfer's start) once the receiver answered. `asockio` sends with `sendMessageStream`. Both send,
 *   on a second connection, a 16-byte probe every 5 ms (`probeIdle`, `probeBusy`: round trips in ms, for
 *   0.5 s before and during the transfer; `bare` to `--probe-port`, with the runtime's own socket API), so
 *   the probe's latency during an asockio transfer compares with the runtime's own under the same load.
 *
 * @module
 */
import process from "node:process";
import { type ClientId, IoCore } from "../../mod.ts";
import { numArg, parseArgs, peakRss, report, serveControl } from "../_child.ts";
import { nativeConnect, nativeListen } from "../_native.ts";
import { Checksum, CHUNK_BYTES, patternChunks } from "../_stream_bytes.ts";

const PROBE_EVERY_MS = 5;
const ACK = new Uint8Array([0x4f, 0x4b]); // "OK"

function header(byteLength: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(byteLength), true);
  return out;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const rssNow = (): number => process.memoryUsage().rss;
/** CPU seconds (user and system) this process spent since `start` (a `process.cpuUsage()`). */
const cpuSince = (start: ReturnType<typeof process.cpuUsage>): number => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
};

/** A sender's `RESULT`: the transfer's time, memory and CPU, and the probe's p50/p99 idle and during it. */
function reportSent(
  seconds: number,
  rssBaseline: number,
  cpuStart: ReturnType<typeof process.cpuUsage>,
  idle: number[],
  busy: number[],
): void {
  report("RESULT", {
    seconds,
    rssBaseline,
    peakRss: peakRss(),
    cpuSeconds: cpuSince(cpuStart),
    probeIdle: [percentile(idle, 0.5), percentile(idle, 0.99), idle.length],
    probeBusy: [percentile(busy, 0.5), percentile(busy, 0.99), busy.length],
  });
}

async function receiveAsockio(byteLength: number): Promise<void> {
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    logger: null,
    streamThresholdBytes: 1024 * 1024,
    limits: { handshakeTimeoutMs: 600_000 },
  });
  const [addr] = await core.listen();
  const streamId = core.addClient({ keyword: "stream" });
  const probeId = core.addClient({ keyword: "probe" });
  const rssBaseline = rssNow();
  const cpuStart = process.cpuUsage();
  let reading: Promise<void> | undefined;
  let result: Record<string, unknown> | undefined;
  serveControl(() => ({}), () => core.close());
  report("READY", { port: addr!.transport === "tcp" ? addr!.port : 0, pid: process.pid });
  for (;;) {
    const r = await core.ioIteration(1000);
    for (const message of core.getMessagesFromClient(probeId)) core.sendMessageToClient(probeId, message);
    if (reading === undefined && r.clientsHaveMessageStream.has(streamId)) {
      const stream = core.takeMessageStream(streamId)!;
      const sum = new Checksum();
      reading = (async () => {
        // A BYOB reader fills one buffer again and again: no allocation per chunk.
        const reader = stream.readable.getReader({ mode: "byob" });
        let buffer = new Uint8Array(CHUNK_BYTES);
        for (;;) {
          const { value, done } = await reader.read(buffer);
          if (done) break;
          sum.update(value);
          buffer = new Uint8Array(value.buffer);
        }
        result = { checksum: sum.digest(), rssBaseline, peakRss: peakRss(), cpuSeconds: cpuSince(cpuStart) };
        core.sendMessageToClient(streamId, ACK);
      })();
      reading.catch((err) => {
        console.error(err);
        process.exit(1);
      });
    }
    if (result !== undefined) {
      report("RESULT", result);
      result = undefined;
    }
    if (r.clientsWithDisconnectedConnection.has(streamId) && reading === undefined) {
      throw new Error(`The sender went away before its message (${byteLength} bytes)`);
    }
  }
}

async function receiveBare(byteLength: number): Promise<void> {
  const rssBaseline = rssNow();
  const cpuStart = process.cpuUsage();
  const probes = await nativeListen(0, (socket) => ({ onData: (chunk) => void socket.write(chunk.slice()) }));
  const sum = new Checksum();
  let got = 0;
  const server = await nativeListen(0, (socket) => ({
    onData(chunk) {
      const before = got;
      got += chunk.length;
      const skip = Math.max(0, 8 - before); // the frame's header
      if (skip < chunk.length) sum.update(chunk.subarray(skip));
      if (got === byteLength + 8) {
        report("RESULT", {
          checksum: sum.digest(),
          rssBaseline,
          peakRss: peakRss(),
          cpuSeconds: cpuSince(cpuStart),
        });
        socket.write(ACK);
      }
    },
  }));
  serveControl(() => ({}), () => {
    server.close();
    probes.close();
  });
  report("READY", { port: server.port, probePort: probes.port, pid: process.pid });
}

async function sendAsockio(port: number, byteLength: number): Promise<void> {
  const core = new IoCore({ logger: null, limits: { handshakeTimeoutMs: 600_000 } });
  const connect = { transport: "tcp", hostname: "127.0.0.1", port } as const;
  const streamId = core.addClient({ keyword: "stream", connect });
  const probeId = core.addClient({ keyword: "probe", connect });
  const waiting = new Set<ClientId>([streamId, probeId]);
  while (waiting.size > 0) {
    const r = await core.ioIteration(10_000);
    for (const id of r.newlyConnectedExpectedClients) waiting.delete(id);
    if (r.clientsWithDisconnectedConnection.size > 0) throw new Error("Cannot connect to the receiver");
  }
  const rssBaseline = rssNow();
  const probe = new Uint8Array(16);
  let probeSentAt: number | undefined;
  let lastProbe = 0;
  let rtts: number[] = [];
  /** Runs the loop (probes, answers) until `done()`. */
  const loop = async (done: () => boolean) => {
    while (!done()) {
      const r = await core.ioIteration(PROBE_EVERY_MS);
      if (r.clientsWithDisconnectedConnection.size > 0) throw new Error("Lost a connection to the receiver");
      const now = performance.now();
      if (probeSentAt !== undefined && core.getMessagesFromClient(probeId).length > 0) {
        rtts.push(now - probeSentAt);
        probeSentAt = undefined;
      }
      if (probeSentAt === undefined && now - lastProbe >= PROBE_EVERY_MS) {
        core.sendMessageToClient(probeId, probe);
        probeSentAt = lastProbe = now;
      }
    }
  };
  const idleUntil = performance.now() + 500;
  await loop(() => performance.now() >= idleUntil);
  const idle = rtts;
  rtts = [];
  const started = performance.now();
  const cpuBusy = process.cpuUsage();
  let answered = false;
  let failed: unknown;
  core.sendMessageStream(
    streamId,
    (async function* () {
      yield* patternChunks(byteLength);
    })(),
    byteLength,
  ).catch((err) => failed = err);
  await loop(() => {
    if (failed !== undefined) throw failed;
    answered ||= core.getMessageFromClient(streamId) !== undefined;
    return answered;
  });
  const seconds = (performance.now() - started) / 1000;
  reportSent(seconds, rssBaseline, cpuBusy, idle, rtts);
  await core.close();
  process.exit(0);
}

/** A bare probe: 16 bytes to `port`'s echo every 5 ms while none is out; `take()` returns the round trips. */
async function bareProbe(port: number): Promise<{ take(): number[]; stop(): void }> {
  let sentAt: number | undefined;
  let echoed = 0;
  let rtts: number[] = [];
  const socket = await nativeConnect(port, () => ({
    onData(chunk) {
      echoed += chunk.length;
      if (echoed < 16 || sentAt === undefined) return;
      echoed -= 16;
      rtts.push(performance.now() - sentAt);
      sentAt = undefined;
    },
  }));
  const probe = new Uint8Array(16);
  const timer = setInterval(() => {
    if (sentAt !== undefined) return;
    sentAt = performance.now();
    socket.write(probe);
  }, PROBE_EVERY_MS);
  return {
    take() {
      const out = rtts;
      rtts = [];
      return out;
    },
    stop() {
      clearInterval(timer);
      socket.close();
    },
  };
}

async function sendBare(port: number, probePort: number, byteLength: number): Promise<void> {
  let answered!: () => void;
  const ack = new Promise<void>((resolve) => answered = resolve);
  const socket = await nativeConnect(port, () => ({ onData: () => answered() }));
  const probe = await bareProbe(probePort);
  const rssBaseline = rssNow();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const idle = probe.take();
  const started = performance.now();
  const cpuBusy = process.cpuUsage();
  socket.write(header(byteLength));
  for (const chunk of patternChunks(byteLength)) {
    if (!socket.write(chunk)) await socket.drained();
  }
  await ack;
  const seconds = (performance.now() - started) / 1000;
  const busy = probe.take();
  probe.stop();
  reportSent(seconds, rssBaseline, cpuBusy, idle, busy);
  socket.close();
  process.exit(0);
}

const args = parseArgs();
const role = process.argv[2];
const api = args.get("api") ?? "asockio";
const bytes = numArg(args, "bytes", 64 * 1024 * 1024);
if (role === "receiver") await (api === "bare" ? receiveBare(bytes) : receiveAsockio(bytes));
else if (role === "sender") {
  const port = numArg(args, "port", 0);
  await (api === "bare" ? sendBare(port, numArg(args, "probe-port", 0), bytes) : sendAsockio(port, bytes));
} else throw new TypeError(`Cannot run stream: role must be receiver or sender, got ${role}`);

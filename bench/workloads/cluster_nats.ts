/**
 * B7's two cluster nodes over one nats-server, on the runtime under test:
 *
 * - `holder --nats URL`: node `a`, a core whose device (a bare socket in this process that reads
 *   and drops what it gets) is connected as keyword `dev`; beside it, on the same NATS connection,
 *   the bare nats.js ends: a subscriber counting `b7.raw` (it answers `b7.raw.end` with its count)
 *   and a responder echoing `b7.rr`. Prints `READY {}` once all of it is in place.
 * - `sender --nats URL --mode remote|local|pubsub|request --count N`: `remote` sends N 32-byte
 *   messages from node `c` to `dev` on node `a` (`sendMessageToKeyword`, up to 16k unacknowledged),
 *   then times 2000 single awaited sends; `local` does the same to a device of its own core (the
 *   same-node case); `pubsub` publishes N messages to the holder's subscriber; `request` makes N/10
 *   request/reply round trips with 64 in flight. Prints `RESULT {perSecond, p50Ms?, p99Ms?, peakRss}`.
 *
 * Claims are off (`claims: false`): B7 measures sends, not admissions.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { connect } from "nats";
import { IoCore } from "../../mod.ts";
import { natsCluster } from "../../cluster/nats.ts";
import { frame, numArg, parseArgs, peakRss, report, serveControl, xBytes } from "../_child.ts";

const args = parseArgs();
const role = process.argv[2];
const url = args.get("nats")!;
const SIZE = 32;
/** Sends issued per tick, and how many such chunks may be unacknowledged at once. */
const CHUNK = 1024;
const CHUNKS_IN_FLIGHT = 16;
const LATENCY_SENDS = 2000;
const REQUESTS_IN_FLIGHT = 64;

/** A device: connects as `keyword`, waits for OK, then reads and drops everything. */
function device(port: number, keyword: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(
      port,
      "127.0.0.1",
      () => socket.write(frame(new TextEncoder().encode(keyword))),
    );
    socket.once("data", () => resolve(socket)); // the OK frame (what follows is dropped too)
    socket.on("data", () => {});
    socket.once("error", reject);
  });
}

/** A core that is a node of cluster `b7`, listening on loopback, its events drained. */
async function clusterNode(nc: Awaited<ReturnType<typeof connect>>, node: string) {
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    acceptUnexpectedKeywords: "adopt",
    cluster: natsCluster(nc, { name: "b7", node, claims: false }),
    logger: null,
  });
  const [addr] = await core.listen();
  void (async () => {
    for await (const _events of core) { /* nothing to read: the devices only receive */ }
  })();
  return { core, port: (addr as { port: number }).port };
}

/** Sends `count` messages to `keyword`, at most CHUNK × CHUNKS_IN_FLIGHT unacknowledged; messages/s. */
async function sendRate(core: IoCore, keyword: string, count: number): Promise<number> {
  const message = xBytes(SIZE);
  const inFlight: Promise<unknown>[] = [];
  const started = performance.now();
  for (let sent = 0; sent < count;) {
    const sends: Promise<void>[] = [];
    for (let i = 0; i < CHUNK && sent < count; i++, sent++) {
      sends.push(core.sendMessageToKeyword(keyword, message));
    }
    inFlight.push(Promise.all(sends));
    if (inFlight.length >= CHUNKS_IN_FLIGHT) await inFlight.shift();
    else await new Promise((resolve) => setTimeout(resolve, 0)); // the next chunk in the next tick
  }
  await Promise.all(inFlight);
  return count / ((performance.now() - started) / 1000);
}

/** p50 and p99 of single awaited sends, in ms. */
async function latency(core: IoCore, keyword: string): Promise<{ p50Ms: number; p99Ms: number }> {
  const message = xBytes(SIZE);
  const times: number[] = [];
  for (let i = 0; i < LATENCY_SENDS; i++) {
    const t = performance.now();
    await core.sendMessageToKeyword(keyword, message);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { p50Ms: times[Math.floor(times.length * 0.5)]!, p99Ms: times[Math.floor(times.length * 0.99)]! };
}

if (role === "holder") {
  const nc = await connect({ servers: url });
  const { core, port } = await clusterNode(nc, "a");
  const socket = await device(port, "dev");
  let raw = 0;
  nc.subscribe("b7.raw", { callback: () => void raw++ });
  nc.subscribe("b7.raw.end", {
    callback: (_err, msg) => {
      msg.respond(new TextEncoder().encode(String(raw)));
      raw = 0;
    },
  });
  nc.subscribe("b7.rr", { callback: (_err, msg) => void msg.respond(msg.data) });
  await nc.flush();
  serveControl(() => ({}), async () => {
    socket.destroy();
    await core.close();
    await nc.close();
  });
  report("READY", { port });
} else if (role === "sender") {
  const mode = args.get("mode");
  const count = numArg(args, "count", 100_000);
  const nc = await connect({ servers: url });
  let result: Record<string, number>;
  if (mode === "remote" || mode === "local") {
    const { core, port } = await clusterNode(nc, "c");
    let keyword = "dev";
    let socket: net.Socket | undefined;
    if (mode === "local") {
      keyword = "dev-local";
      socket = await device(port, keyword);
    }
    for (;;) {
      const at = await core.locateKeyword(keyword);
      if (at?.node === (mode === "local" ? "c" : "a")) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await sendRate(core, keyword, Math.min(count, 20_000)); // warm-up
    const perSecond = await sendRate(core, keyword, count);
    result = { perSecond, ...(await latency(core, keyword)) };
    socket?.destroy();
    await core.close();
  } else if (mode === "pubsub") {
    const message = xBytes(SIZE);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      nc.publish("b7.raw", message);
      if (i % 10_000 === 9_999) await nc.flush(); // bounded client buffer
    }
    const got = Number(
      new TextDecoder().decode((await nc.request("b7.raw.end", undefined, { timeout: 30_000 })).data),
    );
    const seconds = (performance.now() - started) / 1000;
    if (got !== count) throw new Error(`Cannot measure publish/subscribe: ${got} of ${count} arrived`);
    result = { perSecond: count / seconds };
  } else if (mode === "request") {
    const message = xBytes(SIZE);
    const total = Math.max(REQUESTS_IN_FLIGHT, Math.floor(count / 10));
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: REQUESTS_IN_FLIGHT }, async () => {
      while (next++ < total) await nc.request("b7.rr", message, { timeout: 10_000 });
    }));
    result = { perSecond: total / ((performance.now() - started) / 1000) };
  } else throw new TypeError(`Unknown --mode ${mode}`);
  report("RESULT", { ...result, peakRss: peakRss() });
  await nc.close();
  process.exit(0);
} else throw new TypeError("Usage: cluster_nats.ts holder|sender --nats URL …");

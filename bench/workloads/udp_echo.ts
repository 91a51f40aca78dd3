/**
 * B6's datagram echo, both ends, on the runtime under test:
 *
 * - `server --api io|inline|native`: `io` and `inline` are an asockio core with one UDP listener
 *   echoing every datagram of its unknown clients (through `ioIteration`, or an `InlineProcessor`);
 *   `native` is a bare echo on the runtime's own UDP API (`Deno.listenDatagram`, `Bun.udpSocket`,
 *   `node:dgram`), with nothing asockio-specific.
 * - `client --port P --count N [--size B] [--window W] [--warmup N]`: keeps `W` numbered datagrams in
 *   flight and sends the next one for each echo; those never echoed are lost. It runs on the same
 *   native API as the bare server, so both contenders face one client.
 *
 * Deno needs `--unstable-net` for both ends.
 *
 * @module
 */
import { createSocket } from "node:dgram";
import process from "node:process";
import { InlineProcessor, IoCore } from "../../mod.ts";
import { runtimeName } from "../_native.ts";
import { numArg, parseArgs, report, serveControl, xBytes } from "../_child.ts";

const args = parseArgs();
const role = process.argv[2];
const HOST = "127.0.0.1";
/** After this long without an echo, the client refills its window: what was in flight may be lost. */
const LOSS_AFTER_MS = 200;
/** Once everything is sent, echoes still missing get this long before they count as lost. */
const STRAGGLERS_MS = 500;

/** One bound UDP socket of the runtime's own API. */
interface NativeUdp {
  readonly port: number;
  send(data: Uint8Array, port: number, host: string): void;
  close(): void;
}

type OnDatagram = (data: Uint8Array, port: number, host: string) => void;

interface DenoUdpLike {
  listenDatagram(options: { transport: "udp"; hostname: string; port: number }): {
    addr: { port: number };
    receive(p?: Uint8Array): Promise<[Uint8Array, { hostname: string; port: number }]>;
    send(p: Uint8Array, addr: { transport: "udp"; hostname: string; port: number }): Promise<number>;
    close(): void;
  };
}
interface BunUdpLike {
  udpSocket(options: {
    hostname: string;
    port: number;
    binaryType: "uint8array";
    socket: { data(socket: unknown, data: Uint8Array, port: number, address: string): void };
  }): Promise<
    { port: number; send(data: Uint8Array, port: number, address: string): boolean; close(): void }
  >;
}

/** Binds on the runtime's own UDP API; `onDatagram` gets each datagram (valid during the call only on Deno). */
async function bindNative(onDatagram: OnDatagram): Promise<NativeUdp> {
  const runtime = runtimeName();
  if (runtime === "deno") {
    const deno = (globalThis as unknown as { Deno: DenoUdpLike }).Deno;
    const conn = deno.listenDatagram({ transport: "udp", hostname: HOST, port: 0 });
    let open = true;
    (async () => {
      const buffer = new Uint8Array(65_536);
      while (open) {
        const [data, from] = await conn.receive(buffer);
        onDatagram(data, from.port, from.hostname);
      }
    })().catch(() => {});
    return {
      port: conn.addr.port,
      // Not awaited: a bare echo sends and moves on.
      send: (data, port, hostname) =>
        void conn.send(data, { transport: "udp", hostname, port }).catch(() => {}),
      close: () => {
        open = false;
        conn.close();
      },
    };
  }
  if (runtime === "bun") {
    const bun = (globalThis as unknown as { Bun: BunUdpLike }).Bun;
    const socket = await bun.udpSocket({
      hostname: HOST,
      port: 0,
      binaryType: "uint8array",
      socket: { data: (_s, data, port, address) => onDatagram(data, port, address) },
    });
    return { port: socket.port, send: (d, p, h) => void socket.send(d, p, h), close: () => socket.close() };
  }
  const socket = createSocket("udp4");
  socket.on("message", (data: Uint8Array, from: { port: number; address: string }) => {
    onDatagram(data, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, HOST, () => resolve()));
  return {
    port: socket.address().port,
    send: (d, p, h) => socket.send(d, p, h),
    close: () => socket.close(),
  };
}

async function server(): Promise<void> {
  const api = args.get("api") ?? "io";
  let echoed = 0;
  if (api === "native") {
    const bound: { socket?: NativeUdp } = {};
    const socket = bound.socket = await bindNative((data, port, host) => {
      echoed++;
      bound.socket!.send(data.slice(), port, host);
    });
    serveControl(() => ({ echoed }), () => socket.close());
    report("READY", { port: socket.port, pid: process.pid });
    return;
  }
  class Echo extends InlineProcessor {
    override onDataReceived(data: Uint8Array): void {
      echoed++;
      this.outputMessages.push(data);
    }
  }
  const core = new IoCore({
    listeners: [{ transport: "udp", hostname: HOST, port: 0 }],
    unknownClients: "allow",
    unknownClientProcessor: api === "inline" ? Echo : undefined,
    logger: null,
  });
  const [addr] = await core.listen();
  let stopping = false;
  // With a processor nothing needs ioIteration; a slow poll keeps the event sets drained.
  const poll = api === "inline" ? setInterval(() => core.ioIteration(0), 1000) : undefined;
  const loop = (async () => {
    while (!stopping && api === "io") {
      const r = await core.ioIteration(1000);
      for (const id of r.clientsHaveDataToRead) {
        const messages = core.getMessagesFromClient(id);
        echoed += messages.length;
        core.sendMessagesToClient(id, messages);
      }
    }
  })();
  serveControl(() => ({ echoed, dropped: core.stats().droppedUdpDatagrams }), async () => {
    stopping = true;
    clearInterval(poll);
    await core.close();
    await loop;
  });
  report("READY", { port: addr!.transport === "udp" ? addr!.port : 0, pid: process.pid });
}

/** How the client reaches its socket: send one datagram, and hear each echo's bytes. */
interface ClientSocket {
  send(data: Uint8Array): void;
  onEcho(handler: (data: Uint8Array) => void): void;
}

/**
 * Sends `total` numbered datagrams of `size` bytes with `window` in flight, one more for each echo.
 * When no echo has come for 200 ms, the window is refilled (what was in flight may be lost). Once all
 * are sent and none is in flight, stragglers get 500 ms more. Resolves with the distinct datagrams
 * echoed, the rest (lost), and the seconds until the last echo.
 */
function phase(
  socket: ClientSocket,
  total: number,
  window: number,
  size: number,
): Promise<{ received: number; lost: number; seconds: number }> {
  return new Promise((resolve) => {
    const echoed = new Uint8Array(total);
    const started = performance.now();
    let sent = 0;
    let received = 0;
    let inFlight = 0;
    let lastEcho = started;
    let straggling = false;
    const finish = () => {
      clearInterval(watchdog);
      resolve({ received, lost: total - received, seconds: (lastEcho - started) / 1000 });
    };
    const pump = () => {
      while (inFlight < window && sent < total) {
        const datagram = xBytes(size);
        new DataView(datagram.buffer).setUint32(0, sent, true);
        sent++;
        inFlight++;
        socket.send(datagram);
      }
    };
    socket.onEcho((data) => {
      const seq = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
      if (seq >= total || echoed[seq]) return;
      echoed[seq] = 1;
      received++;
      if (inFlight > 0) inFlight--;
      lastEcho = performance.now();
      if (received === total) finish();
      else pump();
    });
    const watchdog = setInterval(() => {
      const quiet = performance.now() - lastEcho;
      if (straggling) {
        if (quiet >= STRAGGLERS_MS) finish();
        return;
      }
      if (inFlight === 0 || quiet < LOSS_AFTER_MS) return;
      inFlight = 0;
      if (sent === total) straggling = true;
      else pump();
    }, 50);
    pump();
  });
}

async function client(): Promise<void> {
  const port = numArg(args, "port", 0);
  const count = numArg(args, "count", 100_000);
  const window = numArg(args, "window", 64);
  const size = Math.max(4, numArg(args, "size", 32));
  let onEcho: (data: Uint8Array) => void = () => {};
  const socket = await bindNative((data) => onEcho(data));
  const target: ClientSocket = {
    send: (data) => socket.send(data, port, HOST),
    onEcho: (handler) => onEcho = handler,
  };
  await phase(target, numArg(args, "warmup", Math.min(count, 20_000)), window, size);
  const { received, lost, seconds } = await phase(target, count, window, size);
  socket.close();
  report("RESULT", { seconds, count, received, lost });
  process.exit(0);
}

if (role === "server") await server();
else if (role === "client") await client();
else throw new TypeError(`Cannot run udp_echo: role must be server or client, got ${role}`);

/**
 * B6's datagram echo, both ends, on the runtime under test:
 *
 * - `server --api io|inline|native`: `io` and `inline` are an asockio core with one UDP listener
 *   echoing every datagram of its unknown clients (through `ioIteration`, or an `InlineProcessor`);
 *   `native` is a bare echo on the runtime's own UDP API (`Deno.listenDatagram`, `Bun.udpSocket`,
 *   `node:dgram`), with nothing asockio-specific.
 * - `client --port P --count N [--size B] [--window W] [--warmup N]`: keeps `W` datagrams in flight,
 *   sends the next one for each echo, and counts as lost those still in flight after 200 ms without
 *   an echo. It runs on the same native API as the bare server, so both contenders face one client.
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
/** In-flight datagrams with no echo for this long are counted as lost. */
const LOSS_AFTER_MS = 200;

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

/** Sends `total` datagrams with `window` in flight; resolves with the echoes and the losses. */
function phase(
  socket: { send(data: Uint8Array): void; onEcho(handler: () => void): void },
  total: number,
  window: number,
  payload: Uint8Array,
): Promise<{ received: number; lost: number }> {
  return new Promise((resolve) => {
    let sent = 0;
    let received = 0;
    let lost = 0;
    let inFlight = 0;
    let lastEcho = performance.now();
    const finishIfDone = () => {
      if (received + lost < total) return false;
      clearInterval(watchdog);
      resolve({ received, lost });
      return true;
    };
    const pump = () => {
      while (inFlight < window && sent < total) {
        sent++;
        inFlight++;
        socket.send(payload);
      }
    };
    socket.onEcho(() => {
      received++;
      if (inFlight > 0) inFlight--;
      else lost--; // a late echo of a datagram already counted as lost
      lastEcho = performance.now();
      if (!finishIfDone()) pump();
    });
    const watchdog = setInterval(() => {
      if (inFlight === 0 || performance.now() - lastEcho < LOSS_AFTER_MS) return;
      lost += inFlight;
      inFlight = 0;
      lastEcho = performance.now();
      if (!finishIfDone()) pump();
    }, 50);
    pump();
  });
}

async function client(): Promise<void> {
  const port = numArg(args, "port", 0);
  const count = numArg(args, "count", 100_000);
  const window = numArg(args, "window", 64);
  const payload = xBytes(numArg(args, "size", 32));
  let onEcho: () => void = () => {};
  const socket = await bindNative(() => onEcho());
  const target = {
    send: (data: Uint8Array) => socket.send(data, port, HOST),
    onEcho: (h: () => void) => onEcho = h,
  };
  await phase(target, numArg(args, "warmup", Math.min(count, 20_000)), window, payload);
  const started = performance.now();
  const { received, lost } = await phase(target, count, window, payload);
  const seconds = (performance.now() - started) / 1000;
  socket.close();
  report("RESULT", { seconds, count, received, lost });
  process.exit(0);
}

if (role === "server") await server();
else if (role === "client") await client();
else throw new TypeError(`Cannot run udp_echo: role must be server or client, got ${role}`);

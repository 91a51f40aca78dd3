/**
 * B8's WebSocket echo, both ends, on the runtime under test:
 *
 * - `server --api asockio|frames|native`: `asockio` is a core with a `websocket` listener echoing every
 *   message of its named client through `ioIteration` (`getMessagesFromClient`, a view per message),
 *   `frames` the same with the batch API (`takeFrames`/`sendFrames`); `native` is the runtime's own WebSocket server (`Deno.serve`
 *   with `Deno.upgradeWebSocket`, `Bun.serve` with `websocket`, and `ws` on Node, which has none).
 * - `client --port P --count N [--size B] [--window W] [--warmup N]`: one client written here on the
 *   runtime's native socket API (`bench/_native.ts`): it upgrades, sends the keyword (the native servers
 *   echo it, asockio answers `OK`), then keeps `W` masked binary messages of `B` bytes in flight, sending
 *   more as echoes come back. Both contenders face the same client.
 *
 * @module
 */
import process from "node:process";
import { IoCore } from "../../mod.ts";
import { bunGlobal, denoGlobal, nativeConnect, runtimeName } from "../_native.ts";
import { numArg, parseArgs, report, serveControl } from "../_child.ts";

const args = parseArgs();
const role = process.argv[2];
const HOST = "127.0.0.1";
const KEYWORD = "bench";

interface DenoServeLike {
  serve(
    options: { hostname: string; port: number; onListen(addr: { port: number }): void },
    handler: (request: Request) => Response,
  ): { shutdown(): Promise<void> };
  upgradeWebSocket(request: Request): { socket: WebSocket; response: Response };
}
interface BunServeLike {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: { upgrade(request: Request): boolean }): Response | undefined;
    websocket: {
      message(ws: { send(data: string | Uint8Array): number }, message: string | Uint8Array): void;
    };
  }): { port: number; stop(): void };
}

async function serveNative(): Promise<{ port: number; close(): Promise<void> }> {
  const runtime = runtimeName();
  if (runtime === "deno") {
    const deno = denoGlobal() as unknown as DenoServeLike;
    let port = 0;
    const listening = new Promise<void>((resolve) => {
      const server = deno.serve({
        hostname: HOST,
        port: 0,
        onListen: (addr) => {
          port = addr.port;
          resolve();
        },
      }, (request) => {
        const { socket, response } = deno.upgradeWebSocket(request);
        socket.binaryType = "arraybuffer";
        socket.onmessage = (event) => socket.send(event.data);
        return response;
      });
      closeDeno = () => server.shutdown();
    });
    let closeDeno = () => Promise.resolve();
    await listening;
    return { port, close: () => closeDeno() };
  }
  if (runtime === "bun") {
    const server = (bunGlobal() as unknown as BunServeLike).serve({
      hostname: HOST,
      port: 0,
      fetch: (request, srv) =>
        srv.upgrade(request) ? undefined : new Response("upgrade only", { status: 426 }),
      websocket: { message: (ws, message) => void ws.send(message) },
    });
    return { port: server.port, close: () => Promise.resolve(server.stop()) };
  }
  const { WebSocketServer } = await import("ws");
  const wss = new WebSocketServer({ host: HOST, port: 0 });
  await new Promise((resolve) => wss.once("listening", resolve));
  wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
  return {
    port: (wss.address() as { port: number }).port,
    close: () => new Promise((resolve) => wss.close(() => resolve())),
  };
}

async function server(): Promise<void> {
  if (args.get("api") === "native") {
    const native = await serveNative();
    serveControl(() => ({}), () => native.close());
    report("READY", { port: native.port, pid: process.pid });
    return;
  }
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: HOST, port: 0, websocket: { path: "/ws", pingIntervalMs: 0 } }],
    logger: null,
  });
  const id = core.addClient({ keyword: KEYWORD });
  const [addr] = await core.listen();
  const frames = args.get("api") === "frames";
  const loop = (async () => {
    for await (const events of core) {
      if (!events.clientsHaveDataToRead.has(id)) continue;
      if (!frames) core.sendMessagesToClient(id, core.getMessagesFromClient(id));
      else {
        // The batch API: the messages as they arrived, no view per message.
        const batch = core.takeFrames(id);
        if (batch !== undefined) core.sendFrames(id, batch);
      }
    }
  })().catch(() => {});
  serveControl(() => ({}), async () => {
    await core.close();
    await loop;
  });
  report("READY", { port: addr!.transport === "tcp" ? addr!.port : 0, pid: process.pid });
}

/** A masked client frame of `payload` (a fixed masking key: the bench measures servers, not the client). */
function maskedFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > 125) throw new RangeError("Cannot frame: the bench client sends at most 125 bytes");
  const mask = [0x12, 0x34, 0x56, 0x78];
  const out = new Uint8Array(6 + payload.length);
  out[0] = 0x82;
  out[1] = 0x80 | payload.length;
  out.set(mask, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

async function client(): Promise<void> {
  const port = numArg(args, "port", 0);
  const count = numArg(args, "count", 1_000_000);
  const window = numArg(args, "window", 1000);
  const size = Math.min(125, numArg(args, "size", 32));
  const frame = maskedFrame(new Uint8Array(size).fill(0x58));
  // One write per refill: `window` frames back to back.
  const burst = new Uint8Array(frame.length * window);
  for (let i = 0; i < window; i++) burst.set(frame, i * frame.length);

  let head = "";
  let upgraded: () => void = () => {};
  let onMessage: () => void = () => {};
  // Server frames here are unfragmented and short (2-byte headers): skip each payload, count each frame.
  let skip = 0;
  let second = false;
  const frames = (chunk: Uint8Array, from: number) => {
    for (let at = from; at < chunk.length;) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - at);
        skip -= n;
        at += n;
        if (skip === 0) onMessage();
      } else if (!second) {
        second = true;
        at++;
      } else {
        second = false;
        const len = chunk[at++]! & 0x7f;
        if (len > 125) {
          throw new Error("Cannot read the echo: the bench expects payloads of at most 125 bytes");
        }
        if (len === 0) onMessage();
        else skip = len;
      }
    }
  };
  const socket = await nativeConnect(port, () => ({
    onData(chunk) {
      if (head !== undefined && !head.endsWith("\r\n\r\n")) {
        // The 101's head, then frames (possibly in the same chunk).
        for (let i = 0; i < chunk.length; i++) {
          head += String.fromCharCode(chunk[i]!);
          if (head.endsWith("\r\n\r\n")) {
            if (!head.startsWith("HTTP/1.1 101")) throw new Error(`Upgrade refused: ${head}`);
            upgraded();
            frames(chunk, i + 1);
            return;
          }
        }
        return;
      }
      frames(chunk, 0);
    },
  }));
  await new Promise<void>((resolve) => {
    upgraded = resolve;
    socket.write(new TextEncoder().encode(
      `GET /ws HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
  });
  await new Promise<void>((resolve) => {
    onMessage = resolve;
    socket.write(maskedFrame(new TextEncoder().encode(KEYWORD)));
  });

  /** `total` round trips with `window` in flight; resolves with the seconds they took. */
  const phase = (total: number) =>
    new Promise<number>((resolve) => {
      const started = performance.now();
      let sent = 0;
      let received = 0;
      const refill = () => {
        const n = Math.min(window - (sent - received), total - sent);
        if (n <= 0) return;
        socket.write(n === window ? burst : burst.slice(0, n * frame.length));
        sent += n;
      };
      onMessage = () => {
        received++;
        if (received === total) resolve((performance.now() - started) / 1000);
        else if (sent - received <= window / 2) refill();
      };
      refill();
    });
  await phase(numArg(args, "warmup", Math.min(count, 100_000)));
  const seconds = await phase(count);
  socket.close();
  report("RESULT", { seconds, count });
  process.exit(0);
}

if (role === "server") await server();
else if (role === "client") await client();
else throw new TypeError(`Cannot run websocket_echo: role must be server or client, got ${role}`);

/**
 * B4b's server: holds idle connections and reports its memory after a forced GC. Run by `run.ts` on the
 * runtime under test:
 *
 * - `server --kind named --clients N`: asockio with N named clients (`c0` … `c<N-1>`) registered before the
 *   baseline reading, plus `lat`, the latency client, whose framed messages are echoed.
 * - `server --kind raw`: asockio with `rawConnection: () => true` and `unknownClients: "allow"`, no processor:
 *   every connection is an unknown client; what one sends is echoed as it came.
 * - `server --kind bare`: the runtime's own socket API (`bench/_native.ts`), echoing what arrives (on Deno
 *   into a 4 KiB read buffer per connection).
 *
 * It answers `stats` on stdin with `STATS {connected, heapUsed, rss, …}` (after a forced GC that also
 * shrinks the young generation and returns free allocator pages: `forceGc(true)`).
 *
 * @module
 */
import process from "node:process";
import { IoCore } from "../../mod.ts";
import { numArg, parseArgs, report, serveControl } from "../_child.ts";
import { nativeListen } from "../_native.ts";

const args = parseArgs();
const kind = args.get("kind") ?? "named";
const clients = numArg(args, "clients", 1000);
/** Readings after a memory-reducing GC (see `forceGc`): what the connections hold, not the young generation's size. */
const SHRINK = true;

async function bare(): Promise<void> {
  let connected = 0;
  const server = await nativeListen(0, (socket) => {
    connected++;
    return {
      onData: (chunk) => socket.write(chunk.slice()),
      onClose: () => connected--,
    };
  }, 4096); // on Deno, a 4 KiB read buffer per connection: asockio's first read slab is as large
  serveControl(() => ({ connected }), () => server.close(), SHRINK);
  report("READY", { port: server.port, pid: process.pid });
}

async function asockio(): Promise<void> {
  const raw = kind === "raw";
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    logger: null,
    limits: { handshakeTimeoutMs: 120_000 },
    ...(raw ? { rawConnection: () => true, unknownClients: "allow" as const } : {}),
  });
  const [addr] = await core.listen();
  if (!raw) {
    for (let i = 0; i < clients; i++) core.addClient({ keyword: `c${i}` });
    core.addClient({ keyword: "lat" });
  }
  let connected = 0;
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const r = await core.ioIteration(1000);
      connected += r.newlyConnectedExpectedClients.size + r.newlyConnectedUnknownClients.size -
        r.clientsWithDisconnectedConnection.size;
      for (const id of r.clientsHaveDataToRead) core.sendMessagesToClient(id, core.getMessagesFromClient(id));
    }
  })();
  serveControl(() => ({ connected }), async () => {
    stopping = true;
    await core.close();
    await loop;
  }, SHRINK);
  report("READY", { port: addr!.transport === "tcp" ? addr!.port : 0, pid: process.pid });
}

if (process.argv[2] !== "server") throw new TypeError("Cannot run idle_server: the role must be server");
if (kind === "bare") await bare();
else if (kind === "named" || kind === "raw") await asockio();
else throw new TypeError(`Cannot run idle_server: --kind must be named, raw or bare, got ${kind}`);

/**
 * The bare contenders' view of the runtime: a few lines over `Deno.listen`, `Bun.listen` or
 * `node:net`, with nothing asockio-specific. Each bare workload is written once over this, so the
 * only thing that changes between runtimes is the socket API itself.
 *
 * The chunk passed to `onData` is valid only during the call (Deno reuses its read buffer).
 *
 * @module
 */
import { createConnection, createServer, type Socket } from "node:net";

/** Which runtime runs this file. */
export type BenchRuntime = "deno" | "bun" | "node";

/** The runtime running this code (Deno first: Deno and Bun both report `node` in `process.release`). */
export function runtimeName(): BenchRuntime {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (typeof g.Deno === "object" && g.Deno !== null) return "deno";
  if (typeof g.Bun === "object" && g.Bun !== null) return "bun";
  return "node";
}

/** A connected socket as the bare workloads use it. */
export interface NativeSocket {
  /** Queues bytes; the caller must not modify them afterwards. Returns `false` while a backlog waits. */
  write(data: Uint8Array): boolean;
  /** Resolves once nothing is queued in user space. */
  drained(): Promise<void>;
  /** Closes now. */
  close(): void;
}

/** What a bare workload does with a socket. */
export interface NativeHandlers {
  /** Bytes arrived; `chunk` is valid only during the call. */
  onData(chunk: Uint8Array): void;
  /** The socket closed. */
  onClose?(): void;
}

/** A listening bare server. */
export interface NativeServer {
  /** The bound port on 127.0.0.1. */
  readonly port: number;
  /** Stops accepting. */
  close(): void;
}

// ---- The few Deno and Bun members used here, declared by hand (no lib.deno, no bun-types).

interface DenoConnLike {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}
interface DenoLike {
  listen(options: { hostname: string; port: number }): {
    addr: { port: number };
    accept(): Promise<DenoConnLike>;
    close(): void;
  };
  connect(options: { hostname: string; port: number }): Promise<DenoConnLike>;
}
interface BunSocketLike {
  data: BunState;
  write(data: Uint8Array): number;
  end(): void;
  setNoDelay?(noDelay?: boolean): boolean;
}
interface BunSocketHandlersLike {
  open(s: BunSocketLike): void;
  data(s: BunSocketLike, chunk: Uint8Array): void;
  drain(s: BunSocketLike): void;
  close(s: BunSocketLike): void;
  error(s: BunSocketLike, err: Error): void;
}
interface BunLike {
  listen(options: { hostname: string; port: number; socket: BunSocketHandlersLike; data?: unknown }): {
    port: number;
    stop(closeActive?: boolean): void;
  };
  connect(
    options: { hostname: string; port: number; socket: BunSocketHandlersLike; data?: unknown },
  ): Promise<BunSocketLike>;
}
interface BunState {
  handlers: NativeHandlers | undefined;
  queue: Uint8Array[];
  waiters: Array<() => void>;
}

/** The `Deno` global, typed with only what the bench uses. */
export function denoGlobal(): DenoLike {
  return (globalThis as unknown as { Deno: DenoLike }).Deno;
}

/** The `Bun` global, typed with only what the bench uses. */
export function bunGlobal(): BunLike {
  return (globalThis as unknown as { Bun: BunLike }).Bun;
}

// ---- Deno: a read loop per connection and one writer loop draining a queue.

/** Above this many unwritten bytes, `write` asks the caller to wait for `drained()`. */
const HIGH_WATER = 4 * 1024 * 1024;

function denoSocket(
  conn: DenoConnLike,
  make: (s: NativeSocket) => NativeHandlers,
  readBytes = 256 * 1024,
): void {
  conn.setNoDelay?.(true);
  const queue: Uint8Array[] = [];
  let pending = 0; // bytes queued or being written
  let writing = false;
  let closed = false;
  let waiters: Array<() => void> = [];
  const release = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const pump = async () => {
    writing = true;
    try {
      while (queue.length && !closed) {
        let buf = queue.shift()!;
        while (buf.length) {
          const n = await conn.write(buf);
          pending -= n;
          buf = buf.subarray(n);
        }
      }
    } catch {
      closed = true;
    }
    if (closed) pending = 0;
    writing = false;
    release();
  };
  const socket: NativeSocket = {
    write(data) {
      queue.push(data);
      pending += data.length;
      if (!writing) pump();
      return pending < HIGH_WATER;
    },
    drained: () => (writing || queue.length ? new Promise<void>((r) => waiters.push(r)) : Promise.resolve()),
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
  };
  const handlers = make(socket);
  (async () => {
    const buf = new Uint8Array(readBytes);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        handlers.onData(buf.subarray(0, n));
      }
    } catch {
      // reset by the peer: treated as a close
    }
    socket.close();
    release();
    handlers.onClose?.();
  })();
}

// ---- Bun: `write` takes what the kernel accepts now and buffers nothing, so the rest is queued.

function bunFlush(s: BunSocketLike): void {
  const st = s.data;
  while (st.queue.length) {
    const buf = st.queue[0]!;
    const n = s.write(buf);
    if (n < 0) {
      st.queue.length = 0;
      break;
    }
    if (n < buf.length) {
      st.queue[0] = buf.subarray(n);
      return;
    }
    st.queue.shift();
  }
  const w = st.waiters;
  st.waiters = [];
  for (const f of w) f();
}

function bunWrap(s: BunSocketLike): NativeSocket {
  return {
    write(data) {
      const st = s.data;
      if (st.queue.length) {
        st.queue.push(data);
        return false;
      }
      const n = s.write(data);
      if (n >= 0 && n < data.length) {
        st.queue.push(data.subarray(n));
        return false;
      }
      return true;
    },
    drained:
      () => (s.data.queue.length ? new Promise<void>((r) => s.data.waiters.push(r)) : Promise.resolve()),
    close: () => s.end(),
  };
}

function bunHandlers(make: (s: NativeSocket) => NativeHandlers): BunSocketHandlersLike {
  return {
    open(s) {
      s.data = { handlers: undefined, queue: [], waiters: [] };
      s.setNoDelay?.(true);
      s.data.handlers = make(bunWrap(s));
    },
    data: (s, chunk) => s.data.handlers?.onData(chunk),
    drain: bunFlush,
    close(s) {
      bunFlush(s);
      s.data.handlers?.onClose?.();
    },
    error() {},
  };
}

// ---- Node: `socket.write` queues by itself.

function nodeWrap(s: Socket): NativeSocket {
  return {
    write: (data) => s.write(data),
    drained: () =>
      s.writableLength ? new Promise<void>((r) => s.once("drain", () => r())) : Promise.resolve(),
    close: () => s.destroy(),
  };
}

function nodeAttach(s: Socket, make: (s: NativeSocket) => NativeHandlers): void {
  s.setNoDelay(true);
  const handlers = make(nodeWrap(s));
  s.on("data", (chunk: Uint8Array) => handlers.onData(chunk));
  s.on("error", () => {});
  s.on("close", () => handlers.onClose?.());
}

/**
 * Listens on 127.0.0.1 with the runtime's own socket API. On Deno each connection reads into its own
 * buffer of `denoReadBytes` (256 KiB by default, for throughput; B4b's idle server passes 4 KiB).
 *
 * @example
 * ```ts
 * const server = await nativeListen(0, (socket) => ({ onData: (chunk) => socket.write(chunk.slice()) }));
 * console.log(server.port);
 * ```
 */
export async function nativeListen(
  port: number,
  make: (s: NativeSocket) => NativeHandlers,
  denoReadBytes?: number,
): Promise<NativeServer> {
  const runtime = runtimeName();
  if (runtime === "deno") {
    const listener = denoGlobal().listen({ hostname: "127.0.0.1", port });
    (async () => {
      for (;;) {
        let conn: DenoConnLike;
        try {
          conn = await listener.accept();
        } catch {
          return; // closed
        }
        denoSocket(conn, make, denoReadBytes);
      }
    })();
    return { port: listener.addr.port, close: () => listener.close() };
  }
  if (runtime === "bun") {
    const listener = bunGlobal().listen({ hostname: "127.0.0.1", port, socket: bunHandlers(make) });
    return { port: listener.port, close: () => listener.stop(true) };
  }
  const server = createServer({ noDelay: true }, (s) => nodeAttach(s, make));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port, backlog: 4096 }, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: () => server.close(),
  };
}

/**
 * Connects to 127.0.0.1 with the runtime's own socket API.
 *
 * @example
 * ```ts
 * const socket = await nativeConnect(8080, () => ({ onData: (chunk) => console.log(chunk.length) }));
 * socket.write(new Uint8Array([1, 2, 3]));
 * ```
 */
export async function nativeConnect(
  port: number,
  make: (s: NativeSocket) => NativeHandlers,
): Promise<NativeSocket> {
  const runtime = runtimeName();
  if (runtime === "deno") {
    const conn = await denoGlobal().connect({ hostname: "127.0.0.1", port });
    let socket: NativeSocket | undefined;
    denoSocket(conn, (s) => {
      socket = s;
      return make(s);
    });
    return socket!;
  }
  if (runtime === "bun") {
    let socket: NativeSocket | undefined;
    const s = await bunGlobal().connect({
      hostname: "127.0.0.1",
      port,
      socket: bunHandlers((ns) => {
        socket = ns;
        return make(ns);
      }),
    });
    return socket ?? bunWrap(s);
  }
  const s = createConnection({ host: "127.0.0.1", port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  const ns = nodeWrap(s);
  nodeAttach(s, () => make(ns));
  return ns;
}

/**
 * The core fixture of the suite: a started {@linkcode IoCore} on port 0 (and UNIX sockets in its own
 * temp dir) with its bound addresses and wire peers, closed with `await using`; and the event
 * accumulator and recording logger the core tests read it with.
 *
 * @module
 */
import {
  type Addr,
  type ClientId,
  type ConnectOptions,
  IoCore,
  type IoCoreListenerOptions,
  type IoCoreOptions,
  type IoIterationResult,
} from "../mod.ts";
import { HangError, type TempDir, tempDir } from "./_helpers.ts";
import { targetOf, WirePeer, type WirePeerOptions } from "./_wire_peer.ts";

// Node 20 ships Symbol.asyncDispose; the fallback keeps older or stricter runtimes working with `using`.
const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ??
  (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

/** A started core and what a test reaches it with; everything closes on dispose. */
export interface CoreFixture {
  /** The core, listening. */
  readonly core: IoCore;
  /** The bound addresses, in the order of `listeners`. */
  readonly addrs: readonly Addr[];
  /** A temp dir of the fixture's own, where relative UNIX listener paths were put; removed on dispose. */
  readonly dir: TempDir;
  /** The connect target of listener `index`. */
  target(index?: number): ConnectOptions;
  /** The bound port of TCP listener `index`; throws for any other kind. */
  port(index?: number): number;
  /** A wire peer connected to listener `index` that announces `keyword` (if given) and does not wait; closed on dispose. */
  connect(keyword?: string | Uint8Array, index?: number, options?: WirePeerOptions): Promise<WirePeer>;
  /** A wire peer through the handshake with `keyword` (its `OK` received) on listener `index`; closed on dispose. */
  handshake(keyword: string | Uint8Array, index?: number): Promise<WirePeer>;
  /**
   * Registers a named client for `keyword`, brings a wire peer through its handshake on listener
   * `index`, and runs `ioIteration` until the core reports the client connected.
   */
  connectNamed(keyword: string, index?: number): Promise<{ id: ClientId; peer: WirePeer }>;
  /** Closes the peers, the core, and removes the temp dir. Safe to call twice. */
  close(): Promise<void>;
  /** Same as {@linkcode CoreFixture.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a core with `options` and waits until its listeners are bound. It is quiet (`logger: null`)
 * unless a logger is given. A UNIX listener with a relative `path` is bound inside the fixture's temp
 * dir.
 *
 * @example
 * ```ts
 * await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }, { transport: "unix", path: "core.sock" }] });
 * const id = fx.core.addClient({ keyword: "worker" });
 * const peer = await fx.handshake("worker", 1); // over the UNIX listener
 * ```
 */
export async function startCore(options: IoCoreOptions = {}): Promise<CoreFixture> {
  const dir = await tempDir("asockio-core-");
  let core: IoCore;
  let addrs: Addr[] = [];
  try {
    const listeners = options.listeners?.map((l): IoCoreListenerOptions =>
      l.transport === "unix" && !l.path.startsWith("/") ? { ...l, path: dir.join(l.path) } : l
    );
    core = new IoCore({ logger: null, ...options, ...(listeners ? { listeners } : {}) });
    if (listeners?.length) addrs = await core.listen();
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
  const peers: WirePeer[] = [];
  const addrAt = (index: number): Addr => {
    const addr = addrs[index];
    if (!addr) throw new RangeError(`Cannot find listener ${index}: the core has ${addrs.length}`);
    return addr;
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      for (const peer of peers) peer.close();
      try {
        await core.close();
      } finally {
        await dir.cleanup();
      }
    })();
  const fixture: CoreFixture = {
    core,
    addrs,
    dir,
    target: (index = 0) => targetOf(addrAt(index)),
    port(index = 0) {
      const addr = addrAt(index);
      if (addr.transport !== "tcp") throw new TypeError(`Listener ${index} is ${addr.transport}, not tcp`);
      return addr.port;
    },
    async connect(keyword, index = 0, options) {
      const peer = await WirePeer.connect(targetOf(addrAt(index)), keyword, options);
      peers.push(peer);
      return peer;
    },
    async handshake(keyword, index = 0) {
      const peer = await WirePeer.handshake(targetOf(addrAt(index)), keyword);
      peers.push(peer);
      return peer;
    },
    async connectNamed(keyword, index = 0) {
      const id = core.addClient({ keyword });
      const peer = await fixture.handshake(keyword, index);
      await iterateUntil(core, (e) => e.expected.has(id));
      return { id, peer };
    },
    close,
    [asyncDispose]: close,
  };
  return fixture;
}

/**
 * {@linkcode startCore} with one loopback TCP listener (port 0) whose connections are all raw unknown
 * clients served by `processor`, as an `HttpResponder` is; `options` adds to that or replaces it.
 */
export function startProcessorCore(
  processor: NonNullable<IoCoreOptions["unknownClientProcessor"]>,
  options: IoCoreOptions = {},
): Promise<CoreFixture> {
  return startCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    rawConnection: () => true,
    unknownClients: "allow",
    unknownClientProcessor: processor,
    ...options,
  });
}

/** Union of the events of several `ioIteration` calls. */
export class Events {
  /** Named clients that connected. */
  readonly expected = new Set<ClientId>();
  /** Unknown clients that connected. */
  readonly unknown = new Set<ClientId>();
  /** Clients whose connection went away. */
  readonly disconnected = new Set<ClientId>();
  /** Clients with messages to read. */
  readonly data = new Set<ClientId>();
  /** Clients whose output drained. */
  readonly empty = new Set<ClientId>();

  /** Adds the events of one `ioIteration` result. */
  add(r: IoIterationResult): void {
    for (const id of r.newlyConnectedExpectedClients) this.expected.add(id);
    for (const id of r.newlyConnectedUnknownClients) this.unknown.add(id);
    for (const id of r.clientsWithDisconnectedConnection) this.disconnected.add(id);
    for (const id of r.clientsHaveDataToRead) this.data.add(id);
    for (const id of r.clientsWithEmptyOutputFifo) this.empty.add(id);
  }
}

/**
 * Runs `ioIteration` until `condition(events)` holds; `onResult` may act on each result (read,
 * answer). Throws {@linkcode HangError} after `timeoutMs`.
 */
export async function iterateUntil(
  core: IoCore,
  condition: (events: Events) => boolean,
  timeoutMs = 10_000,
  onResult?: (r: IoIterationResult) => void,
): Promise<Events> {
  const events = new Events();
  const deadline = Date.now() + timeoutMs;
  while (!condition(events)) {
    if (Date.now() > deadline) throw new HangError(`Timed out after ${timeoutMs} ms waiting for core events`);
    const r = await core.ioIteration(50);
    events.add(r);
    onResult?.(r);
  }
  return events;
}

/** A logger that records what the core reports, one line each, prefixed by its level. */
export interface RecordingLogger {
  /** The lines so far, e.g. `"warn: Closing connection from …"`. */
  readonly lines: string[];
  /** Records a debug line. */
  debug(m: string): void;
  /** Records an info line. */
  info(m: string): void;
  /** Records a warning. */
  warn(m: string): void;
  /** Records an error. */
  error(m: string): void;
}

/**
 * A quiet logger that records what the core reports.
 */
export function recordingLogger(): RecordingLogger {
  const lines: string[] = [];
  return {
    lines,
    debug: (m: string) => lines.push(`debug: ${m}`),
    info: (m: string) => lines.push(`info: ${m}`),
    warn: (m: string) => lines.push(`warn: ${m}`),
    error: (m: string) => lines.push(`error: ${m}`),
  };
}

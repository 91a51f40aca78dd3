/**
 * {@linkcode Scheduler}: the parts of a core wired together. It admits connections (policies,
 * access rules, caps and parking), binds sessions to clients, connects out, and keeps the
 * registry, the event board and the memory budget in step. `IoCore` is its public face.
 *
 * @module
 */
import { authProof, importSecret, timingSafeEqual } from "../wire/auth.ts";
import { toBytes } from "../wire/bytes.ts";
import { ClientRecord, ClientRegistry, keywordKey } from "../clients/client_registry.ts";
import {
  CallbackError,
  ConnectionClosedError,
  CoreClosedError,
  TimeoutError,
  UnsupportedError,
} from "../errors.ts";
import {
  bindDatagramClient,
  checkDatagramSize,
  checkDatagramSizes,
  DatagramCounters,
  type DatagramPeersOptions,
  udpTarget,
} from "../udp/datagram_peers.ts";
import { EventBoard } from "./event_board.ts";
import type { KeywordVerdict } from "../wire/handshake.ts";
import { addrKnown, describeAddr } from "../wire/ip.ts";
import { ListenerSet } from "../admission/listener_set.ts";
import { MemoryBudget } from "./memory_budget.ts";
import {
  type AddClientOptions,
  defaultLogger,
  type IncomingConnectionInfo,
  type IoCoreOptions,
  type Logger,
  oneOf,
  type ResolvedLimits,
  resolveLimits,
} from "../options.ts";
import { FlushScheduler } from "../connection/output.ts";
import { FrameBatch, frameBatchRuns, frameBatchSent, payloadViews } from "../wire/frame_batch.ts";
import type { InlineProcessorClass } from "../processor.ts";
import { ProcessorHost } from "./processor_host.ts";
import { OutgoingClients } from "../clients/outgoing.ts";
import { resolveReconnect } from "../clients/reconnect.ts";
import { ALLOW_ALL, compileRules, LOCAL_ONLY, type PeerInfo, type RuleCheck } from "../admission/rules.ts";
import { Pause, Phase, Session, type SessionHost } from "../connection/session.ts";
import { resolveTransport } from "./transport_slot.ts";
import type { Addr, Connection, Transport } from "../../transports/types.ts";
import type {
  ClientConnectionState,
  ClientId,
  ClientInfo,
  IoCoreStats,
  Keyword,
  ListenerInfo,
} from "../types.ts";

const UNKNOWN_KEYWORD_PREFIX = "UNKNOWN CLIENT: ";

/** An incoming connection as admission sees it: behind a balancer, the original client's address. */
interface Incoming {
  readonly conn: Connection;
  readonly listener: ListenerInfo;
  readonly remoteAddr: Addr;
  readonly proxyAddr?: Addr;
}

const incomingOf = (session: Session): Incoming => ({
  conn: session.conn,
  listener: session.listener!,
  remoteAddr: session.remoteAddr,
  proxyAddr: session.proxyAddr,
});
const utf8Decoder = new TextDecoder();
const ADMIT: KeywordVerdict = Object.freeze({ kind: "admit" });
const HOLD: KeywordVerdict = Object.freeze({ kind: "hold" });
const CHALLENGE: KeywordVerdict = Object.freeze({ kind: "challenge" });
const refusal = (reason: string): KeywordVerdict => ({ kind: "refuse", reason });

/**
 * The core's parts and the logic between them; every public `IoCore` method lands here.
 *
 * @example
 * ```ts
 * import { Scheduler } from "./scheduler.ts";
 * const scheduler = new Scheduler({ transport: "node" });
 * await scheduler.close();
 * ```
 */
export class Scheduler implements SessionHost {
  readonly transport: Transport;
  readonly limits: ResolvedLimits;
  readonly logger: Logger;
  readonly budget: MemoryBudget;
  readonly board: EventBoard;
  readonly processors: ProcessorHost;
  readonly flusher: FlushScheduler = new FlushScheduler();
  readonly registry: ClientRegistry = new ClientRegistry();
  readonly listeners: ListenerSet;
  readonly tracksIdle: boolean;
  readonly sessions: Set<Session> = new Set();
  closed = false;
  /** Resolves once `close()` has finished. */
  readonly closedPromise: Promise<void>;
  #resolveClosed!: () => void;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => void this.close();
  /** Clients whose inbox a `messages()` iteration reads. */
  readonly #readers = new Set<ClientRecord>();
  /** Outgoing clients: their send buffers and their retries. */
  readonly outgoing: OutgoingClients;
  /** False once `stopAccepting` (or `shutdown`) began: accepted connections are closed. */
  #accepting = true;
  #shutdown: Promise<void> | undefined = undefined;
  /** Called when the last session closes, while `shutdown` waits for it. */
  #allClosed: (() => void) | undefined = undefined;
  readonly #rawConnection: ((info: IncomingConnectionInfo) => boolean) | undefined;
  readonly #allowUnknown: boolean;
  readonly #unknownProcessor: InlineProcessorClass | undefined;
  readonly #acceptUnexpected: boolean;
  readonly #replaceDuplicates: boolean;
  readonly #noDelay: boolean;
  readonly #defaultRules: RuleCheck;
  readonly #unknownRules: RuleCheck;
  #idleTimer: ReturnType<typeof setInterval> | undefined = undefined;
  /** UDP: what every socket's peers share (the counters, the caps). */
  readonly #datagrams: DatagramPeersOptions;

  /** Checks the options and builds the parts; nothing is bound yet. */
  constructor(options: IoCoreOptions) {
    this.transport = resolveTransport(options.transport);
    this.limits = resolveLimits(options.limits);
    this.logger = options.logger === null ? {} : options.logger ?? defaultLogger;
    this.#rawConnection = options.rawConnection;
    this.#allowUnknown =
      oneOf("unknownClients", options.unknownClients, ["allow", "refuse"], "refuse") === "allow";
    this.#unknownProcessor = options.unknownClientProcessor;
    this.#acceptUnexpected = options.acceptUnexpectedKeywords ?? true;
    this.#replaceDuplicates =
      oneOf("duplicateKeyword", options.duplicateKeyword, ["refuse", "replace"], "refuse") === "replace";
    this.#noDelay = options.noDelay ?? true;
    this.#defaultRules = compileRules(options.allow ?? LOCAL_ONLY);
    this.#unknownRules = compileRules(options.unknownClientsAllow ?? ALLOW_ALL);
    this.listeners = new ListenerSet(options.listeners ?? []);
    this.tracksIdle = this.limits.idleTimeoutMs > 0;
    this.#datagrams = {
      counters: new DatagramCounters(),
      maxPeers: this.limits.maxUdpClients,
      idleTimeoutMs: this.limits.udpIdleTimeoutMs,
      maxMessageBytes: this.limits.maxMessageBytes,
    };
    this.budget = new MemoryBudget(this.limits.inputBytes, this.limits.outputBytes, () => {
      if (this.listeners.parkedCount) this.#unpark();
    });
    this.board = new EventBoard((id) => (this.registry.get(id)?.unread ?? 0) > 0);
    this.processors = new ProcessorHost(this.logger);
    this.outgoing = new OutgoingClients(this.budget, this.logger, {
      isClosed: () => this.closed,
      connect: (record) => this.connectOut(record),
    });
    this.closedPromise = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#signal = options.signal;
    if (this.#signal?.aborted) queueMicrotask(this.#onAbort);
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  // ---------------------------------------------------------------------------------------------
  // Accepting

  /** Binds the listeners. */
  listen(): Promise<Addr[]> {
    if (this.closed) throw new CoreClosedError("Cannot listen: the core is closed");
    if (this.listeners.bound) throw new TypeError("Cannot listen: the core is already listening");
    return this.listeners.bind(
      this.transport,
      (conn, listener) => this.#accept(conn, listener),
      this.#datagrams,
    );
  }

  #hasRoom = (listener: ListenerInfo): boolean =>
    this.sessions.size < this.limits.maxConnections && this.listeners.hasRoom(listener) &&
    !this.budget.overInput; // over the input cap, stop accepting too

  #accept(conn: Connection, listener: ListenerInfo): void {
    if (this.closed || !this.#accepting) return conn.close();
    if (this.listeners.parkedCount || !this.#hasRoom(listener)) this.listeners.park(conn, listener);
    else this.#admit(conn, listener);
  }

  #unpark(): void {
    if (!this.closed) this.listeners.unpark(this.#hasRoom, (conn, listener) => this.#admit(conn, listener));
  }

  /**
   * Calls application code (a rule, a predicate) behind the guard: what it throws is logged, and
   * the caller refuses that connection only.
   */
  #guarded<T>(what: string, where: () => string, call: () => T): T | CallbackError {
    try {
      return call();
    } catch (err) {
      const error = new CallbackError(`${what} threw for ${where()}`, { cause: err });
      this.logger.error?.(`${error.message}; connection refused`, err);
      return error;
    }
  }

  #peerInfo(peer: Incoming, keyword?: Uint8Array): PeerInfo {
    const { conn, listener } = peer;
    return {
      listener,
      remoteAddr: peer.remoteAddr,
      localAddr: conn.localAddr,
      transport: listener.addr.transport,
      keyword,
      tls: conn.tls,
      proxyAddr: peer.proxyAddr,
    };
  }

  /** True when the rules admit the peer; a rule that throws refuses it. */
  #allowed(rules: RuleCheck, peer: Incoming, keyword?: Uint8Array): boolean {
    const where = () => `${describeAddr(peer.remoteAddr)} on ${peer.listener.name}`;
    const admitted = this.#guarded("An access rule", where, () => rules(this.#peerInfo(peer, keyword)));
    return typeof admitted === "number" && admitted >= 0;
  }

  #admit(conn: Connection, listener: ListenerInfo): void {
    if (this.#noDelay) conn.setNoDelay(true);
    const trusted = this.listeners.trustedProxies(listener);
    if (trusted === undefined) {
      return this.#classify({ conn, listener, remoteAddr: conn.remoteAddr }, undefined);
    }
    // Behind a balancer: the PROXY header comes first, and only from the balancers the listener trusts.
    if (!trusted(conn.remoteAddr)) {
      if (!addrKnown(conn.remoteAddr)) {
        // Node and Bun cannot read the address of a connection its peer already reset, as a
        // balancer's health check does: it is gone, so there is nothing to refuse or warn about.
        this.logger.debug?.(`Connection on ${listener.name} closed before its address could be read`);
        return conn.close();
      }
      this.logger.warn?.(
        `Refused connection from ${
          describeAddr(conn.remoteAddr)
        } on ${listener.name}: not a trusted PROXY protocol source`,
      );
      return conn.close();
    }
    const session = this.#newSession(conn, listener, "proxy");
    if (this.limits.handshakeTimeoutMs > 0) session.startHandshakeTimer(this.limits.handshakeTimeoutMs);
  }

  /** The PROXY header of a session was read: it goes on as a handshake or a raw client. */
  proxied(session: Session): void {
    this.#classify(incomingOf(session), session);
  }

  /** Decides whether an incoming connection is raw (an unknown client) or starts a handshake. */
  #classify(peer: Incoming, session: Session | undefined): void {
    const { conn, listener } = peer;
    const where = () => `${describeAddr(peer.remoteAddr)} on ${listener.name}`;
    const predicate = this.#rawConnection;
    // A UDP address has no handshake: it is always a raw unknown client.
    const raw = peer.remoteAddr.transport === "udp" ? true : predicate
      ? this.#guarded(
        "rawConnection",
        where,
        () =>
          predicate({
            listener,
            remoteAddr: peer.remoteAddr,
            localAddr: conn.localAddr,
            proxyAddr: peer.proxyAddr,
          }),
      )
      : false;
    if (raw instanceof CallbackError) return session ? session.close(raw) : conn.close();
    if (!raw) {
      if (session) return session.beginHandshake();
      const accepting = this.#newSession(conn, listener, "accepting");
      if (this.limits.handshakeTimeoutMs > 0) accepting.startHandshakeTimer(this.limits.handshakeTimeoutMs);
      return;
    }
    if (!this.#allowUnknown || !this.#allowed(this.#unknownRules, peer)) {
      this.logger.info?.(`Refused unknown client from ${where()}`);
      return session ? session.close() : conn.close();
    }
    const id = this.registry.nextId();
    const record = new ClientRecord(id, "unknown", toBytes(`${UNKNOWN_KEYWORD_PREFIX}${id}`));
    record.rawOnConnect = true;
    record.processorClass = this.#unknownProcessor;
    this.registry.add(record);
    if (session) session.beginRaw();
    this.bind(session ?? this.#newSession(conn, listener, "raw"), record);
  }

  #newSession(
    conn: Connection,
    listener: ListenerInfo | undefined,
    start: "proxy" | "accepting" | "raw" | ClientRecord,
  ): Session {
    const session = new Session(this, conn, listener, start);
    this.sessions.add(session);
    if (listener) this.listeners.opened(listener);
    if (this.tracksIdle) this.#startIdleSweep();
    conn.setHandler(session);
    return session;
  }

  /** The accepting side's keyword policy (see `KeywordPolicy`). */
  keywordVerdict(session: Session, keyword: Uint8Array, authenticated: boolean): KeywordVerdict {
    const record = this.registry.byKeyword(keywordKey(keyword));
    if (
      !authenticated &&
      !this.#allowed(record?.rules ?? this.#defaultRules, incomingOf(session), keyword)
    ) {
      return refusal("access denied");
    }
    if (record) {
      if (record.connect) return refusal("keyword is not accepted here");
      if (record.removed) return refusal("unexpected keyword");
      if (record.session && !this.#replaceDuplicates) return refusal("duplicate keyword");
      return record.secretKey && !authenticated ? CHALLENGE : ADMIT;
    }
    if (authenticated || !this.#acceptUnexpected) return refusal("unexpected keyword");
    return this.registry.held.has(keywordKey(keyword)) ? refusal("duplicate keyword") : HOLD;
  }

  /** The handshake admitted a registered keyword. */
  admitNamed(session: Session, keyword: Uint8Array): void {
    const record = this.registry.byKeyword(keywordKey(keyword))!;
    if (record.session) record.session.close(); // duplicateKeyword: "replace"
    this.bind(session, record);
  }

  /** Held as in the original: it got OK, and its messages wait for `addClient`. */
  hold(session: Session, keyword: Uint8Array): void {
    const held = new ClientRecord(0, "expected", keyword);
    session.holdFor(held);
    this.registry.held.set(held.key, session);
    session.open();
  }

  /** Binds an admitted session to its client and reports it. */
  bind(session: Session, record: ClientRecord): void {
    session.attach(record);
    record.session = session;
    record.listener = session.listener;
    record.remoteAddr = session.remoteAddr;
    record.proxyAddr = session.proxyAddr;
    record.lastError = undefined;
    session.open();
    const events = this.board.events;
    this.board.emit(
      record.kind === "unknown" ? events.newlyConnectedUnknownClients : events.newlyConnectedExpectedClients,
      record.id,
    );
    if (record.unread > 0) this.board.emit(events.clientsHaveDataToRead, record.id);
    if (record.rawOnConnect) session.setRaw(true);
    if (record.connect) {
      record.failures = 0;
      this.outgoing.flushOutbox(record, session);
    }
    if (record.processorClass) this.setProcessor(record, record.processorClass);
  }

  /** Checks an incoming client's proof of the secret. */
  async verifyProof(keyword: Uint8Array, nonce: Uint8Array, proof: Uint8Array): Promise<boolean> {
    const record = this.registry.byKeyword(keywordKey(keyword));
    if (!record?.secretKey) return false;
    return timingSafeEqual(await authProof(await record.secretKey, nonce, keyword), proof);
  }

  /** This outgoing client's answer to the server's challenge. */
  async proofFor(record: ClientRecord, nonce: Uint8Array): Promise<Uint8Array> {
    return authProof(await record.secretKey!, nonce, record.keyword);
  }

  // ---------------------------------------------------------------------------------------------
  // Clients

  /** Registers a named client (see `IoCore.addClient`). */
  addClient(options: AddClientOptions): ClientId {
    if (this.closed) throw new CoreClosedError("Cannot add client: the core is closed");
    const keyword = this.#checkKeyword(options.keyword);
    const key = keywordKey(keyword);
    if (this.registry.byKeyword(key)) {
      throw new TypeError(
        `Cannot add client: keyword ${JSON.stringify(utf8Decoder.decode(keyword))} is registered`,
      );
    }
    const rules = options.allow ? compileRules(options.allow) : undefined;
    if (options.secret !== undefined && options.connect?.transport === "udp") {
      throw new TypeError("Cannot add client: a UDP client has no handshake to prove a secret in");
    }
    if (options.secret !== undefined && !(toBytes(options.secret).length > 0)) {
      throw new TypeError("Cannot add client: secret must be a non-empty string or Uint8Array");
    }
    const id = this.registry.nextId();
    let held = options.connect ? undefined : this.registry.held.get(key);
    if (
      held &&
      (options.secret !== undefined ||
        !this.#allowed(rules ?? this.#defaultRules, incomingOf(held), keyword))
    ) {
      // The held connection never proved the secret, or this client's rules refuse it.
      this.logger.info?.(
        `Closing held connection for ${utf8Decoder.decode(keyword)}: not admitted by addClient`,
      );
      held.close();
      held = undefined;
    }
    // Adopt the held connection: it already got OK, and its messages are in the provisional inbox.
    const record = held?.held ?? new ClientRecord(id, "expected", keyword);
    record.id = id;
    record.connect = options.connect;
    // A UDP client is raw whatever `raw` says: a datagram is one whole message.
    record.rawOnConnect = options.connect?.transport === "udp" || (options.raw ?? false);
    record.processorClass = options.processor;
    record.rules = rules;
    record.reconnect = options.connect ? resolveReconnect(options.reconnect) : undefined;
    if (options.secret !== undefined) {
      record.secretKey = importSecret(options.secret);
      record.secretKey.catch(() => {}); // reported where it is awaited
    }
    if (held) {
      this.registry.held.delete(key);
      held.releaseHeld();
    }
    this.registry.add(record);
    if (held) this.bind(held, record);
    else if (record.connect) this.connectOut(record);
    return id;
  }

  #checkKeyword(keyword: Keyword): Uint8Array {
    if (typeof keyword !== "string" && !(keyword instanceof Uint8Array)) {
      throw new TypeError("Cannot add client: keyword must be a string or a Uint8Array");
    }
    const bytes = toBytes(keyword);
    if (bytes.length > this.limits.maxKeywordBytes) {
      throw new RangeError(
        `Cannot add client: keyword is ${bytes.length} bytes, more than maxKeywordBytes ${this.limits.maxKeywordBytes}`,
      );
    }
    return bytes.slice();
  }

  /** Connects an outgoing client and starts its handshake. */
  connectOut(record: ClientRecord): void {
    record.connecting = true;
    const target = record.connect!;
    const opening = target.transport === "udp"
      ? bindDatagramClient(this.transport, target, this.#datagrams)
      : this.transport.connect(target);
    opening.then(
      (conn) => {
        record.connecting = false;
        if (this.closed || record.removed) return conn.close();
        // UDP: no handshake, the client is raw and connected at once.
        if (target.transport === "udp") return this.bind(this.#newSession(conn, undefined, "raw"), record);
        if (this.#noDelay) conn.setNoDelay(true);
        const session = this.#newSession(conn, undefined, record);
        record.session = session;
        record.remoteAddr = conn.remoteAddr;
        session.queueOutput(record.keyword, true);
      },
      (err: Error) => {
        record.connecting = false;
        if (this.closed || record.removed) return;
        record.lastError = err;
        this.logger.warn?.(`Cannot connect client ${record.id}: ${err.message}`);
        this.board.emit(this.board.events.clientsWithDisconnectedConnection, record.id);
        this.outgoing.retryLater(record, err, false);
      },
    );
  }

  /** Sets a client's processor class, and attaches one now if it is connected. */
  setProcessor(record: ClientRecord, processorClass: InlineProcessorClass): void {
    record.processorClass = processorClass;
    const session = record.session;
    if (!session || session.phase !== Phase.open || session.processor) return;
    this.processors.attach(session, record);
    // Hand over what arrived before the processor existed: counted as input again until delivered.
    let items: (Uint8Array | FrameBatch)[] = [];
    if (!session.takesFrames) items = this.takeMessages(record);
    else while (record.unread > 0) items.push(this.takeFrames(record) ?? this.takeMessage(record)!);
    for (const item of items) {
      if (session.phase !== Phase.open) break;
      this.budget.received(item instanceof FrameBatch ? item.byteLength : item.length);
      session.toProcessor(item);
    }
  }

  /** Removes the client's unread messages up to the first raw chunk, as a batch (see `IoCore.takeFrames`). */
  takeFrames(record: ClientRecord): FrameBatch | undefined {
    const before = record.inboxCost;
    const batch = record.takeFrames(this.budget);
    if (batch !== undefined) this.#consumed(record, before - record.inboxCost);
    return batch;
  }

  /** Removes and returns the client's next unread message. */
  takeMessage(record: ClientRecord): Uint8Array | undefined {
    const before = record.inboxCost;
    const message = record.takeOne();
    if (message !== undefined) this.#consumed(record, before - record.inboxCost);
    return message;
  }

  /** Removes and returns every unread message of the client. */
  takeMessages(record: ClientRecord): Uint8Array[] {
    if (record.unread === 0) return [];
    const cost = record.inboxCost;
    const messages = record.takeAll();
    this.#consumed(record, cost);
    return messages;
  }

  #consumed(record: ClientRecord, cost: number): void {
    this.budget.consumed(record.session, cost, record.inboxBytes);
    record.session?.inputRead();
    if (record.kind === "unknown" && !record.session && record.unread === 0) this.forget(record);
  }

  /** A snapshot of the client (see `IoCore.getClientInfo`). */
  clientInfo(record: ClientRecord): ClientInfo {
    const session = record.session;
    let state: ClientConnectionState = "disconnected";
    if (record.connecting) state = "connecting";
    else if (session) {
      state = session.phase === Phase.open || session.phase === Phase.draining
        ? (session.closing ? "closing" : "connected")
        : "handshake";
    } else if (record.retryTimer !== undefined) state = "reconnecting";
    return {
      id: record.id,
      kind: record.kind,
      keyword: record.keyword,
      keywordText: utf8Decoder.decode(record.keyword),
      direction: record.connect ? "outgoing" : "incoming",
      state,
      remoteAddr: record.remoteAddr,
      proxyAddr: record.proxyAddr,
      listener: record.listener,
      raw: session ? session.raw : record.rawOnConnect,
      peerEnded: session ? session.peerEnded : false,
      unreadMessages: record.unread,
      unreadBytes: record.inboxBytes,
      queuedOutputBytes: session ? session.queuedOutputBytes : 0,
      lastError: record.lastError,
      reconnectAttempts: record.failures,
      nextAttemptInMs: record.retryTimer === undefined ? undefined : Math.max(0, record.retryAt - Date.now()),
    };
  }

  /** The client's open session, or a `ConnectionClosedError` naming `action`. */
  openSession(id: ClientId, action: string): Session {
    const session = this.registry.get(id)?.session;
    if (!session || session.phase !== Phase.open) {
      throw new ConnectionClosedError(`Cannot ${action}: client ${id} has no open connection`);
    }
    return session;
  }

  /** Closes the client's connection (if any) and forgets the client and its unread messages. */
  removeClient(record: ClientRecord): void {
    record.removed = true;
    this.outgoing.cancelRetry(record);
    record.session?.close();
    this.outgoing.dropOutbox(record);
    this.forget(record);
  }

  /** Forgets a client and releases its unread messages. */
  forget(record: ClientRecord): void {
    if (!this.registry.delete(record)) return;
    // The application never heard of it: drop its events, so a core that nobody polls (processors
    // only) does not collect the ids of every connection it ever had.
    this.board.forgetUnseen(record.id);
    this.budget.released(record.inboxCost);
    record.clearInbox();
    record.reader?.wake();
  }

  /** A session closed: the listener slot, the held keyword and the client's record are updated. */
  sessionClosed(
    session: Session,
    error: Error | undefined,
    wasConnecting: boolean,
    unsent: Uint8Array[],
  ): void {
    this.sessions.delete(session);
    if (session.listener) this.listeners.closed(session.listener);
    const held = session.held;
    if (held) {
      this.registry.held.delete(held.key);
      this.budget.released(held.inboxCost);
      session.releaseHeld();
    }
    const record = session.client;
    if (record && record.session === session) {
      record.session = undefined;
      if (error) record.lastError = error;
      if ((session.opened || wasConnecting) && !record.removed) {
        this.board.emit(this.board.events.clientsWithDisconnectedConnection, record.id);
      }
      const processor = session.processor;
      session.processor = undefined;
      if (processor) this.processors.lost(processor, record.id);
      if (record.kind === "unknown" && record.unread === 0) this.forget(record);
      if (record.connect && !record.reconnectHeld) {
        // Not handed to the transport yet: kept for the next connection, ahead of newer messages.
        if (unsent.length && record.reconnect && !record.removed && !this.closed) {
          this.outgoing.toOutbox(record, unsent, true);
        }
        this.outgoing.retryLater(record, error, session.opened);
      }
    }
    if (this.sessions.size === 0) {
      if (this.#idleTimer !== undefined) clearInterval(this.#idleTimer);
      this.#idleTimer = undefined;
      this.#allClosed?.();
    }
  }

  #startIdleSweep(): void {
    if (this.#idleTimer !== undefined) return;
    const idle = this.limits.idleTimeoutMs;
    this.#idleTimer = setInterval(() => {
      const now = Date.now();
      for (const session of this.sessions) {
        // Silence the core caused (a memory cap paused reading, output still in flight) is not idleness.
        if (now - session.lastActivity < idle || session.inflightBytes > 0 || session.readingPaused) continue;
        session.fail(
          new TimeoutError(
            `Closing idle connection from ${describeAddr(session.remoteAddr)} after ${idle} ms`,
          ),
        );
      }
    }, Math.max(10, Math.min(idle / 4, 1000)));
    (this.#idleTimer as { unref?: () => void }).unref?.();
  }

  // ---------------------------------------------------------------------------------------------
  // Sending (while away, through the outgoing clients' buffers)

  /** Queues one message for the client: on its open connection, or in its send buffer while away. */
  sendOne(id: ClientId, payload: Uint8Array): void {
    const record = this.registry.get(id);
    const to = udpTarget(record);
    if (to !== undefined) checkDatagramSize(payload.length, to, this.limits.maxMessageBytes);
    const session = record?.session;
    if (session !== undefined && session.phase === Phase.open) session.queueOutput(payload);
    else this.outgoing.sendWhileAway(id, record, [payload], "send message");
  }

  /** Queues several messages, in order, in one batch (all of them or, while away, none). */
  sendMany(id: ClientId, messages: Iterable<Uint8Array | string>): void {
    const record = this.registry.get(id);
    const to = udpTarget(record);
    if (to !== undefined) {
      messages = Array.from(messages);
      checkDatagramSizes(to, messages as (Uint8Array | string)[], this.limits.maxMessageBytes);
    }
    const session = record?.session;
    if (session !== undefined && session.phase === Phase.open) {
      if (Array.isArray(messages)) session.queueOutputs(messages);
      else for (const message of messages) session.queueOutput(toBytes(message));
    } else this.outgoing.sendWhileAway(id, record, Array.from(messages, toBytes), "send messages");
  }

  /** Queues a batch this core made: on the client's open connection, or while away as its messages. */
  sendFrames(id: ClientId, batch: FrameBatch): void {
    const record = this.registry.get(id);
    if (udpTarget(record) !== undefined) {
      throw new UnsupportedError(
        `Cannot send frames: client ${id} is a UDP client, whose datagrams are whole messages; use sendMessagesToClient`,
      );
    }
    const session = record?.session;
    if (session !== undefined && session.phase === Phase.open) return session.sendFrames(batch);
    const runs = frameBatchRuns(batch, this.budget, "send frames");
    this.outgoing.sendWhileAway(id, record, payloadViews(runs), "send frames");
    frameBatchSent(batch);
  }

  /** Memory and connection counters. */
  stats(): IoCoreStats {
    return {
      inputBytes: this.budget.inputBytes,
      outputBytes: this.budget.outputBytes,
      connections: this.sessions.size,
      clients: this.registry.size,
      heldConnections: this.registry.held.size,
      readingPaused: this.budget.readingPaused,
      udpClients: this.#datagrams.counters.peers,
      droppedUdpDatagrams: this.#datagrams.counters.dropped,
    };
  }

  /** Stops accepting: closes the listeners (removing UNIX socket files); connections stay. */
  async stopAccepting(): Promise<void> {
    this.#accepting = false;
    this.listeners.closeParked();
    await this.listeners.close();
  }

  /**
   * Stops accepting, then closes each connection once everything queued for it is written (and
   * outgoing clients no longer reconnect); after `timeoutMs` closes what is left, then the core.
   */
  shutdown(timeoutMs: number): Promise<void> {
    if (this.closed) return this.closedPromise;
    this.#shutdown ??= (async () => {
      await this.stopAccepting();
      this.outgoing.holdAll();
      for (const session of [...this.sessions]) {
        if (session.client?.connect) this.outgoing.hold(session.client);
        session.closeWhenFlushed();
      }
      if (this.sessions.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          (timer as { unref?: () => void }).unref?.();
          this.#allClosed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      await this.close();
    })();
    return this.#shutdown;
  }

  /**
   * Closes every connection, resolves a pending wait with the disconnections, ends the `messages()`
   * iterations, then stops the listeners (removing UNIX socket files). Every call returns the same
   * promise.
   */
  close(): Promise<void> {
    if (this.closed) return this.closedPromise;
    this.closed = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    // Connections first, synchronously, so a pending ioIteration gets every disconnection at once.
    for (const session of [...this.sessions]) session.close();
    this.listeners.closeParked();
    if (this.#idleTimer !== undefined) clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    for (const record of this.#readers) record.reader?.wake();
    this.outgoing.cancelAll();
    this.board.resolve();
    this.listeners.close().then(this.#resolveClosed);
    return this.closedPromise;
  }

  /**
   * Reads the client's inbox as an async iteration (see `IoCore.messages`). Reading from its
   * connection pauses while more than `highWaterMarkBytes` wait unread.
   */
  async *readMessages(
    record: ClientRecord,
    highWaterMarkBytes: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    if (record.reader) throw new TypeError(`Cannot read messages: client ${record.id} already has a reader`);
    let wake: (() => void) | undefined;
    const reader = {
      highWaterMarkBytes,
      wake: () => {
        const resolve = wake;
        wake = undefined;
        resolve?.();
      },
    };
    record.reader = reader;
    this.#readers.add(record);
    signal?.addEventListener("abort", reader.wake);
    try {
      for (;;) {
        signal?.throwIfAborted();
        const message = this.takeMessage(record);
        if (message !== undefined) {
          if (record.inboxBytes <= highWaterMarkBytes) record.session?.resumeReading(Pause.reader);
          yield message;
          continue;
        }
        if (this.closed || this.registry.get(record.id) !== record) return;
        await new Promise<void>((resolve) => wake = resolve);
      }
    } finally {
      signal?.removeEventListener("abort", reader.wake);
      if (record.reader === reader) record.reader = undefined;
      this.#readers.delete(record);
      record.session?.resumeReading(Pause.reader);
    }
  }
}

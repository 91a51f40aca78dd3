/**
 * {@linkcode Scheduler}: the parts of a core wired together. It admits connections (policies,
 * access rules, caps and parking), binds sessions to clients, connects out, and keeps the
 * registry, the event board and the memory budget in step. `IoCore` is its public face.
 *
 * @module
 */
import { authProof, importSecret, timingSafeEqual } from "../wire/auth.ts";
import { toBytes } from "../wire/bytes.ts";
import {
  ClientRecord,
  type ClientRegistration,
  ClientRegistry,
  keywordKey,
} from "../clients/client_registry.ts";
import { CallbackError, ConnectionClosedError, CoreClosedError } from "../errors.ts";
import { DatagramCounters, type DatagramPeersOptions } from "../udp/datagram_peers.ts";
import { EventBoard } from "./event_board.ts";
import type { KeywordVerdict } from "../wire/handshake.ts";
import { addrKnown, describeAddr } from "../wire/ip.ts";
import { ListenerSet } from "../admission/listener_set.ts";
import { MemoryBudget } from "./memory_budget.ts";
import type {
  AddClientOptions,
  IncomingConnectionInfo,
  IoCoreOptions,
  Logger,
  ResolvedLimits,
} from "../options.ts";
import { defaultLogger, resolveLimits } from "../option_tables.ts";
import { FlushScheduler } from "../connection/output.ts";
import type { FrameBatch } from "../wire/frame_batch.ts";
import type { InlineProcessorClass } from "../processor.ts";
import { ProcessorHost } from "./processor_host.ts";
import { clientSnapshot } from "./client_info.ts";
import { IdleSweep } from "./idle_sweep.ts";
import { InboxReading } from "./inbox_reading.ts";
import { Connector } from "./connector.ts";
import { Sender } from "./sending.ts";
import { KeywordRouter } from "./keyword_router.ts";
import { OutgoingClients } from "../clients/outgoing.ts";
import { resolveReconnect } from "../clients/reconnect.ts";
import { compileRules } from "../admission/rules.ts";
import {
  Gate,
  type Incoming,
  incomingInfo,
  isHttpRequest,
  isWebSocket,
  needsSecret,
} from "../admission/gate.ts";
import { type AdmissionPolicy, admissionPolicy, keywordVerdict, routeIncoming } from "../admission/admit.ts";
import { Phase, Session, type SessionHost, streamThresholdOf } from "../connection/session.ts";
import { resolveTransport } from "./transport_slot.ts";
import type { Addr, Connection, Transport } from "../../transports/types.ts";
import type { ClientId, ClientInfo, IoCoreStats, Keyword, ListenerInfo } from "../types.ts";
import { unrefTimer } from "../timer.ts";

const incomingOf = (session: Session): Incoming => ({
  conn: session.conn,
  listener: session.listener!,
  remoteAddr: session.remoteAddr,
  proxyAddr: session.proxyAddr,
});
const utf8Decoder = new TextDecoder();

/**
 * The core's parts and the logic between them; every public `IoCore` method lands here.
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
  /** Reading the clients' inboxes, and what reading frees. */
  readonly inbox: InboxReading;
  /** Outgoing clients: their send buffers and their retries. */
  readonly outgoing: OutgoingClients;
  /** Outgoing clients: their connection attempts. */
  readonly connector: Connector;
  /** What the application sends. */
  readonly sender: Sender;
  /** Sends by keyword, here or through the cluster. */
  readonly router: KeywordRouter;
  /** False once `stopAccepting` (or `shutdown`) began: accepted connections are closed. */
  #accepting = true;
  #shutdown: Promise<void> | undefined = undefined;
  /** Called when the last session closes, while `shutdown` waits for it. */
  #allClosed: (() => void) | undefined = undefined;
  readonly #rawConnection: ((info: IncomingConnectionInfo) => boolean) | undefined;
  readonly #policy: AdmissionPolicy;
  readonly #gate: Gate;
  /** What every unknown client is registered with (one object for all of them). */
  readonly #unknownRegistration: ClientRegistration;
  readonly #streamThreshold: number | undefined;
  readonly #noDelay: boolean;
  /** Closes idle connections, when `limits.idleTimeoutMs` is set. */
  readonly #idleSweep: IdleSweep | undefined;
  /** UDP: what every socket's peers share (the counters, the caps). */
  readonly #datagrams: DatagramPeersOptions;

  /** Checks the options and builds the parts; nothing is bound yet. */
  constructor(options: IoCoreOptions) {
    this.transport = resolveTransport(options.transport);
    this.logger = options.logger === null ? {} : options.logger ?? defaultLogger;
    this.limits = resolveLimits(options.limits, this.transport.name, this.logger);
    this.#rawConnection = options.rawConnection;
    this.#policy = admissionPolicy(options);
    this.#gate = new Gate(this.logger);
    this.#unknownRegistration = { raw: true, processorClass: options.unknownClientProcessor, unknown: true };
    this.#noDelay = options.noDelay ?? true;
    this.listeners = new ListenerSet(options.listeners ?? [], {
      max: this.limits.maxParkedConnections,
      timeoutMs: this.limits.handshakeTimeoutMs,
      logger: this.logger,
    }, { ...this.limits, heldInput: (d, to) => this.budget.assembling(d, to as Session | undefined) });
    this.tracksIdle = this.limits.idleTimeoutMs > 0;
    this.#idleSweep = this.tracksIdle ? new IdleSweep(this.limits.idleTimeoutMs, this.sessions) : undefined;
    this.#datagrams = {
      counters: new DatagramCounters(),
      maxPeers: this.limits.maxUdpClients,
      idleTimeoutMs: this.limits.udpIdleTimeoutMs,
      maxMessageBytes: this.limits.maxMessageBytes,
    };
    this.budget = new MemoryBudget(this.limits.inputBytes, this.limits.outputBytes, () => {
      if (this.listeners.parkedCount) this.#unpark();
    });
    this.board = new EventBoard((id) => this.registry.hasUnread(id), (id) => this.registry.streamIsNext(id));
    this.#streamThreshold = options.streamThresholdBytes;
    this.processors = new ProcessorHost(this.logger, this.budget);
    this.inbox = new InboxReading(this.budget, {
      isClosed: () => this.closed,
      isRegistered: (record) => this.registry.get(record.id) === record,
      forget: (record) => this.forget(record),
      streamIsNext: (record) => this.board.emit(this.board.events.clientsHaveMessageStream, record.id),
    });
    this.outgoing = new OutgoingClients(this.budget, this.logger, {
      isClosed: () => this.closed,
      connect: (record) => this.connector.connect(record),
      abandoned: (record) => this.connector.abandoned(record),
    });
    this.connector = new Connector({
      transport: this.transport,
      limits: this.limits,
      logger: this.logger,
      board: this.board,
      outgoing: this.outgoing,
      datagrams: this.#datagrams,
      noDelay: this.#noDelay,
      isClosed: () => this.closed,
      newSession: (conn, listener, start) => this.#newSession(conn, listener, start),
      bind: (session, record) => this.bind(session, record),
    });
    this.sender = new Sender(this.registry, this.outgoing, this.budget, this.limits.maxMessageBytes);
    this.router = new KeywordRouter({
      registry: this.registry,
      cluster: options.cluster,
      logger: this.logger,
      sendMany: (id, messages) => this.sender.sendMany(id, messages, "send messages to keyword"),
      maxMessageBytes: this.limits.maxMessageBytes,
      replaceDuplicates: this.#policy.replaceDuplicates,
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
    // Its listeners would close every connection they accept.
    if (!this.#accepting) {
      throw new TypeError("Cannot listen: the core stopped accepting (stopAccepting or shutdown)");
    }
    return this.listeners.bind(
      this.transport,
      (conn, listener) => this.#accept(conn, listener),
      this.#datagrams,
    );
  }

  /** Room for one more connection in the core (over the input cap, it stops accepting too). */
  #coreHasRoom = (): boolean => this.sessions.size < this.limits.maxConnections && !this.budget.overInput;

  #accept(conn: Connection, listener: ListenerInfo): void {
    if (this.closed || !this.#accepting) return conn.close();
    // Parking is per listener: a full admin listener holds back its own connections only.
    const listeners = this.listeners;
    if (!this.#coreHasRoom() || !listeners.hasRoom(listener) || listeners.hasParked(listener)) {
      listeners.park(conn, listener);
    } else this.#admit(conn, listener);
  }

  #unpark(): void {
    if (!this.closed) {
      this.listeners.unpark(this.#coreHasRoom, (conn, listener) => this.#admit(conn, listener));
    }
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
    const predicate = this.#rawConnection;
    // A UDP address has no handshake: it is always a raw unknown client.
    const raw = peer.remoteAddr.transport === "udp" || isHttpRequest(conn)
      ? true
      : predicate
      ? this.#gate.guarded("rawConnection", peer, () => predicate(incomingInfo(peer)))
      : false;
    if (raw instanceof CallbackError) return session ? session.close(raw) : conn.close();
    const route = routeIncoming(this.#policy, raw, () => this.#gate.allowed(this.#policy.unknownRules, peer));
    if (route === "handshake") {
      if (session) return session.beginHandshake();
      const accepting = this.#newSession(conn, listener, "accepting");
      if (this.limits.handshakeTimeoutMs > 0) accepting.startHandshakeTimer(this.limits.handshakeTimeoutMs);
      return;
    }
    if (route === "refuse") {
      this.logger.info?.(`Refused unknown client from ${describeAddr(peer.remoteAddr)} on ${listener.name}`);
      return session ? session.close() : conn.close();
    }
    const id = this.registry.nextId();
    const record = new ClientRecord(id, "unknown", undefined, this.#unknownRegistration);
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
    this.#idleSweep?.start();
    conn.setHandler(session);
    return session;
  }

  /** The accepting side's keyword policy (see `KeywordPolicy`). */
  keywordVerdict(session: Session, keyword: Uint8Array, authenticated: boolean): KeywordVerdict {
    const key = keywordKey(keyword);
    return keywordVerdict(
      this.#policy,
      this.registry.byKeyword(key),
      this.registry.held.has(key),
      authenticated,
      needsSecret(session.conn),
      (rules) => this.#gate.allowed(rules, incomingOf(session), keyword),
    );
  }

  /** The handshake admitted a registered keyword. */
  admitNamed(session: Session, keyword: Uint8Array): void {
    // Nobody registered it: `acceptUnexpectedKeywords: "adopt"` registers it now.
    const record = this.registry.byKeyword(keywordKey(keyword)) ??
      new ClientRecord(this.registry.nextId(), "expected", keyword.slice(), { adopted: true });
    if (record.adopted) this.registry.add(record);
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
    record.bound(session);
    session.open();
    const events = this.board.events;
    this.board.emit(
      record.kind === "unknown" ? events.newlyConnectedUnknownClients : events.newlyConnectedExpectedClients,
      record.id,
    );
    if (record.unread > 0) this.board.emit(events.clientsHaveDataToRead, record.id);
    if (record.kind === "expected") this.router.held(record);
    if (record.rawOnConnect && !isWebSocket(session.conn)) session.setRaw(true);
    if (record.connect) {
      this.outgoing.attemptEnded(record);
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
        !this.#gate.allowed(rules ?? this.#policy.defaultRules, incomingOf(held), keyword))
    ) {
      // The held connection never proved the secret, or this client's rules refuse it.
      this.logger.info?.(
        `Closing held connection for ${utf8Decoder.decode(keyword)}: not admitted by addClient`,
      );
      held.close();
      held = undefined;
    }
    const secretKey = options.secret === undefined ? undefined : importSecret(options.secret);
    secretKey?.catch(() => {}); // reported where it is awaited
    const record = new ClientRecord(id, "expected", keyword, {
      connect: options.connect,
      // A UDP client is raw whatever `raw` says: a datagram is one whole message.
      raw: options.connect?.transport === "udp" || (options.raw ?? false),
      processorClass: options.processor,
      rules,
      secretKey,
      reconnect: options.connect ? resolveReconnect(options.reconnect) : undefined,
      streamThresholdBytes: options.streamThresholdBytes ?? this.#streamThreshold,
    });
    if (held) {
      // Adopt the held connection: it already got OK; its messages move from the provisional inbox.
      record.adoptInbox(held.held!);
      this.registry.held.delete(key);
      held.releaseHeld();
    }
    this.registry.add(record);
    if (held) this.bind(held, record);
    else if (record.connect) this.connector.connect(record);
    if (!held && record.connect) this.router.held(record);
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

  /** Sets a client's processor class, and attaches one now if it is connected. */
  setProcessor(record: ClientRecord, processorClass: InlineProcessorClass): void {
    record.processorChanged(processorClass);
    const session = record.session;
    if (!session || session.phase !== Phase.open || session.processor) return;
    session.streamThreshold(streamThresholdOf(record)); // whole messages, unless it has onMessageStream
    this.processors.attach(session, record);
    // Unless it threw (then what is unread stays for the application), it gets what arrived before it.
    if (session.phase === Phase.open) this.inbox.handOver(record, session);
  }

  /** Removes the client's unread messages up to the first raw chunk, as a batch (see `IoCore.takeFrames`). */
  takeFrames(record: ClientRecord): FrameBatch | undefined {
    return this.inbox.takeFrames(record);
  }

  /** Removes and returns the client's next unread message. */
  takeMessage(record: ClientRecord): Uint8Array | undefined {
    return this.inbox.takeMessage(record);
  }

  /** Removes and returns every unread message of the client. */
  takeMessages(record: ClientRecord): Uint8Array[] {
    return this.inbox.takeMessages(record);
  }

  /** A snapshot of the client (see `IoCore.getClientInfo`). */
  clientInfo(record: ClientRecord): ClientInfo {
    return clientSnapshot(record, this.outgoing.nextAttemptAt(record));
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
    record.markRemoved();
    this.router.letGo(record, true);
    this.outgoing.removed(record);
    record.session?.close();
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
      record.unbound(error);
      if (record.kind === "expected") this.router.letGo(record, record.removed);
      if (record.connect) this.outgoing.attemptEnded(record);
      if ((session.opened || wasConnecting) && !record.removed) {
        this.board.emit(this.board.events.clientsWithDisconnectedConnection, record.id);
      }
      this.processors.lost(session, record.id);
      if ((record.kind === "unknown" || record.adopted) && record.unread === 0) this.forget(record);
      if (record.connect && !record.reconnectHeld) {
        // Not handed to the transport yet: kept for the next connection, ahead of newer messages.
        if (unsent.length && record.reconnect && !record.removed && !this.closed) {
          this.outgoing.toOutbox(record, unsent, true);
        }
        this.outgoing.retryLater(record, error, session.opened);
      }
    }
    if (this.sessions.size === 0) {
      this.#idleSweep?.stop();
      this.#allClosed?.();
    }
  }

  /** Memory and connection counters. */
  stats(): IoCoreStats {
    const cluster = this.router.stats();
    return {
      ...(cluster && { cluster }),
      inputBytes: this.budget.inputBytes,
      outputBytes: this.budget.outputBytes,
      connections: this.sessions.size,
      clients: this.registry.size,
      heldConnections: this.registry.held.size,
      parkedConnections: this.listeners.parkedCount,
      droppedConnections: this.listeners.droppedCount,
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

  /** Stops accepting; closes each connection once its output is written, the rest after `timeoutMs`. */
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
          const timer = unrefTimer(setTimeout(resolve, timeoutMs));
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
   * Closes every connection, resolves a pending wait, ends the `messages()` iterations, leaves the
   * cluster, then stops the listeners (removing UNIX socket files). Every call gets the same promise.
   */
  close(): Promise<void> {
    if (this.closed) return this.closedPromise;
    this.closed = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    // Connections first, synchronously, so a pending ioIteration gets every disconnection at once.
    for (const session of [...this.sessions]) session.close();
    this.listeners.closeParked();
    this.#idleSweep?.stop();
    this.inbox.wakeAll();
    this.outgoing.cancelAll();
    this.board.resolve();
    const detached = this.router.detach().catch((err) =>
      this.logger.error?.("Cannot leave the cluster", err)
    );
    Promise.all([this.listeners.close(), detached]).then(this.#resolveClosed);
    return this.closedPromise;
  }
}

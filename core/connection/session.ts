/**
 * {@linkcode Session}: one connection and everything the core tracks for it. It is the transport's
 * `ConnectionHandler` itself: it drives the handshake, decodes frames (or passes raw chunks), queues
 * output, and closes, gracefully or at once.
 *
 * @module
 */
import type { Addr, Connection, ConnectionHandler } from "../../transports/types.ts";
import type { ClientRecord } from "../clients/client_registry.ts";
import { FRAME_HEADER_BYTES, FrameDecoder } from "../wire/codec.ts";
import { decoderLimits } from "../wire/decode_options.ts";
import { refuseModeSwitch } from "./websocket_connection.ts";
import { HandshakeDriver } from "./session_handshake.ts";
import { describeAddr } from "../wire/ip.ts";
import { OutputKind } from "./output.ts";
import { OutputQueue } from "./output_queue.ts";
import type { Processor } from "../processor.ts";
import { NO_PROCESSOR, type ProcessorState } from "../engine/processor_state.ts";
import { type FrameBatch, frameBatchRuns, frameBatchSent } from "../wire/frame_batch.ts";
import type { ListenerInfo } from "../types.ts";
import { closeOnInternalError, Deadline, logClosedBeforeProxyHeader, Pause, Phase } from "./session_phase.ts";
import { describeSession, SessionRare, State } from "./session_phase.ts";

/** The phase bits of a session's flags (`State.phase`, as a literal the JIT folds in). */
const PHASE = 7;
import { Delivery } from "./delivery.ts";
import { HalfOpen } from "./half_open.ts";
import type { SessionHost } from "./session_host.ts";
import { type InboundStream, StreamReceiver, streamThresholdOf } from "./message_stream.ts";
import { refuseRawMidStream } from "./message_stream.ts";

export { Pause, Phase, type SessionHost, streamThresholdOf };

/**
 * One connection: the handshake, the decode loop, the output queue and the close lifecycle. Nothing
 * it does may throw into the runtime's event loop: every transport callback is guarded.
 */
export class Session implements ConnectionHandler {
  readonly listener: ListenerInfo | undefined;
  readonly #host: SessionHost;
  /** The {@linkcode Phase} (`State.phase` bits), {@linkcode Pause} bits and {@linkcode State} bits: one field. */
  #flags: number = Phase.proxyHeader;
  /** The open connection's frame decoder. */
  #decoder: FrameDecoder | undefined = undefined;
  #client: ClientRecord | undefined = undefined;
  /** The processor and where its callbacks stand (shared and frozen without one); `ProcessorHost` writes it. */
  processing: ProcessorState = NO_PROCESSOR;
  /** Where decoded input goes: the processor or the inbox. */
  readonly #delivery: Delivery;
  readonly output: OutputQueue; // written by the session, and by a message stream's sender
  /** True while output is queued and not yet handed to the transport (set by the `FlushScheduler`). */
  dirty = false;
  #lastActivity = 0;
  /** The handshake driver, timer, half-open state, held record and close error, while any is set. */
  #rare: SessionRare | undefined = undefined;
  #streams: StreamReceiver | undefined = undefined; // streamed messages, when a threshold applies

  /**
   * A session for `conn`: `"proxy"` reads a PROXY header first, `"accepting"` and an outgoing client's
   * record start a handshake, `"raw"` is open at once for an unknown raw client; reads after `setHandler`.
   */
  constructor(
    host: SessionHost,
    conn: Connection,
    listener: ListenerInfo | undefined,
    start: "proxy" | "accepting" | "raw" | ClientRecord,
  ) {
    this.#host = host;
    this.#delivery = new Delivery(this, host);
    this.listener = listener;
    this.output = new OutputQueue(conn, typeof start === "object" && start.reconnect !== undefined, this);
    if (start === "raw") this.beginRaw();
    else if (start === "accepting") this.beginHandshake();
    else if (start === "proxy") this.#driver().expectProxyHeader();
    else {
      this.#enter(Phase.connecting);
      this.#client = start;
      this.#driver().beginClient(start);
    }
    if (host.tracksIdle) this.#lastActivity = Date.now();
  }

  /** Starts the accepting side's keyword handshake. */
  beginHandshake(): void {
    this.#enter(Phase.accepting);
    this.#driver().beginServer();
  }

  #driver(): HandshakeDriver {
    const rare = this.#rare ??= new SessionRare();
    return rare.driver ??= new HandshakeDriver(this, this.#host, rare.deadline ??= new Deadline());
  }

  /** Enters `phase` (the low bits of the flags: see {@linkcode State}). */
  #enter(phase: Phase): void {
    this.#flags = (this.#flags & ~State.phase) | phase;
  }

  /** The connection (kept by the output queue: one field fewer here). */
  get conn(): Connection {
    return this.output.conn;
  }

  /** Opens the session at once as an unknown raw client's. */
  beginRaw(): void {
    this.#enter(Phase.open);
    this.output.track();
    this.#flags |= State.opened | State.raw; // its decoder is made if bytes come with a PROXY header, or it turns framed
  }

  /** The connection's processor, if one is attached. */
  get processor(): Processor | undefined {
    return this.processing.processor;
  }

  /** The frame decoder, made at the first framed input: an idle connection has none. */
  #framed(): FrameDecoder {
    if (this.#decoder) return this.#decoder;
    this.#decoder = new FrameDecoder(decoderLimits(this.#host.limits, this.#streams?.threshold));
    if (this.conn.reusesReadMemory) this.#decoder.copyLargeFrames(); // see `Connection.reusesReadMemory`
    return this.#decoder;
  }

  /** The peer's address: the original client's behind a trusted balancer, else the connection's. */
  get remoteAddr(): Addr {
    return this.#rare?.driver?.proxiedRemote ?? this.conn.remoteAddr;
  }

  /** Behind a trusted balancer: the balancer's address (the connection's own peer). */
  get proxyAddr(): Addr | undefined {
    return this.#rare?.driver?.proxyAddr;
  }

  /** Where the session stands. */
  get phase(): Phase {
    return (this.#flags & PHASE) as Phase;
  }

  /** True once the session was bound to a client (or held) and open. */
  get opened(): boolean {
    return (this.#flags & State.opened) !== 0;
  }

  /** True while the connection carries raw bytes. */
  get raw(): boolean {
    return (this.#flags & State.raw) !== 0;
  }

  /** The client the session is bound to (an outgoing client's from the start). */
  get client(): ClientRecord | undefined {
    return this.#client;
  }

  /** The provisional record of a held unexpected keyword, until `addClient` adopts the session. */
  get held(): ClientRecord | undefined {
    return this.#rare?.held;
  }

  /** When the session last read or wrote (stamped only while `limits.idleTimeoutMs` is set). */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** Binds the session to `record` (see `SessionHost.bind`); it opens next. */
  attach(record: ClientRecord): void {
    this.#client = record;
    this.streamThreshold(streamThresholdOf(record)); // a held connection adopted: from its next frame
  }

  /** Holds the session for an unexpected keyword, whose input `record` keeps; it opens next. */
  holdFor(record: ClientRecord): void {
    (this.#rare ??= new SessionRare()).held = record;
  }

  /** Forgets the held keyword's record: `addClient` adopted it, or the session closed. */
  releaseHeld(): void {
    if (this.#rare !== undefined) this.#rare.held = undefined;
  }

  /** Bytes that arrived with the PROXY header, for the decoder of a session that opened raw. */
  pushUndecoded(bytes: Uint8Array): void {
    this.#framed().push(bytes);
  }

  /** True once closed. */
  get closed(): boolean {
    return (this.#flags & PHASE) === Phase.closed;
  }

  /** Output queued or in flight for this connection. */
  get queuedOutputBytes(): number {
    return this.output.queuedBytes + this.output.inflightBytes;
  }

  /** True while closing: gracefully, or draining after a refusal or failure. */
  get closing(): boolean {
    return this.#is(State.closingGracefully | State.closeAfterFlush) || this.phase === Phase.draining;
  }

  #is(state: number): boolean {
    return (this.#flags & state) !== 0;
  }

  /** True once the peer ended its side (half-close). */
  get peerEnded(): boolean {
    return (this.#flags & State.peerEnded) !== 0;
  }

  /** True while reading is paused for `reason`. */
  pausedFor(reason: Pause): boolean {
    return (this.#flags & reason) !== 0;
  }

  /** True while reading is paused for any reason (silence the core caused is not idleness). */
  get readingPaused(): boolean {
    return (this.#flags & State.paused) !== 0;
  }

  /** Stops reading for `reason`. */
  pauseReading(reason: Pause): void {
    if ((this.#flags & State.paused) === 0 && !this.closed) this.conn.pauseReading();
    this.#flags |= reason;
  }

  /** Lifts `reason`; reading resumes once no reason is left. */
  resumeReading(reason: Pause): void {
    if ((this.#flags & reason) === 0) return;
    this.#flags &= ~reason;
    if ((this.#flags & State.paused) !== 0 || this.closed) return;
    this.#lastActivity = Date.now();
    this.conn.resumeReading();
  }

  /** Closes an accepting session that has not finished its handshake (PROXY header included) within `ms`. */
  startHandshakeTimer(ms: number): void {
    this.#driver().startTimer(ms);
  }

  // ConnectionHandler: nothing thrown here may reach the runtime's event loop. --------------------

  /**
   * A chunk arrived. Returns a number when nothing keeps `chunk` (copied into a large message being
   * received): that message's bytes still to come. Only then may the transport reuse its memory, so
   * a `FrameBatch`, which holds only chunks that were kept, never sees its bytes overwritten.
   */
  onData(chunk: Uint8Array): number | undefined {
    try {
      return this.#receive(chunk);
    } catch (err) {
      this.#internalError(err);
      return undefined;
    }
  }

  /** Everything written so far reached the kernel. */
  onDrain(): void {
    try {
      this.#drained();
    } catch (err) {
      this.#internalError(err);
    }
  }

  /**
   * The peer half-closed. An open accepted connection stays writable, so the application can still answer
   * (see {@linkcode Session.inputRead}); any other delivers what is queued, then closes.
   */
  onEnd(): void {
    try {
      if (this.closed) return;
      this.#flags |= State.peerEnded;
      this.#streams?.close(undefined); // a stream cut short can never complete
      if (this.phase === Phase.proxyHeader) logClosedBeforeProxyHeader(this, this.#host.logger);
      if ((this.#flags & State.closingGracefully) !== 0) this.close();
      else if (this.listener !== undefined && this.phase === Phase.open && !this.#is(State.closeAfterFlush)) {
        const rare = this.#rare ??= new SessionRare();
        rare.halfOpen = new HalfOpen(this, rare.deadline ??= new Deadline());
        rare.halfOpen.start(this.#host.limits.halfOpenTimeoutMs, this.processor !== undefined);
      } else this.closeWhenFlushed();
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** The transport closed the connection. */
  onClose(error?: Error): void {
    try {
      if (this.phase === Phase.proxyHeader) logClosedBeforeProxyHeader(this, this.#host.logger);
      this.#finalize(error);
    } catch (err) {
      this.#host.logger.error?.("Internal error while closing a connection", err);
    }
  }

  // Input -----------------------------------------------------------------------------------------

  /** The hot path: data in, whole frames out, delivered; a processor's answers written at the end. */
  #receive(chunk: Uint8Array): number | undefined {
    const phase = this.#flags & PHASE;
    if (phase >= Phase.draining) return undefined;
    const host = this.#host;
    if (host.tracksIdle) this.#lastActivity = Date.now();
    const budget = host.budget;
    budget.received(chunk.length);
    let givenBack = false;
    let lent = -1;
    let decoder = this.#decoder;
    // A processor's answers to this chunk go out at its end, as one write, not a microtask later.
    const answersNow = this.processor !== undefined;
    const flusher = host.flusher;
    if (answersNow) flusher.reading = this;
    try {
      if (phase !== Phase.open) this.#rare!.driver!.push(chunk);
      else if ((this.#flags & State.raw) !== 0) this.#delivery.message(chunk, true);
      else if (!(givenBack = (decoder ??= this.#framed()).absorb(chunk))) {
        if (this.conn.reusesReadMemory) lent = decoder.lentViews;
        decoder.push(chunk);
      }
      if ((this.#flags & State.raw) === 0 || phase !== Phase.open) this.#decode();
      // Read to its end and no view made of it (its frames were copied): its memory may be reused.
      if (lent >= 0 && decoder!.lentViews === lent) givenBack = true;
    } finally {
      if (answersNow) flusher.reading = undefined;
    }
    if (this.dirty && (answersNow || this.processor)) this.flushNow();
    budget.afterInput(this, this.#decoder?.partialFrameMissingBytes);
    // A stream copying its pieces (see `StreamReceiver`) copies the rest of its message as it comes too.
    return givenBack ? decoder!.partialFrameMissingBytes || decoder!.streamRemainingBytes : undefined;
  }

  /** Decodes what is buffered: handshake decisions first, then whole frames or raw bytes. */
  #decode(): void {
    const host = this.#host;
    const budget = host.budget;
    while ((this.#flags & PHASE) < Phase.draining) {
      if ((this.#flags & PHASE) !== Phase.open) {
        // An asynchronous handshake step (busy) is under way only before the session opens.
        const driver = this.#rare!.driver!;
        if (driver.busy || !driver.step()) return;
        continue;
      }
      const decoder = this.#decoder;
      if ((this.#flags & State.raw) !== 0) {
        const rest = decoder?.takeBuffered();
        if (rest?.length) this.#delivery.message(rest, true);
        return;
      }
      if (decoder === undefined) return; // nothing arrived since the handshake
      if (this.#streams !== undefined && !this.#streams.pump(decoder)) return;
      if (this.processing.takesFrames) return this.#delivery.batch(decoder);
      const record = this.#client;
      if (record !== undefined && this.processor === undefined) {
        // The common case, many whole frames in one chunk for a polled client: one pass, one event,
        // and the frames kept as they came (views of single messages are made when read).
        const frames = decoder.takeWholeFrames();
        if (frames !== undefined) {
          const count = decoder.takenFrameCount;
          budget.stored(
            frames.length,
            record.pushFrames(frames, count, frames.length - FRAME_HEADER_BYTES * count),
          );
          host.board.emit(host.board.events.clientsHaveDataToRead, record.id);
          if (record.reader !== undefined) this.#delivery.notifyReader(record);
        }
      }
      let message: Uint8Array | undefined;
      try {
        message = decoder.next();
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      if (message === undefined) {
        if (decoder.streamRemainingBytes === 0) return;
        continue; // a streamed message began: pump it
      }
      budget.released(FRAME_HEADER_BYTES);
      this.#delivery.message(message, false);
    }
  }

  /** Decodes what is buffered now (after an asynchronous handshake step, say). */
  decodeNow(): void {
    this.#decode();
  }

  /** Runs `step`; an exception closes this connection, as an internal error. */
  guarded(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** Hands one message or batch (counted as input) to the processor, in order (see `Delivery`). */
  toProcessor(message: Uint8Array | FrameBatch | InboundStream): void {
    this.#delivery.toProcessor(message);
  }

  /** The pending callback settled: deliver what waited, until one goes asynchronous again. */
  callbackSettled(): void {
    if (!this.#delivery.settled()) return;
    this.resumeReading(Pause.callback);
    this.inputRead();
  }

  /** Leaves the handshake: from now on frames may be as large as `maxMessageBytes`. */
  open(): void {
    if (this.phase === Phase.open) return;
    this.#enter(Phase.open);
    this.#flags |= State.opened;
    this.output.track();
    const rare = this.#rare;
    rare?.deadline?.clear();
    this.streamThreshold(streamThresholdOf(this.#client));
    const rest = rare?.driver?.finish();
    if (rare?.opened() === true) this.#rare = undefined; // nothing left in it (no PROXY addresses)
    if (rest?.length) this.#framed().push(rest);
  }

  /** Delivers frames over `threshold` as streams from now on (`undefined`: whole, for a processor). */
  streamThreshold(threshold: number | undefined): void {
    this.#decoder?.setStreamThreshold(threshold);
    if (threshold !== undefined) this.#streams ??= new StreamReceiver(this, this.#host);
    if (this.#streams !== undefined) this.#streams.threshold = threshold; // kept there: one field fewer here
  }

  /** Switches between framed and raw (UDP stays raw); the undecoded rest is re-read in the new mode. */
  setRaw(raw: boolean): void {
    if (this.raw === raw || this.closed) return;
    refuseModeSwitch(this.conn, raw);
    refuseRawMidStream(raw, this.#streams?.pending, this.output.streaming, describeAddr(this.remoteAddr));
    this.#flags = raw ? this.#flags | State.raw : this.#flags & ~State.raw;
    if (!raw) this.#framed();
    if (raw && this.phase === Phase.open && (this.#decoder?.bufferedBytes ?? 0) > 0) {
      queueMicrotask(() => {
        if (this.raw && this.phase === Phase.open) this.guarded(() => this.#decode());
      });
    }
  }

  // Output ----------------------------------------------------------------------------------------

  /** Queues one payload: framed, or raw bytes. Written at the end of the tick. */
  queueOutput(payload: Uint8Array, framed = (this.#flags & State.raw) === 0): void {
    if ((this.#flags & PHASE) === Phase.closed) return;
    this.#queued(this.output.push(payload, framed ? OutputKind.framed : OutputKind.raw));
  }

  /** Queues a batch this core made as its bytes (no copy; raw mode too); else throws a `TypeError`. */
  sendFrames(batch: FrameBatch): void {
    const runs = frameBatchRuns(batch, this.#host.budget, "send frames");
    frameBatchSent(batch);
    if (this.closed || batch.count === 0) return;
    this.#queued(this.output.pushRuns(runs, batch.byteLength));
  }

  /** {@linkcode queueOutput} for a batch, one accounting update; `OutputQueue.pushMany`'s refusal, or 0. */
  queueOutputs(messages: readonly unknown[]): number {
    if (this.closed || messages.length === 0) return 0;
    const bytes = this.output.pushMany(messages, (this.#flags & State.raw) === 0);
    if (bytes >= 0) this.#queued(bytes);
    return Math.min(bytes, 0);
  }

  #queued(bytes: number): void {
    // Queuing may have written earlier output of another kind, and that write may have closed it.
    if ((this.#flags & PHASE) === Phase.closed) return;
    this.#host.budget.queued(bytes, this);
    this.#host.flusher.markDirty(this);
  }

  /** Hands the queued output to the transport now. */
  flushNow(): void {
    this.dirty = false;
    if ((this.#flags & PHASE) !== Phase.closed) this.output.write();
    if (this.#is(State.closeAfterFlush) && this.output.inflightBytes === 0) this.#beginGracefulClose();
  }

  #drained(): void {
    if (this.closed) return;
    const host = this.#host;
    if (host.tracksIdle) this.#lastActivity = Date.now();
    host.budget.written(this.output.drained());
    host.budget.relieve();
    if (this.dirty) return;
    const record = this.#client;
    if (record && (this.#flags & PHASE) === Phase.open) {
      // A processor hears of it through onOutputBuffersAreEmpty (waking ioIteration per write would cost).
      if (!this.processor) host.board.emit(host.board.events.clientsWithEmptyOutputFifo, record.id);
      else host.processors.drained(this);
    }
    if ((this.#flags & State.closeAfterFlush) !== 0 && !this.dirty) this.#beginGracefulClose();
    else this.#rare?.halfOpen?.check();
  }

  // Closing ---------------------------------------------------------------------------------------

  /** Closes once everything queued has been written (and the peer had time to close). */
  closeWhenFlushed(): void {
    if (this.closed) return;
    this.#flags |= State.closeAfterFlush;
    if (!this.dirty && this.output.inflightBytes === 0) this.#beginGracefulClose();
  }

  /** Ignores further input, writes what is queued, then closes with `error` as the client's `lastError`. */
  drainAndClose(error: Error): void {
    if (this.closed) return;
    (this.#rare ??= new SessionRare()).closeError ??= error;
    this.#stopReading();
    this.closeWhenFlushed();
  }

  /** Closes because of an error, which becomes the client's `lastError`; logged unless `log` is false. */
  fail(error: Error, log = true): void {
    if (this.closed) return;
    if (log) {
      this.#host.logger.warn?.(`Closing connection from ${describeAddr(this.remoteAddr)}: ${error.message}`);
    }
    this.close(error);
  }

  /** Closes now; unwritten output is discarded. */
  close(error?: Error): void {
    if (this.closed) return;
    this.#finalize(error);
    this.conn.close();
  }

  /** Refuses the handshake: logs `reason`, writes `reply`, then closes. */
  refuse(reason: string, reply: Uint8Array): void {
    this.#host.logger.info?.(`Refused connection from ${describeSession(this)}: ${reason}`);
    this.#stopReading();
    this.queueOutput(reply, true);
    this.closeWhenFlushed();
  }

  /** Enters the draining phase: buffered input is dropped and nothing more is read. */
  #stopReading(): void {
    if (this.phase >= Phase.draining) return;
    this.#enter(Phase.draining);
    this.#rare?.deadline?.clear();
    // Input is ignored from now on, but the peer's close must still be seen.
    if ((this.#flags & State.paused) !== 0) {
      this.#flags &= ~State.paused;
      this.conn.resumeReading();
    }
    const budget = this.#host.budget;
    budget.released(this.#rare?.driver?.discard() ?? 0);
    if (this.#decoder) budget.released(this.#decoder.takeBuffered().length);
  }

  #beginGracefulClose(): void {
    if ((this.#flags & State.closingGracefully) !== 0 || this.closed) return;
    this.#flags |= State.closingGracefully;
    if ((this.#flags & State.peerEnded) !== 0) return this.close();
    this.conn.closeWrite();
    const rare = this.#rare ??= new SessionRare();
    (rare.deadline ??= new Deadline()).set(this.#host.limits.closeTimeoutMs, () => this.close());
  }

  /** The application read this connection's input: a half-open connection may be done (see `HalfOpen`). */
  inputRead(): void {
    this.#rare?.halfOpen?.read();
  }

  /** True when open, its input all read (a held keyword's cannot be: not counted), its output all written. */
  get quiet(): boolean {
    return this.phase === Phase.open && !this.dirty && this.output.inflightBytes === 0 &&
      this.#delivery.idle &&
      (this.#client?.unread ?? 0) === 0;
  }

  #finalize(error: Error | undefined): void {
    if (this.closed) return;
    const wasConnecting = this.phase === Phase.connecting;
    this.#enter(Phase.closed);
    const rare = this.#rare;
    rare?.deadline?.clear();
    const budget = this.#host.budget;
    this.#streams?.close(error);
    budget.released((this.#decoder?.bufferedBytes ?? 0) + (rare?.driver?.bufferedBytes ?? 0));
    budget.released(this.#delivery.discard());
    // What never fully reached the kernel is sent again, whole, before what was never written.
    const { bytes, unsent } = this.output.discard(this.conn.discardedBytes);
    budget.written(bytes);
    error ??= rare?.closeError;
    if (wasConnecting && !error) error = rare!.driver!.closedEarly();
    this.#host.sessionClosed(this, error, wasConnecting, unsent);
    budget.forget(this);
  }

  #internalError(err: unknown): void {
    closeOnInternalError(this, this.#host.logger, err);
  }
}

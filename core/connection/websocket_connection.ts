/**
 * {@linkcode WebSocketConnection}: an accepted connection on a `websocket` listener. It reads the HTTP
 * request head first; an upgrade becomes a WebSocket whose messages the session sees as frames (one
 * WebSocket message one asockio message, so the keyword handshake runs unchanged), and any other
 * request passes through, bytes intact, as a raw connection. It is the session's `Connection` and the
 * transport's `ConnectionHandler`: the framing seam sits below the session, which does not change.
 *
 * @module
 */
import type { Connection, ConnectionHandler, TlsConnectionInfo } from "../../transports/types.ts";
import { ConnectionClosedError, MessageTooLargeError, ProtocolError, UnsupportedError } from "../errors.ts";
import { refuseFramedDatagrams } from "../udp/datagram_peers.ts";
import { describeAddr } from "../wire/ip.ts";
import { HttpRequestError, parseRequestHead, RequestHeadScanner } from "../http/request_head.ts";
import {
  httpErrorAnswer,
  judgeUpgrade,
  switchingProtocols,
  type UpgradePolicy,
  webSocketAccept,
} from "../http/websocket_upgrade.ts";
import { FRAME_HEADER_BYTES, putHeader, readFrameLength } from "../wire/frame_header.ts";
import {
  WebSocketCloseCode,
  webSocketCloseFrame,
  webSocketControlFrame,
  WebSocketFrameParser,
  webSocketHeader,
  WebSocketOpcode,
} from "../wire/websocket_frames.ts";
import {
  packWebSocketFrames,
  packWebSocketMessages,
  returnSpareBuffer,
  takeSpareBuffer,
} from "../wire/websocket_pack.ts";
import { framedPieces } from "./output.ts";
import { unrefTimer } from "../timer.ts";
import { ProxyHeaderReader } from "../wire/proxy_protocol.ts";

/** The most bytes an HTTP request head may take on a `websocket` listener. */
export const MAX_REQUEST_HEAD_BYTES = 16 * 1024;

/** What a {@linkcode WebSocketConnection} needs to know. */
export interface WebSocketConnectionOptions extends UpgradePolicy {
  /** Server pings this often; a peer whose pong has not come by the next ping is closed (1001). `0`: none. */
  readonly pingIntervalMs: number;
  /** The largest message (1009 beyond). */
  readonly maxMessageBytes: number;
  /** The request head must be read within this long (`limits.handshakeTimeoutMs`); `0`: no limit. */
  readonly headTimeoutMs: number;
  /** After our close frame, how long the peer has to close the TCP connection (`limits.closeTimeoutMs`). */
  readonly closeTimeoutMs: number;
  /**
   * Told how the bytes of a partly received message change, with the session reading it (once set),
   * for the memory budget: growing over the input cap, it may pause the connection.
   */
  readonly heldInput?: (delta: number, handler: ConnectionHandler | undefined) => void;
  /**
   * The listener has `proxyProtocol` and the peer is a trusted balancer: a PROXY header comes before the
   * request head. It is found here only to skip it; its bytes reach the session first, which reads it.
   */
  readonly proxyHeader?: boolean;
  /** Called once the head is read and the connection is ready for a session (upgraded or passed). */
  readonly ready: (conn: WebSocketConnection) => void;
  /** Told of each request refused, or closed, before `ready`: for the log and to forget it. */
  readonly refused: (conn: WebSocketConnection, reason: string) => void;
}

const Mode = { head: 0, pass: 1, websocket: 2, done: 3 } as const;
type Mode = typeof Mode[keyof typeof Mode];

/** A handler that says whether it reads raw bytes (the session does). */
type SessionLike = ConnectionHandler & { readonly raw?: boolean };

const OK = [0x4f, 0x4b];

/** Messages up to this size, in and out, are packed with their neighbours (one buffer a chunk); larger go alone. */
const BATCH_MESSAGE_BYTES = 16 * 1024;

/** A method's first letter (A-Z), or the CR of an empty line that may come before the request line. */
const isRequestStart = (byte: number) => (byte >= 0x41 && byte <= 0x5a) || byte === 13;

/**
 * A connection on a `websocket` listener: the HTTP head, then WebSocket frames or passed-through bytes.
 *
 * @example
 * ```ts
 * import { WebSocketConnection } from "./websocket_connection.ts";
 * // The listener set wraps each accepted connection: new WebSocketConnection(conn, options).
 * ```
 */
export class WebSocketConnection implements Connection, ConnectionHandler {
  readonly #inner: Connection;
  readonly #options: WebSocketConnectionOptions;
  #mode: Mode = Mode.head;
  #handler: SessionLike | undefined;
  /** Bytes read before a handler was set (the head and what followed it). */
  #early: Uint8Array[] = [];
  #earlyBytes = 0;
  readonly #scanner = new RequestHeadScanner();
  #parser: WebSocketFrameParser | undefined;
  #origin: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pinger: ReturnType<typeof setInterval> | undefined;
  #awaitingPong = false;
  #closeSent = false;
  #error: Error | undefined;
  #dropped = 0;
  /** The output splitter: header bytes of the frame being read, and payload bytes still to come. */
  readonly #outHead = new Uint8Array(FRAME_HEADER_BYTES);
  #outHeadHave = 0;
  #outRemaining = 0;
  /** A free buffer the frames being written may be packed into (the spare one), until used. */
  #packInto: Uint8Array | undefined;
  /** True once the keyword handshake's `OK` went out: a close before it is a refusal (1008). */
  #admitted = false;
  #upgraded = false;
  /** Bytes of a partly received message, as last reported to `heldInput`. */
  #held = 0;
  /** Finds where a PROXY header ends (`proxyHeader`), then is dropped. */
  #proxyReader: ProxyHeaderReader | undefined;
  /** Where the request head starts in the early bytes: after the PROXY header. */
  #headStart = 0;
  /** An upgraded connection's PROXY header, for the session before any message. */
  #proxyBytes: Uint8Array | undefined;
  /** True once `ready` or `refused` was called. */
  #reported = false;

  /** Wraps `inner` and starts reading its request head. */
  constructor(inner: Connection, options: WebSocketConnectionOptions) {
    this.#inner = inner;
    this.#options = options;
    if (options.proxyHeader) this.#proxyReader = new ProxyHeaderReader();
    if (options.headTimeoutMs > 0) {
      this.#timer = setTimeout(
        () => this.#refuse(408, "the request head did not come in time"),
        options.headTimeoutMs,
      );
    }
    inner.setHandler(this);
  }

  /** True once upgraded to WebSocket (false while reading the head, and for a passed-through request). */
  get upgraded(): boolean {
    return this.#upgraded;
  }

  /** True for a request that was not an upgrade: its bytes pass through unchanged. */
  get passedThrough(): boolean {
    return this.#mode === Mode.pass;
  }

  /** The listener's `websocket.allowedOrigins` (unset: browsers must prove a secret). */
  get allowedOrigins(): readonly string[] | undefined {
    return this.#options.allowedOrigins;
  }

  /** The upgrade request's `Origin` header: set when a browser opened the WebSocket. */
  get origin(): string | undefined {
    return this.#origin;
  }

  get localAddr(): Connection["localAddr"] {
    return this.#inner.localAddr;
  }
  get remoteAddr(): Connection["remoteAddr"] {
    return this.#inner.remoteAddr;
  }
  get tls(): TlsConnectionInfo | undefined {
    return this.#inner.tls;
  }
  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }
  get closed(): boolean {
    return this.#inner.closed;
  }
  get discardedBytes(): number {
    return this.#inner.discardedBytes + this.#dropped;
  }

  /** Sets the session; bytes read meanwhile are delivered now. */
  setHandler(handler: ConnectionHandler): void {
    this.#handler = handler;
    // As a transport does, deliver nothing from inside setHandler: the core binds the session first.
    queueMicrotask(() => {
      const early = this.#early;
      this.#early = [];
      this.#earlyBytes = 0;
      try {
        const proxy = this.#proxyBytes;
        this.#proxyBytes = undefined;
        if (proxy !== undefined) this.#handler!.onData(proxy);
        for (const chunk of early) {
          if (this.#inner.closed) return;
          this.#deliver(chunk);
        }
        this.#inner.resumeReading();
      } catch (err) {
        this.#error ??= new ProtocolError("Cannot deliver WebSocket input", { cause: err });
        this.#inner.close();
      }
    });
  }

  write(data: Uint8Array): boolean {
    return this.writeBatch([data]);
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    if (this.#mode !== Mode.websocket) {
      if (this.#mode === Mode.pass) return this.#inner.writeBatch(chunks);
      throw new ConnectionClosedError("Cannot write: the connection is closed");
    }
    if (this.#closeSent) {
      // The close handshake started: RFC 6455 allows no more data; the session learns of the close next.
      for (const chunk of chunks) this.#dropped += chunk.length;
      return true;
    }
    const out: Uint8Array[] = [];
    if (this.#handler?.raw === true) {
      for (const chunk of chunks) out.push(webSocketHeader(WebSocketOpcode.binary, chunk.length), chunk);
      return this.#inner.writeBatch(out);
    }
    const buffer = this.#packInto = takeSpareBuffer();
    for (const chunk of chunks) this.#split(chunk, out);
    this.#packInto = undefined;
    return this.#writePacked(out, buffer);
  }

  /**
   * Writes `pieces`, packed into `buffer` (the spare one) or the arena. Written whole at once (Bun),
   * the transport holds none of it (`bufferedAmount` 0): the next write may pack there.
   */
  #writePacked(pieces: Uint8Array[], buffer: Uint8Array | undefined): boolean {
    const below = this.#inner.writeBatch(pieces);
    if (this.#inner.bufferedAmount === 0) returnSpareBuffer(buffer);
    return below;
  }

  /**
   * Writes each of `payloads` (a framed session's output, before its 8-byte headers) as one binary
   * message: one pass and one copy, where {@linkcode writeBatch} would read back the session's framing.
   */
  writeMessages(payloads: Uint8Array[]): boolean {
    // Passed through, raw, closing, or amid a message stream's frame: the session's framing, as before.
    const asFrames = this.#handler?.raw === true || this.#closeSent ||
      this.#outHeadHave + this.#outRemaining > 0;
    if (this.#mode !== Mode.websocket || asFrames) return this.writeBatch(framedPieces(payloads));
    if (!this.#admitted) {
      for (const p of payloads) if (p.length === 2 && p[0] === OK[0] && p[1] === OK[1]) this.#admitted = true;
    }
    const buffer = takeSpareBuffer();
    return this.#writePacked(packWebSocketMessages(payloads, BATCH_MESSAGE_BYTES, buffer), buffer);
  }

  /** Turns the session's frames (an 8-byte length, then the payload) into WebSocket binary frames. */
  #split(chunk: Uint8Array, out: Uint8Array[]): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#outRemaining === 0 && this.#outHeadHave === 0) {
        // Before admission a 2-byte message may be the `OK` to watch for: it takes the path below.
        const into = this.#packInto;
        const packed = packWebSocketFrames(chunk, at, BATCH_MESSAGE_BYTES, this.#admitted ? -1 : 2, into);
        if (packed !== undefined) {
          if (into !== undefined && chunk.length - at <= into.length) this.#packInto = undefined; // used
          out.push(packed.frames);
          at = packed.end;
          if (at === chunk.length) return;
        }
      }
      if (this.#outRemaining === 0) {
        const n = Math.min(FRAME_HEADER_BYTES - this.#outHeadHave, chunk.length - at);
        this.#outHead.set(chunk.subarray(at, at + n), this.#outHeadHave);
        this.#outHeadHave += n;
        at += n;
        if (this.#outHeadHave < FRAME_HEADER_BYTES) return;
        this.#outHeadHave = 0;
        const length = readFrameLength(new DataView(this.#outHead.buffer), 0);
        out.push(webSocketHeader(WebSocketOpcode.binary, length));
        this.#outRemaining = length;
        if (!this.#admitted && length === 2 && chunk[at] === OK[0] && chunk[at + 1] === OK[1]) {
          this.#admitted = true;
        }
        continue;
      }
      const n = Math.min(this.#outRemaining, chunk.length - at);
      out.push(chunk.subarray(at, at + n));
      this.#outRemaining -= n;
      at += n;
    }
  }

  pauseReading(): void {
    this.#inner.pauseReading();
  }
  resumeReading(): void {
    this.#inner.resumeReading();
  }
  setNoDelay(noDelay: boolean): void {
    this.#inner.setNoDelay(noDelay);
  }
  setKeepAlive(keepAlive: boolean): void {
    this.#inner.setKeepAlive(keepAlive);
  }

  /** Sends a close frame (1008 while the keyword handshake has not admitted the peer, else 1000), then FIN. */
  closeWrite(): void {
    if (this.#mode === Mode.websocket) {
      const raw = this.#handler?.raw === true;
      this.#sendClose(raw || this.#admitted ? WebSocketCloseCode.normal : WebSocketCloseCode.policyViolation);
    }
    this.#inner.closeWrite();
  }

  /**
   * Closes. An upgraded connection sends its close frame first (1008 before the keyword handshake
   * admitted the peer, else 1001) and gives the peer `closeTimeoutMs` to close; the session is done
   * with it at once either way.
   */
  close(): void {
    if (this.#mode !== Mode.websocket || this.#closeSent || this.#inner.closed) return this.#inner.close();
    this.#sendClose(this.#admitted ? WebSocketCloseCode.goingAway : WebSocketCloseCode.policyViolation);
    this.#inner.closeWrite();
    this.#closeSoon();
  }

  // ---------------------------------------------------------------------------------------------
  // ConnectionHandler of the inner connection

  onData(chunk: Uint8Array): number | void {
    if (this.#mode === Mode.head) return this.#readHead(chunk);
    if (this.#handler === undefined) {
      this.#hold(chunk);
      return;
    }
    return this.#deliver(chunk);
  }

  #deliver(chunk: Uint8Array): number | void {
    if (this.#mode === Mode.pass) return this.#handler!.onData(chunk);
    if (this.#mode !== Mode.websocket) return;
    this.#parser!.push(chunk);
    this.#account();
    return 0; // the parser copied what it keeps
  }

  /** Reports the change in bytes held for a partly received message (whole ones the session counts). */
  #account(): void {
    const held = this.#parser?.bufferedBytes ?? 0;
    if (held === this.#held) return;
    this.#options.heldInput?.(held - this.#held, this.#handler);
    this.#held = held;
  }

  #hold(chunk: Uint8Array): void {
    // Until the session takes over (the listener may park the connection), nothing more is read.
    this.#early.push(chunk.slice());
    this.#earlyBytes += chunk.length;
    this.#inner.pauseReading();
  }

  onDrain(): void {
    this.#handler?.onDrain();
  }

  onEnd(): void {
    if (this.#mode === Mode.head || this.#handler === undefined) return this.#inner.close();
    this.#handler.onEnd();
  }

  onClose(error?: Error): void {
    this.#mode = Mode.done;
    clearTimeout(this.#timer);
    clearInterval(this.#pinger);
    this.#parser = undefined;
    this.#account();
    if (this.#handler === undefined) this.#report(undefined, "closed before a session took it");
    this.#handler?.onClose(this.#error ?? error);
  }

  // ---------------------------------------------------------------------------------------------
  // The request head

  #readHead(chunk: Uint8Array): void {
    let from = this.#earlyBytes - this.#headStart;
    this.#early.push(chunk.slice());
    this.#earlyBytes += chunk.length;
    if (this.#proxyReader !== undefined) {
      if (!this.#skipProxyHeader(chunk)) return;
      from = 0; // the head starts after the header, in what has come so far
    }
    const start = this.#headStart;
    let end: number;
    try {
      const joined = this.#joinEarly();
      const head = joined.subarray(start);
      // A framed client's length prefix, TLS or other binary: not the start of a request line.
      if (from === 0 && head.length > 0 && !isRequestStart(head[0]!)) {
        return this.#refuse(400, "the bytes do not start an HTTP request");
      }
      end = this.#scanner.scan(head, from);
      if (end < 0) {
        if (head.length > MAX_REQUEST_HEAD_BYTES) this.#refuse(431, "the request head is over 16 KiB");
        return;
      }
      if (end > MAX_REQUEST_HEAD_BYTES) return this.#refuse(431, "the request head is over 16 KiB");
      const verdict = judgeUpgrade(parseRequestHead(head.subarray(0, end)), this.#options);
      if (verdict.kind === "refuse") return this.#refuse(verdict.status, verdict.reason);
      clearTimeout(this.#timer);
      if (verdict.kind === "pass") return this.#passThrough(joined);
      this.#origin = verdict.origin;
      if (start > 0) this.#proxyBytes = joined.slice(0, start);
      end += start;
      this.#early = joined.length > end ? [joined.slice(end)] : [];
      this.#earlyBytes = joined.length - end;
      this.#inner.pauseReading();
      this.#mode = Mode.done;
      void this.#upgrade(verdict.key);
    } catch (err) {
      const status = err instanceof HttpRequestError && err.status !== 400 ? err.status : 400;
      this.#refuse(status, err instanceof Error ? err.message : "not an HTTP request");
    }
  }

  /**
   * Reads `chunk` into the PROXY header reader; true once the header is behind (`#headStart` set). A bad
   * header passes everything to the session, which reads the same header and closes as on any PROXY
   * listener.
   */
  #skipProxyHeader(chunk: Uint8Array): boolean {
    const reader = this.#proxyReader!;
    reader.push(chunk.slice());
    const decision = reader.step();
    if (decision.kind === "pending") return false;
    this.#proxyReader = undefined;
    if (decision.kind === "fail") {
      clearTimeout(this.#timer);
      this.#passThrough(this.#joinEarly());
      return false;
    }
    this.#headStart = this.#earlyBytes - reader.bufferedBytes;
    return true;
  }

  /** Hands the bytes read so far, and the connection, to a session as they are. */
  #passThrough(joined: Uint8Array): void {
    this.#mode = Mode.pass;
    this.#early = [joined];
    this.#inner.pauseReading();
    this.#report(this);
  }

  #joinEarly(): Uint8Array {
    if (this.#early.length === 1) return this.#early[0]!;
    const joined = new Uint8Array(this.#earlyBytes);
    let at = 0;
    for (const part of this.#early) {
      joined.set(part, at);
      at += part.length;
    }
    this.#early = [joined];
    return joined;
  }

  async #upgrade(key: string): Promise<void> {
    const accept = await webSocketAccept(key);
    if (this.#inner.closed) return;
    this.#inner.write(switchingProtocols(accept));
    this.#mode = Mode.websocket;
    this.#upgraded = true;
    this.#parser = new WebSocketFrameParser({
      maxMessageBytes: this.#options.maxMessageBytes,
      reserveBytes: FRAME_HEADER_BYTES,
      batchBytes: BATCH_MESSAGE_BYTES,
    }, {
      message: (payload) => this.#message(payload),
      ping: (payload) => this.#inner.write(webSocketControlFrame(WebSocketOpcode.pong, payload)),
      pong: () => {
        this.#awaitingPong = false;
      },
      close: (code) => this.#peerClosed(code),
      error: (code, message, length) => this.#protocolError(code, message, length),
      frames: (frames) => this.#frames(frames),
    });
    const every = this.#options.pingIntervalMs;
    if (every > 0) {
      this.#pinger = setInterval(() => this.#ping(), every);
      unrefTimer(this.#pinger);
    }
    this.#options.ready(this);
  }

  #message(payload: Uint8Array): void {
    const handler = this.#handler!;
    if (handler.raw === true) {
      handler.onData(payload.subarray(FRAME_HEADER_BYTES));
      return;
    }
    putHeader(payload, 0, payload.length - FRAME_HEADER_BYTES);
    handler.onData(payload);
  }

  /**
   * A chunk's small messages, framed back to back: the session reads them in one pass, as over TCP,
   * not one call each. A raw session gets each message's bytes.
   */
  #frames(frames: Uint8Array): void {
    const handler = this.#handler!;
    if (handler.raw !== true) return void handler.onData(frames);
    for (let at = 0; at < frames.length;) {
      const length = readFrameLength(new DataView(frames.buffer, frames.byteOffset + at, 8), 0);
      handler.onData(frames.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
      at += FRAME_HEADER_BYTES + length;
    }
  }

  #ping(): void {
    if (this.#closeSent || this.#mode !== Mode.websocket) return;
    if (this.#awaitingPong) {
      return this.#protocolError(WebSocketCloseCode.goingAway, "No pong came within pingIntervalMs");
    }
    this.#awaitingPong = true;
    this.#inner.write(webSocketControlFrame(WebSocketOpcode.ping, new Uint8Array(0)));
  }

  #peerClosed(code: number | undefined): void {
    this.#sendClose(code ?? WebSocketCloseCode.normal);
    this.#inner.closeWrite();
    this.#closeSoon();
    this.#handler?.onEnd();
  }

  #protocolError(code: WebSocketCloseCode, message: string, length?: number): void {
    this.#error ??= length !== undefined
      ? new MessageTooLargeError(BigInt(length), this.#options.maxMessageBytes, { message })
      : new ProtocolError(message);
    this.#sendClose(code, message);
    this.#inner.closeWrite();
    this.#closeSoon();
  }

  #sendClose(code: number, reason = ""): void {
    if (this.#closeSent || this.#inner.closed) return;
    this.#closeSent = true;
    clearInterval(this.#pinger);
    this.#inner.write(webSocketCloseFrame(code, reason));
  }

  /** The peer has `closeTimeoutMs` to close its side after our close frame went out. */
  #closeSoon(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#inner.close(), this.#options.closeTimeoutMs);
    unrefTimer(this.#timer);
  }

  /** Tells the listener once: ready for a session, or refused (or gone) with `why`. */
  #report(ready: WebSocketConnection | undefined, why = ""): void {
    if (this.#reported) return;
    this.#reported = true;
    if (ready) this.#options.ready(ready);
    else this.#options.refused(this, why);
  }

  /** Answers the request with an HTTP error and closes. */
  #refuse(status: number, reason: string): void {
    if (this.#mode !== Mode.head) return;
    this.#mode = Mode.done;
    this.#early = [];
    this.#earlyBytes = 0;
    this.#report(undefined, `${status}: ${reason}`);
    if (this.#inner.closed) return;
    this.#inner.write(httpErrorAnswer(status, reason));
    this.#inner.closeWrite();
    this.#closeSoon();
  }
}

/** The WebSocket a session's connection is, or `undefined` (also for a request passed through). */
export function webSocketOf(conn: Connection): WebSocketConnection | undefined {
  return conn instanceof WebSocketConnection && conn.upgraded ? conn : undefined;
}

/**
 * Throws `UnsupportedError` for a switch of raw mode that the connection cannot make: a UDP client to
 * framed (each datagram is one message), or a WebSocket client either way (each WebSocket message is one
 * message already, and output queued before the switch could not be told apart).
 */
export function refuseModeSwitch(conn: Connection, raw: boolean): void {
  if (!raw) refuseFramedDatagrams(conn);
  if (webSocketOf(conn) === undefined) return;
  throw new UnsupportedError(
    `Cannot switch WebSocket client ${describeAddr(conn.remoteAddr)} to ${
      raw ? "raw" : "framed"
    } mode: each WebSocket message is one message`,
  );
}

/**
 * Typed errors shared by every layer of asockio.
 *
 * Each transport maps its runtime's own failures (Deno's `ConnectionRefused`, Node's `ECONNREFUSED`,
 * Bun's equivalents) onto these classes, so nothing above `transports/` tests a runtime-specific error.
 * The runtime's original error is kept as `cause`.
 *
 * @module
 */

/** Options accepted by every asockio error constructor. */
export interface AsockioErrorOptions {
  /** The underlying error, usually the runtime's own. */
  cause?: unknown;
}

/**
 * Base class of every error asockio raises on purpose.
 *
 * @example Catch any asockio error
 * ```ts
 * import { AsockioError } from "@asockio/core";
 * try {
 *   // ...
 * } catch (err) {
 *   if (err instanceof AsockioError) console.error(err.name, err.message);
 * }
 * ```
 */
export class AsockioError extends Error {
  /** Creates the error with a sentence-case message and an optional `cause`. */
  constructor(message: string, options?: AsockioErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The peer refused the connection: nothing listens at that address.
 *
 * @example
 * ```ts
 * import { ConnectionRefusedError } from "@asockio/core";
 * const err = new ConnectionRefusedError("Cannot connect to 127.0.0.1:1: connection refused");
 * ```
 */
export class ConnectionRefusedError extends AsockioError {}

/**
 * The peer reset the connection (RST, broken pipe) while it was in use.
 *
 * @example
 * ```ts
 * import { ConnectionResetError } from "@asockio/core";
 * const err = new ConnectionResetError("Connection reset by peer");
 * ```
 */
export class ConnectionResetError extends AsockioError {}

/**
 * The address is taken: another socket listens there, or a UNIX socket path is occupied by a live
 * socket or by a file that is not a socket.
 *
 * @example
 * ```ts
 * import { AddressInUseError } from "@asockio/core";
 * const err = new AddressInUseError("Cannot listen on /tmp/app.sock: a regular file exists there");
 * ```
 */
export class AddressInUseError extends AsockioError {}

/**
 * The operation needs an open connection or listener, and it is closed.
 *
 * @example
 * ```ts
 * import { ConnectionClosedError } from "@asockio/core";
 * const err = new ConnectionClosedError("Cannot write: connection is closed");
 * ```
 */
export class ConnectionClosedError extends AsockioError {}

/**
 * Any other transport failure; the runtime's error is its `cause`.
 *
 * @example
 * ```ts
 * import { TransportError } from "@asockio/core";
 * const err = new TransportError("Cannot connect: permission denied", { cause: new Error("EACCES") });
 * ```
 */
export class TransportError extends AsockioError {}

/**
 * A frame declared a length above the configured `maxMessageBytes`. Raised before anything is
 * allocated for the frame. Also thrown, with nothing sent, for a datagram larger than UDP carries
 * (65,507 bytes over IPv4) or than `maxMessageBytes`; `maxMessageBytes` then holds the limit it broke.
 *
 * @example
 * ```ts
 * import { MessageTooLargeError } from "@asockio/core";
 * const err = new MessageTooLargeError(2n ** 64n - 1n, 64 * 1024 * 1024);
 * console.log(err.declaredLength); // 18446744073709551615n
 * ```
 */
export class MessageTooLargeError extends AsockioError {
  /** The length the frame header declared, exact even above `Number.MAX_SAFE_INTEGER`. */
  readonly declaredLength: bigint;
  /** The limit it exceeded. */
  readonly maxMessageBytes: number;
  /**
   * Creates the error from the declared length and the limit; `options.message` replaces the frame
   * decoder's wording (a datagram too large to send).
   */
  constructor(
    declaredLength: bigint,
    maxMessageBytes: number,
    options?: AsockioErrorOptions & { message?: string },
  ) {
    super(
      options?.message ??
        `Cannot decode frame: declared length ${declaredLength} exceeds maxMessageBytes ${maxMessageBytes}`,
      options,
    );
    this.declaredLength = declaredLength;
    this.maxMessageBytes = maxMessageBytes;
  }
}

/**
 * The peer broke the handshake protocol: a malformed or oversized keyword, or an unexpected answer.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "@asockio/core";
 * const err = new ProtocolError("Cannot complete handshake: keyword is longer than 1024 bytes");
 * ```
 */
export class ProtocolError extends AsockioError {}

/**
 * The accepting side refused the handshake; `reason` is the short text it sent, if any.
 *
 * @example
 * ```ts
 * import { HandshakeRejectedError } from "@asockio/core";
 * const err = new HandshakeRejectedError("duplicate keyword");
 * console.log(err.reason); // "duplicate keyword"
 * ```
 */
export class HandshakeRejectedError extends AsockioError {
  /** The reason the server sent, or an empty string when it closed without one. */
  readonly reason: string;
  /** Creates the error from the server's reason. */
  constructor(reason: string, options?: AsockioErrorOptions) {
    super(`Handshake rejected by server${reason ? `: ${reason}` : ""}`, options);
    this.reason = reason;
  }
}

/**
 * A handshake or idle timeout expired and the connection was closed.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@asockio/core";
 * const err = new TimeoutError("Cannot complete handshake with tcp:127.0.0.1:5000: not done within 10000 ms");
 * ```
 */
export class TimeoutError extends AsockioError {}

/**
 * Application code the core called (an access rule, a processor callback, a predicate such as
 * `rawConnection`) threw. Only that connection is closed; `cause` is what was thrown.
 *
 * @example
 * ```ts
 * import { CallbackError } from "@asockio/core";
 * const err = new CallbackError("InlineProcessor.onDataReceived threw", { cause: new Error("bug") });
 * ```
 */
export class CallbackError extends AsockioError {}

/**
 * The core is closed: `ioIteration` and the other calls that need an open core reject with it.
 * It is a `ConnectionClosedError`, so code that caught that before still does.
 *
 * @example
 * ```ts
 * import { CoreClosedError, IoCore } from "@asockio/core";
 * const core = new IoCore();
 * await core.close();
 * await core.ioIteration(100).catch((err) => console.log(err instanceof CoreClosedError)); // true
 * ```
 */
export class CoreClosedError extends ConnectionClosedError {}

/**
 * No client has this id: it was never given, the client was removed, or it was an unknown (raw)
 * client that disconnected and whose messages were all read. Every `IoCore` method that acts on a
 * client (sends, switches, closes, reconnects, sets a processor) throws it; the queries answer
 * `undefined` or `[]` instead. It is a `ConnectionClosedError`, what a send to a forgotten client
 * threw before, so code that caught that still does.
 *
 * @example
 * ```ts
 * import { IoCore, UnknownClientError } from "@asockio/core";
 * const core = new IoCore();
 * try {
 *   core.sendMessageToClient(42, "hello");
 * } catch (err) {
 *   console.log(err instanceof UnknownClientError); // true
 * }
 * ```
 */
export class UnknownClientError extends ConnectionClosedError {}

/**
 * No client with this keyword is connected: not in this core, nor (with a cluster) on any node.
 * `sendMessageToKeyword` and `sendMessagesToKeyword` reject with it; nothing was queued. It is a
 * `ConnectionClosedError`, so code that handles a closed connection handles it too.
 *
 * @example
 * ```ts
 * import { ClientNotConnectedError, IoCore } from "@asockio/core";
 * const core = new IoCore();
 * await core.sendMessageToKeyword("sensor-17", "ping").catch((err) => {
 *   console.log(err instanceof ClientNotConnectedError); // true
 * });
 * ```
 */
export class ClientNotConnectedError extends ConnectionClosedError {}

/**
 * An outgoing client that is not connected has no room left in its send buffer
 * (`reconnect.bufferBytes`). Nothing of the call was queued.
 *
 * @example
 * ```ts
 * import { SendBufferFullError } from "@asockio/core";
 * const err = new SendBufferFullError("Cannot send message: client 3 is reconnecting and its 8388608-byte buffer is full");
 * ```
 */
export class SendBufferFullError extends AsockioError {}

/**
 * The runtime cannot do what was asked: UDP on Deno without `--unstable-net`, or switching a UDP
 * client to framed mode (a datagram is always one whole message).
 *
 * @example
 * ```ts
 * import { UnsupportedError } from "@asockio/core";
 * const err = new UnsupportedError("Cannot bind UDP socket: run Deno with --unstable-net");
 * ```
 */
export class UnsupportedError extends AsockioError {}

/**
 * A message stream's source yielded fewer or more bytes than the `byteLength` it was sent with. The
 * connection is closed, since its framing cannot be repaired; the peer never receives the frame as
 * if it were complete.
 *
 * @example
 * ```ts
 * import { StreamLengthError } from "@asockio/core";
 * const err = new StreamLengthError("Cannot send message stream: the source yielded 3 of 5 bytes");
 * console.log(err.name); // "StreamLengthError"
 * ```
 */
export class StreamLengthError extends AsockioError {}

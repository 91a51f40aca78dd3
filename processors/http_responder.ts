/**
 * A strict HTTP/1.1 responder for unknown (raw) clients: how an HTTP server is built on asockio.
 *
 * @module
 */
import { concatBytes, toBytes } from "../core/wire/bytes.ts";
import { ChunkedBodyDecoder } from "../core/http/chunked_body.ts";
import {
  HttpRequestError,
  parseRequestHead,
  type RequestHead,
  RequestHeadScanner,
} from "../core/http/request_head.ts";
import { processorAttachment } from "../core/processor.ts";
import { InlineProcessor } from "./inline_processor.ts";

/** A parsed request. Header names are lower case. */
export interface HttpRequest {
  /** `GET`, `POST`, ...; `HEAD` is answered with the headers of the response and no body. */
  readonly method: string;
  /** The request target, such as `/index.html?x=1`. */
  readonly target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: string;
  /** Headers by lower-case name; repeated headers are joined with `, `. */
  readonly headers: ReadonlyMap<string, string>;
  /** The whole body, from `Content-Length` or decoded from chunks (trailers are dropped). */
  readonly body: Uint8Array;
}

/** What {@linkcode HttpResponder.handle} returns. */
export interface HttpResponse {
  /**
   * The status code.
   * @default {200}
   */
  status?: number;
  /** Extra headers; `content-length` and `connection` are set by the responder. */
  headers?: Record<string, string>;
  /** The body; strings are sent as UTF-8. Not sent in answer to `HEAD`. */
  body?: Uint8Array | string;
  /** Close the connection after this response (`connection: close`), whatever the request asked. */
  close?: boolean;
}

/** The default of {@linkcode HttpResponder.maxHeadBytes}. */
export const MAX_HTTP_HEAD_BYTES = 16 * 1024;
/** The default of {@linkcode HttpResponder.maxBodyBytes}. */
export const MAX_HTTP_BODY_BYTES = 16 * 1024 * 1024;

const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  408: "Request Timeout",
  413: "Content Too Large",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  505: "HTTP Version Not Supported",
};
const emptyBody = new Uint8Array(0);
/** How long a 408 answer may take to be written before its connection is closed anyway. */
const TIMEOUT_ANSWER_GRACE_MS = 2000;
const CONTINUE = toBytes("HTTP/1.1 100 Continue\r\n\r\n");

/** Response heads without extra headers, keyed by status, body length and keep-alive (one number). */
const headCache = new Map<number, Uint8Array>();
const HEAD_CACHE_ENTRIES = 256;

/** What the responder is reading. */
const Phase = {
  /** A request head (or nothing yet). */
  head: 0,
  /** A body of known length. */
  body: 1,
  /** A chunked body. */
  chunked: 2,
  /** A response that closes the connection is queued: later input is not answered. */
  closing: 3,
} as const;
type Phase = typeof Phase[keyof typeof Phase];

/** A request as `handle` sees it: its head, parsed on demand, and its body. */
class Request implements HttpRequest {
  readonly #head: RequestHead;
  readonly body: Uint8Array;

  constructor(head: RequestHead, body: Uint8Array) {
    this.#head = head;
    this.body = body;
  }

  get method(): string {
    return this.#head.method;
  }

  get target(): string {
    return this.#head.target;
  }

  get version(): string {
    return this.#head.version;
  }

  get headers(): ReadonlyMap<string, string> {
    return this.#head.headers;
  }
}

/** The body's pieces as one buffer: one copy, whatever the number of reads it came in. */
function assemble(pieces: Uint8Array[], length: number): Uint8Array {
  if (length === 0) return emptyBody;
  // A copy even for one piece: it is a view of a read buffer that may hold much more.
  return pieces.length === 1 ? pieces[0]!.slice() : concatBytes(pieces, length);
}

/**
 * A keep-alive HTTP/1.1 responder to use as `unknownClientProcessor`. Override
 * {@linkcode handle}; pipelined requests are answered in order, each response batched with the
 * others of the same read into one write.
 *
 * Requests are read as strictly as RFC 9112 and llhttp ask: a malformed or ambiguous head (bare LF,
 * obsolete folding, control characters, a method that is not a token, a missing or repeated `Host`,
 * a `Content-Length` that is not digits or disagrees with itself, or sits beside `Transfer-Encoding`)
 * gets 400 and the connection closes after the answer. Bodies come by `Content-Length` or chunked;
 * `Expect: 100-continue` is answered `100 Continue` before the body is read.
 *
 * A body still incomplete at the end of a read counts in the core's `limits.inputBytes` (see
 * `InlineProcessor.holdInputBytes`), so uploads share the input cap and its backpressure with
 * messages; a head being read does not (`maxHeadBytes` caps it). A request that is still incomplete
 * when its timeout passes gets `408 Request Timeout`.
 *
 * Limits and timeouts are static fields: override them in a subclass
 * (`static override maxBodyBytes = 64 * 1024 * 1024`). The timeouts are checked by one shared sweep,
 * not a timer per connection; a subclass that overrides `onConnected` or `onConnectionLost` calls
 * `super`'s.
 *
 * @example Serve "hello" on an IoCore that also serves named clients
 * ```ts
 * import { IoCore } from "@asockio/core";
 * import { HttpResponder, type HttpRequest, type HttpResponse } from "@asockio/core/http";
 *
 * class Hello extends HttpResponder {
 *   override handle(request: HttpRequest): HttpResponse {
 *     return { body: `hello from ${request.target}\n` };
 *   }
 * }
 * const core = new IoCore({
 *   listeners: [{ transport: "tcp", port: 8080 }],
 *   rawConnection: () => true,
 *   unknownClients: "allow",
 *   unknownClientProcessor: Hello,
 * });
 * ```
 */
export class HttpResponder extends InlineProcessor {
  /**
   * A request head (request line and headers) larger than this gets 431 and the connection closes; it
   * also caps a chunk-size line and a chunked body's trailers (400 beyond).
   * @default {16384}
   */
  static maxHeadBytes: number = MAX_HTTP_HEAD_BYTES;
  /**
   * A body larger than this gets 413 and the connection closes: at once for a declared
   * `Content-Length`, as soon as the chunk sizes pass it for a chunked body.
   * @default {16777216}
   */
  static maxBodyBytes: number = MAX_HTTP_BODY_BYTES;
  /**
   * A request head must arrive in full within this many milliseconds of its first byte (or of the
   * connection's opening); otherwise the connection gets `408 Request Timeout` and closes (with no
   * answer when not one byte of the request came: nothing was asked).
   * @default {10000}
   */
  static headerTimeoutMs = 10_000;
  /**
   * A body must arrive in full within this many milliseconds of the end of its head; otherwise the
   * connection gets `408 Request Timeout` and closes.
   * @default {300000}
   */
  static bodyTimeoutMs = 300_000;
  /**
   * A kept-alive connection with no new request within this many milliseconds of the last answer is
   * closed, without an answer.
   * @default {5000}
   */
  static keepAliveTimeoutMs = 5_000;

  /** Every responder with a deadline, swept by one timer while it is not empty. */
  static #timed = new Set<HttpResponder>();
  static #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  static #sweepPeriodMs = 1000;
  /** The clock deadlines are set by: read once per sweep, not once per request. */
  static #now = 0;

  #phase: Phase = Phase.head;
  readonly #scanner = new RequestHeadScanner();
  /** The parts of a head that came in several reads, and their total length. */
  #headParts: Uint8Array[] = [];
  #headLength = 0;
  /** Set after a kept-alive answer: the next byte starts the header timeout. */
  #awaitingRequest = false;
  #head: RequestHead | undefined;
  #bodyParts: Uint8Array[] = [];
  /** The bytes in `#bodyParts`, and how many of them are counted in the core's `inputBytes`. */
  #bodyBytes = 0;
  #heldBytes = 0;
  /** The bytes of a `Content-Length` body still due. */
  #bodyDue = 0;
  #chunked: ChunkedBodyDecoder | undefined;
  /** When the sweep closes this connection (ms since the epoch). */
  #deadline = Infinity;
  /** True while this responder is in the sweep's set. */
  #swept = false;

  /**
   * Answers one request; it may be `async`. Pipelined requests are answered in request order: the
   * next one waits until this answer is ready. A handler that throws or rejects gets `500` with
   * `connection: close`, and the core logs the error. The default answers 404.
   */
  handle(_request: HttpRequest): HttpResponse | Promise<HttpResponse> {
    return { status: 404, body: "not found\n" };
  }

  /** Starts the header timeout. A subclass that overrides it calls `super.onConnected()`. */
  override onConnected(): void {
    this.#setDeadline(this.#limits().headerTimeoutMs);
  }

  /** Stops this connection's timeouts. A subclass that overrides it calls `super.onConnectionLost()`. */
  override onConnectionLost(): void {
    this.#phase = Phase.closing;
    this.#swept = false;
    // The core released what the body held with the connection.
    this.#heldBytes = 0;
    this.#bodyParts = [];
    this.#headParts = [];
    const timed = HttpResponder.#timed;
    if (timed.delete(this) && timed.size === 0) {
      // No sweep left pending once the last connection is gone (test runners check for leaked timers).
      clearTimeout(HttpResponder.#sweepTimer);
      HttpResponder.#sweepTimer = undefined;
      HttpResponder.#sweepPeriodMs = 1000;
    }
  }

  /**
   * Reads the requests in `data` and answers each complete one in order. Returns a Promise while
   * an asynchronous `handle` is answering: the core then holds the connection's input until it settles.
   */
  override onDataReceived(data: Uint8Array): void | Promise<void> {
    if (this.#phase === Phase.closing) return;
    try {
      return this.#serve(data, 0);
    } catch (err) {
      this.#refused(err);
    }
  }

  /** Answers a refused request; rethrows anything else (a handler's error, already answered with 500). */
  #refused(err: unknown): void {
    if (!(err instanceof HttpRequestError) || this.#phase === Phase.closing) throw err;
    this.#fail(err.status);
  }

  #limits(): typeof HttpResponder {
    return this.constructor as typeof HttpResponder;
  }

  /** Reads and answers from `offset` on; throws {@linkcode HttpRequestError} for a refused request. */
  #serve(data: Uint8Array, offset: number): void | Promise<void> {
    const limits = this.#limits();
    for (;;) {
      if (this.#phase === Phase.head) {
        if (offset >= data.length) return;
        if (this.#awaitingRequest) {
          this.#awaitingRequest = false;
          this.#setDeadline(limits.headerTimeoutMs);
        }
        const end = this.#scanner.scan(data, offset);
        const length = this.#headLength + (end < 0 ? data.length : end) - offset;
        if (length > limits.maxHeadBytes) return this.#fail(431);
        if (end < 0) {
          // A copy: the head's tail may sit at the end of a large read.
          this.#headParts.push(data.slice(offset));
          this.#headLength = length;
          return;
        }
        let headBytes = data.subarray(offset, end);
        if (this.#headParts.length) {
          headBytes = concatBytes([...this.#headParts, headBytes], length);
          this.#headParts = [];
          this.#headLength = 0;
        }
        offset = end;
        const head = this.#head = parseRequestHead(headBytes);
        if (head.chunked) {
          this.#chunked = new ChunkedBodyDecoder(limits.maxBodyBytes, limits.maxHeadBytes);
          this.#phase = Phase.chunked;
        } else if (head.contentLength) {
          if (head.contentLength > limits.maxBodyBytes) return this.#fail(413);
          this.#bodyDue = head.contentLength;
          this.#phase = Phase.body;
        }
        if (this.#phase !== Phase.head) {
          this.#setDeadline(limits.bodyTimeoutMs);
          // RFC 9110 §10.1.1: no 100 once part of the body is here.
          if (head.expectContinue && offset === data.length) this.outputMessages.push(CONTINUE);
          continue;
        }
      } else if (this.#phase === Phase.body) {
        if (offset >= data.length) return;
        const take = Math.min(this.#bodyDue, data.length - offset);
        this.#bodyParts.push(data.subarray(offset, offset + take));
        this.#bodyBytes += take;
        this.#bodyDue -= take;
        offset += take;
        if (this.#bodyDue > 0) return this.#holdBody();
      } else if (this.#phase === Phase.chunked) {
        if (offset >= data.length) return;
        const parts = this.#bodyParts;
        const before = parts.length;
        const end = this.#chunked!.decode(data, offset, parts);
        for (let i = before; i < parts.length; i++) this.#bodyBytes += parts[i]!.length;
        if (end < 0) return this.#holdBody();
        offset = end;
      } else return;
      const pending = this.#answer(data, offset);
      if (pending !== undefined) return pending;
    }
  }

  /** The request read so far is complete: hands it to `handle` and answers it. */
  #answer(data: Uint8Array, offset: number): void | Promise<void> {
    const head = this.#head!;
    const bodyLength = this.#chunked ? this.#chunked.received : head.contentLength ?? 0;
    const request = new Request(head, assemble(this.#bodyParts, bodyLength));
    this.#head = undefined;
    this.#chunked = undefined;
    this.#dropBody();
    this.#phase = Phase.head;
    let response: HttpResponse | Promise<HttpResponse>;
    try {
      response = this.handle(request);
    } catch (err) {
      return this.#failed(err);
    }
    if (response instanceof Promise) return this.#answerLater(response, head, data, offset);
    this.#respond(response, head);
  }

  /** Waits for an asynchronous answer, sends it, then goes on with the requests after it. */
  async #answerLater(
    pending: Promise<HttpResponse>,
    head: RequestHead,
    data: Uint8Array,
    offset: number,
  ): Promise<void> {
    this.#deadline = Infinity; // the handler's time is not the client's
    let response: HttpResponse;
    try {
      response = await pending;
    } catch (err) {
      return this.#failed(err);
    }
    this.#respond(response, head);
    if (this.#phase === Phase.closing) return;
    try {
      return await this.#serve(data, offset);
    } catch (err) {
      this.#refused(err);
    }
  }

  /** `handle` threw or rejected: 500 with `connection: close`, then the error goes to the core's logger. */
  #failed(err: unknown): never {
    this.#respond({ status: 500, body: "internal server error\n" }, undefined);
    throw err;
  }

  /** Queues the response to `request` (`undefined` for a refused one), then closes or waits for the next. */
  #respond(response: HttpResponse, request: RequestHead | undefined): void {
    const keepAlive = request !== undefined && request.keepAlive && !response.close;
    const status = response.status ?? 200;
    const body = response.body === undefined ? emptyBody : toBytes(response.body);
    let head: Uint8Array | string | undefined;
    const cacheKey = response.headers || !(status >= 100 && status <= 999)
      ? undefined
      : (body.length * 1024 + status) * 2 + (keepAlive ? 1 : 0);
    if (cacheKey !== undefined) head = headCache.get(cacheKey);
    if (head === undefined) {
      let text = `HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}\r\ncontent-length: ${body.length}\r\n`;
      if (!keepAlive) text += "connection: close\r\n";
      for (const [name, value] of Object.entries(response.headers ?? {})) text += `${name}: ${value}\r\n`;
      head = text + "\r\n";
      if (cacheKey !== undefined) {
        if (headCache.size >= HEAD_CACHE_ENTRIES) headCache.clear();
        head = toBytes(head).slice();
        headCache.set(cacheKey, head);
      }
    }
    this.outputMessages.push(head);
    if (body.length && request?.method !== "HEAD") this.outputMessages.push(body);
    if (keepAlive) {
      this.#awaitingRequest = true;
      this.#setDeadline(this.#limits().keepAliveTimeoutMs);
      return;
    }
    this.#phase = Phase.closing;
    this.#headParts = [];
    this.#dropBody();
    this.#chunked = undefined;
    this.markSocketAsReadyToBeClosed();
  }

  /**
   * A body is still incomplete at the end of a read: what it holds counts in the core's `inputBytes`
   * (a body that arrives within one read is never counted: it is handed on at once).
   */
  #holdBody(): void {
    const more = this.#bodyBytes - this.#heldBytes;
    if (more === 0) return;
    this.#heldBytes += more;
    this.holdInputBytes(more);
  }

  /** The body was handed on or is dropped: its bytes are counted no more. */
  #dropBody(): void {
    this.#bodyParts = [];
    this.#bodyBytes = 0;
    if (this.#heldBytes === 0) return;
    const held = this.#heldBytes;
    this.#heldBytes = 0;
    this.releaseInputBytes(held);
  }

  /** True while a request has begun and is not complete: a timeout then gets 408. */
  get #midRequest(): boolean {
    return this.#phase === Phase.body || this.#phase === Phase.chunked ||
      (this.#phase === Phase.head && this.#headParts.length > 0);
  }

  /** Refuses the request with `status` and closes after the answer. */
  #fail(status: number): void {
    this.#respond({ status, body: `${REASONS[status] ?? "error"}\n` }, undefined);
  }

  /** Closes this connection if it is still here `ms` from now, unless another deadline replaces it. */
  #setDeadline(ms: number): void {
    // The sweep's clock lags the real one by up to a period: adding one never closes early.
    if (this.#swept) {
      this.#deadline = HttpResponder.#now + ms + HttpResponder.#sweepPeriodMs;
      return;
    }
    // Only a connection the core opened is timed (a responder driven by hand in a test is not).
    if (!processorAttachment(this)) return;
    const timed = HttpResponder.#timed;
    if (timed.size === 0) HttpResponder.#now = Date.now();
    const limits = this.#limits();
    const shortest = Math.min(limits.headerTimeoutMs, limits.keepAliveTimeoutMs, limits.bodyTimeoutMs);
    HttpResponder.#sweepPeriodMs = Math.min(HttpResponder.#sweepPeriodMs, Math.max(5, shortest / 4));
    this.#deadline = HttpResponder.#now + ms + HttpResponder.#sweepPeriodMs;
    this.#swept = true;
    timed.add(this);
    HttpResponder.#sweepTimer ??= setTimeout(HttpResponder.#sweep, HttpResponder.#sweepPeriodMs);
  }

  /** Closes every connection past its deadline; runs again while any responder is timed. */
  static #sweep = (): void => {
    const now = HttpResponder.#now = Date.now();
    const timed = HttpResponder.#timed;
    for (const responder of timed) {
      if (responder.#deadline > now) continue;
      if (responder.#midRequest) {
        // Mid-request: 408, then a grace period for it to be written before the close is forced.
        responder.#deadline = now + TIMEOUT_ANSWER_GRACE_MS;
        try {
          responder.#fail(408);
          continue;
        } catch {
          // Never out of a timer callback (the runtime would report it): the connection closes instead.
        }
      }
      // A connection whose subclass skipped super.onConnectionLost() leaves here too.
      timed.delete(responder);
      responder.#swept = false;
      responder.#phase = Phase.closing;
      responder.markSocketAsShouldBeClosedImmediately();
    }
    if (timed.size === 0) {
      HttpResponder.#sweepTimer = undefined;
      HttpResponder.#sweepPeriodMs = 1000;
    } else HttpResponder.#sweepTimer = setTimeout(HttpResponder.#sweep, HttpResponder.#sweepPeriodMs);
  };
}

/**
 * A minimal HTTP/1.1 responder for unknown (raw) clients: how an HTTP server is built on asockio.
 *
 * @module
 */
import { concatBytes, toBytes } from "../core/wire/bytes.ts";
import { InlineProcessor } from "./inline_processor.ts";

/** A parsed request. Header names are lower case. */
export interface HttpRequest {
  /** `GET`, `POST`, ... */
  readonly method: string;
  /** The request target, such as `/index.html?x=1`. */
  readonly target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: string;
  /** Headers by lower-case name; repeated headers are joined with `, `. */
  readonly headers: ReadonlyMap<string, string>;
  /** The body (by `content-length`; chunked request bodies are refused with 411). */
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
  /** The body; strings are sent as UTF-8. */
  body?: Uint8Array | string;
  /** Close the connection after this response (`connection: close`), whatever the request asked. */
  close?: boolean;
}

/** Request heads larger than this are answered with 431 and the connection is closed. */
export const MAX_HTTP_HEAD_BYTES = 16 * 1024;
/** Request bodies larger than this are answered with 413 and the connection is closed. */
export const MAX_HTTP_BODY_BYTES = 16 * 1024 * 1024;

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  411: "Length Required",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
};
const latin1 = new TextDecoder("latin1");
const emptyBody = new Uint8Array(0);

/** Response heads without extra headers, keyed by status, body length and keep-alive (one number). */
const headCache = new Map<number, Uint8Array>();
const HEAD_CACHE_ENTRIES = 256;

/** The headers the responder itself reads, found in one case-insensitive pass over the head. */
const FRAMING_HEADERS = /\r\n(content-length|transfer-encoding|connection):([^\r\n]*)/gi;

/** A request whose headers are parsed only if the handler asks for them. */
class Request implements HttpRequest {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly body: Uint8Array;
  #rawHeaders: string;
  #headers: Map<string, string> | undefined;

  constructor(method: string, target: string, version: string, rawHeaders: string, body: Uint8Array) {
    this.method = method;
    this.target = target;
    this.version = version;
    this.#rawHeaders = rawHeaders;
    this.body = body;
  }

  get headers(): ReadonlyMap<string, string> {
    if (this.#headers) return this.#headers;
    const headers = new Map<string, string>();
    for (const line of this.#rawHeaders.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const previous = headers.get(name);
      headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
    }
    return (this.#headers = headers);
  }
}

function findHeadEnd(buffer: Uint8Array, from: number): number {
  for (let i = Math.max(from, 3); i < buffer.length; i++) {
    if (
      buffer[i] === 10 && buffer[i - 1] === 13 && buffer[i - 2] === 10 && buffer[i - 3] === 13
    ) return i + 1;
  }
  return -1;
}

/**
 * A keep-alive HTTP/1.1 responder to use as `unknownClientProcessor`. Override
 * {@linkcode handle}; pipelined requests are answered in order, each response batched with the
 * others of the same read into one write.
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
  #pending: Uint8Array = emptyBody;
  #scanFrom = 0;
  /** Set once a response that closes the connection is queued: later input is not answered. */
  #closing = false;

  /**
   * Answers one request; it may be `async`. Pipelined requests are answered in request order: the
   * next one waits until this answer is ready. A handler that throws or rejects gets `500` with
   * `connection: close`, and the core logs the error. The default answers 404.
   */
  handle(_request: HttpRequest): HttpResponse | Promise<HttpResponse> {
    return { status: 404, body: "not found\n" };
  }

  /**
   * Parses the requests in `data` and answers each complete one in order. Returns a Promise while
   * an asynchronous `handle` is answering: the core then holds the connection's input until it settles.
   */
  override onDataReceived(data: Uint8Array): void | Promise<void> {
    if (this.#closing) return;
    return this.#serve(this.#pending.length ? concatBytes([this.#pending, data]) : data, 0);
  }

  /** Answers the requests in `buffer` from `offset`; keeps the unparsed tail for the next read. */
  #serve(buffer: Uint8Array, offset: number): void | Promise<void> {
    for (;;) {
      const headEnd = findHeadEnd(buffer, offset + this.#scanFrom);
      if (headEnd < 0) {
        if (buffer.length - offset > MAX_HTTP_HEAD_BYTES) return this.#fail(431);
        this.#scanFrom = Math.max(0, buffer.length - offset - 3);
        break;
      }
      this.#scanFrom = 0;
      // A head that arrived whole in one read is held to the same cap as one that arrived in parts.
      if (headEnd - offset > MAX_HTTP_HEAD_BYTES) return this.#fail(431);
      // Only the request line and three headers are read up front; the rest is parsed on demand.
      // Decoding the whole chunk when it is exactly one request head saves a view (costly on Bun).
      const head = offset === 0 && headEnd === buffer.length
        ? latin1.decode(buffer).slice(0, headEnd - 2)
        : latin1.decode(buffer.subarray(offset, headEnd - 2));
      const lineEnd = head.indexOf("\r\n");
      const line = head.slice(0, lineEnd);
      const sp1 = line.indexOf(" ");
      const sp2 = line.lastIndexOf(" ");
      const method = line.slice(0, sp1);
      const target = line.slice(sp1 + 1, sp2);
      const version = line.slice(sp2 + 1);
      if (sp1 <= 0 || sp2 <= sp1 + 1 || !version.startsWith("HTTP/1.") || target.includes(" ")) {
        return this.#fail(400);
      }
      const rawHeaders = head.slice(lineEnd); // "\r\nName: value\r\n...\r\n"
      let contentLength: string | undefined;
      let connection: string | undefined;
      FRAMING_HEADERS.lastIndex = 0;
      for (let match; (match = FRAMING_HEADERS.exec(rawHeaders)) !== null;) {
        const name = match[1]!.toLowerCase();
        if (name === "transfer-encoding") return this.#fail(411);
        if (name === "content-length") contentLength ??= match[2]!.trim();
        else connection ??= match[2]!.trim().toLowerCase();
      }
      const length = Number(contentLength ?? "0");
      if (!Number.isSafeInteger(length) || length < 0) return this.#fail(400);
      if (length > MAX_HTTP_BODY_BYTES) return this.#fail(413);
      if (buffer.length < headEnd + length) {
        buffer = buffer.subarray(offset);
        offset = 0;
        break; // wait for the rest of the body
      }
      const body = length ? buffer.slice(headEnd, headEnd + length) : emptyBody;
      offset = headEnd + length;
      const keepAlive = version === "HTTP/1.1" ? connection !== "close" : connection === "keep-alive";
      let response: HttpResponse | Promise<HttpResponse>;
      try {
        response = this.handle(new Request(method, target, version, rawHeaders, body));
      } catch (err) {
        return this.#failed(err);
      }
      if (response instanceof Promise) return this.#serveLater(response, keepAlive, buffer, offset);
      if (!this.#respond(response, keepAlive)) {
        this.#pending = emptyBody;
        return;
      }
    }
    // Keep only the unparsed tail; a copy, so the chunk it came from can be freed.
    this.#pending = offset >= buffer.length ? emptyBody : buffer.slice(offset);
  }

  /** Waits for an asynchronous answer, sends it, then goes on with the requests after it. */
  async #serveLater(
    pending: Promise<HttpResponse>,
    keepAlive: boolean,
    buffer: Uint8Array,
    offset: number,
  ): Promise<void> {
    let response: HttpResponse;
    try {
      response = await pending;
    } catch (err) {
      return this.#failed(err);
    }
    if (!this.#respond(response, keepAlive)) {
      this.#pending = emptyBody;
      return;
    }
    return this.#serve(buffer, offset);
  }

  /** `handle` threw or rejected: 500 with `connection: close`, then the error goes to the core's logger. */
  #failed(err: unknown): never {
    this.#pending = emptyBody;
    this.#respond({ status: 500, body: "internal server error\n" }, false);
    throw err;
  }

  /** Queues the response; returns whether the connection stays open after it. */
  #respond(response: HttpResponse, keepAlive: boolean): boolean {
    if (response.close) keepAlive = false;
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
    if (body.length) this.outputMessages.push(body);
    if (!keepAlive) {
      this.#closing = true;
      this.markSocketAsReadyToBeClosed();
    }
    return keepAlive;
  }

  #fail(status: number): void {
    this.#pending = emptyBody;
    this.#respond({ status, body: `${REASONS[status] ?? "error"}\n` }, false);
  }
}

/**
 * The HTTP/1.1 request head (RFC 9112), read strictly: where a head ends ({@linkcode RequestHeadScanner})
 * and what it says ({@linkcode parseRequestHead}). Bytes in, a parsed head or an {@linkcode HttpRequestError}
 * out; no I/O. Shared by `HttpResponder` and any listener that reads HTTP heads.
 *
 * @module
 */
import { type AsockioErrorOptions, ProtocolError } from "../errors.ts";

/** A request refused while reading it, with the status code that answers it (400, 413, 417, 501, 505). */
export class HttpRequestError extends ProtocolError {
  /** The HTTP status that answers the request. */
  readonly status: number;

  /** Creates the error for `status` with a sentence-case message. */
  constructor(status: number, message: string, options?: AsockioErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

const CR = 13;
const LF = 10;

/** Where the scanner stands, as the last bytes it saw. */
const Scan = {
  /** Before the request line: empty lines (CRLF) are skipped there, as RFC 9112 §2.2 allows. */
  start: 0,
  startCr: 1,
  inLine: 2,
  lineCr: 3,
  /** Just after a CRLF that ended a non-empty line. */
  lineStart: 4,
  /** A CR at the start of a line: the head ends at the LF after it. */
  endCr: 5,
} as const;
type Scan = typeof Scan[keyof typeof Scan];

/**
 * Finds the end of a request head (the empty line) across any split of its bytes, looking at each byte
 * once. A bare LF or a bare CR is refused at once (400), so a head with bare line endings is never held.
 */
export class RequestHeadScanner {
  #state: Scan = Scan.start;

  /** Forgets the head scanned so far, for the next request. */
  reset(): void {
    this.#state = Scan.start;
  }

  /** True before the first byte of a request line (leading empty lines do not count). */
  get idle(): boolean {
    return this.#state === Scan.start;
  }

  /**
   * Scans `bytes` from `from`; returns the index just after the head's final CRLF, or -1 when the head
   * goes on past `bytes`.
   *
   * @throws {HttpRequestError} 400 for a line ending that is not CRLF.
   */
  scan(bytes: Uint8Array, from: number): number {
    let state: Scan = this.#state;
    for (let i = from; i < bytes.length; i++) {
      const byte = bytes[i]!;
      switch (state) {
        case Scan.inLine:
          if (byte === CR) state = Scan.lineCr;
          else if (byte === LF) throw bareLineEnding("LF");
          continue;
        case Scan.start:
          if (byte === CR) state = Scan.startCr;
          else if (byte === LF) throw bareLineEnding("LF");
          else state = Scan.inLine;
          continue;
        case Scan.lineStart:
          if (byte === CR) state = Scan.endCr;
          else if (byte === LF) throw bareLineEnding("LF");
          else state = Scan.inLine;
          continue;
        case Scan.startCr:
        case Scan.lineCr:
        case Scan.endCr:
          if (byte !== LF) throw bareLineEnding("CR");
          if (state === Scan.endCr) {
            this.#state = Scan.start;
            return i + 1;
          }
          state = state === Scan.startCr ? Scan.start : Scan.lineStart;
      }
    }
    this.#state = state;
    return -1;
  }
}

function bareLineEnding(which: string): HttpRequestError {
  return new HttpRequestError(400, `Cannot read HTTP request head: bare ${which} where CRLF is due`);
}

/** A request head that {@linkcode parseRequestHead} accepted. Header names are lower case. */
export interface RequestHead {
  /** The method, a token such as `GET`. */
  readonly method: string;
  /** The request target, such as `/index.html?x=1`: visible ASCII only. */
  readonly target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: "HTTP/1.1" | "HTTP/1.0";
  /** Each field line's value by lower-case name; repeated fields are joined with `, `. Parsed on first use. */
  readonly headers: ReadonlyMap<string, string>;
  /** The body's length from `Content-Length`, or `undefined` without one. */
  readonly contentLength: number | undefined;
  /** True when the body is sent with the chunked transfer coding. */
  readonly chunked: boolean;
  /** True when the connection stays open after the answer (the version and `Connection` decide). */
  readonly keepAlive: boolean;
  /** True for an HTTP/1.1 request with `Expect: 100-continue`. */
  readonly expectContinue: boolean;
  /** The `Connection` header's options, in lower case (such as `upgrade`). */
  readonly connection: readonly string[];
}

/** Token characters (RFC 9110 §5.6.2), by char code. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const isTchar = (code: number) => code < 128 && TCHAR[code] === 1;

/** True when `text` is a non-empty token. */
function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (!isTchar(text.charCodeAt(i))) return false;
  return true;
}

// windows-1252 ("latin1" in WHATWG): every byte is one char; control bytes keep their codes, and
// bytes 0x80-0xFF all decode to codes >= 0x80, which is all the checks below look at.
const latin1 = new TextDecoder("latin1");

function refuse(message: string, status = 400): HttpRequestError {
  return new HttpRequestError(status, `Cannot read HTTP request head: ${message}`);
}

/** The elements of a comma-separated list value, trimmed, empty ones dropped (RFC 9110 §5.6.1). */
function listElements(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(",")) {
    const element = part.replace(/^[ \t]+|[ \t]+$/g, "");
    if (element) out.push(element);
  }
  return out;
}

/** The header fields that decide framing, keep-alive and expectations, by name length. */
const FRAMING_FIELDS = new Map<number, string>(
  ["host", "expect", "connection", "content-length", "transfer-encoding"].map((name) => [name.length, name]),
);

/** The framing field named by `text[start, end)` in any case, or `undefined`; no string is made for others. */
function framingField(text: string, start: number, end: number): string | undefined {
  const name = FRAMING_FIELDS.get(end - start);
  if (name === undefined) return undefined;
  // Names are tokens here, so setting bit 0x20 lower-cases letters and leaves '-' as it is.
  for (let i = 0; i < name.length; i++) {
    if ((text.charCodeAt(start + i) | 0x20) !== name.charCodeAt(i)) return undefined;
  }
  return name;
}

class ParsedHead implements RequestHead {
  readonly method: string;
  readonly target: string;
  readonly version: "HTTP/1.1" | "HTTP/1.0";
  contentLength: number | undefined = undefined;
  chunked = false;
  keepAlive = true;
  expectContinue = false;
  connection: string[] = [];
  /** The field lines as text: each line's start, colon and end (value trimmed) are in `#marks`. */
  readonly #text: string;
  readonly #marks: number[];
  #headers: Map<string, string> | undefined;

  constructor(
    method: string,
    target: string,
    version: "HTTP/1.1" | "HTTP/1.0",
    text: string,
    marks: number[],
  ) {
    this.method = method;
    this.target = target;
    this.version = version;
    this.#text = text;
    this.#marks = marks;
  }

  get headers(): ReadonlyMap<string, string> {
    if (this.#headers) return this.#headers;
    const headers = new Map<string, string>();
    const marks = this.#marks;
    for (let i = 0; i < marks.length; i += 4) {
      const name = this.#text.slice(marks[i]!, marks[i + 1]!).toLowerCase();
      const value = this.#text.slice(marks[i + 2]!, marks[i + 3]!);
      const previous = headers.get(name);
      headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
    }
    return (this.#headers = headers);
  }
}

/**
 * Parses one whole request head (as {@linkcode RequestHeadScanner} delimited it, final CRLF included) as
 * strictly as RFC 9112 and llhttp: a token method, a visible-ASCII target, `HTTP/1.0` or `HTTP/1.1`, field
 * names that are tokens followed at once by `:`, no control characters, no obsolete line folding, one
 * `Host` (required in HTTP/1.1), `Content-Length` digits only (repeats must agree) and never beside
 * `Transfer-Encoding`, whose last coding must be `chunked`, and a `Connection` made of tokens.
 *
 * @throws {HttpRequestError} With the status that answers the request: 400, 417 (an expectation other than
 * `100-continue`), 501 (a transfer coding other than `chunked`) or 505 (another HTTP version).
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  const text = latin1.decode(bytes);
  let i = 0;
  if (!text.endsWith("\r\n\r\n")) throw refuse("the head does not end with an empty line");
  while (text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF) i += 2; // leading empty lines
  // request-line = method SP request-target SP HTTP-version CRLF
  const methodStart = i;
  while (isTchar(text.charCodeAt(i))) i++;
  if (i === methodStart || text.charCodeAt(i) !== 32) throw refuse("the method is not a token");
  const method = text.slice(methodStart, i++);
  const targetStart = i;
  for (let c = text.charCodeAt(i); c > 32 && c < 127; c = text.charCodeAt(++i));
  if (i === targetStart || text.charCodeAt(i) !== 32) {
    throw refuse("the request target is not visible ASCII followed by one space");
  }
  const target = text.slice(targetStart, i++);
  const versionText = text.slice(i, i + 8);
  if (text.charCodeAt(i + 8) !== CR || text.charCodeAt(i + 9) !== LF) {
    throw refuse("the request line does not end after the version");
  }
  let version: "HTTP/1.1" | "HTTP/1.0";
  if (versionText === "HTTP/1.1") version = "HTTP/1.1";
  else if (versionText === "HTTP/1.0") version = "HTTP/1.0";
  else if (/^HTTP\/\d\.\d$/.test(versionText)) throw refuse(`version ${versionText} is not served`, 505);
  else throw refuse("the request line does not end with an HTTP version");
  i += 10;

  const marks: number[] = [];
  let hosts = 0;
  let lengthValue: string | undefined;
  let codings: string[] | undefined;
  let expect: string | undefined;
  const connection: string[] = [];
  for (;;) {
    const lineStart = i;
    let c = text.charCodeAt(i);
    if (c === CR) {
      if (i !== text.length - 2) throw refuse("a bare CR");
      break;
    }
    if (c === 32 || c === 9) throw refuse("obsolete line folding");
    while (isTchar(c)) c = text.charCodeAt(++i);
    if (i === lineStart || c !== 58) throw refuse("a field name is not a token followed by ':'");
    const nameEnd = i++;
    while ((c = text.charCodeAt(i)) === 32 || c === 9) i++;
    const valueStart = i;
    let valueEnd = i;
    for (;; c = text.charCodeAt(++i)) {
      if (c === CR) {
        if (text.charCodeAt(i + 1) !== LF) throw refuse("a bare CR");
        break;
      }
      if (c < 32 && c !== 9 || c === 127) throw refuse("a field value holds a control character");
      if (c !== 32 && c !== 9) valueEnd = i + 1;
    }
    i += 2;
    marks.push(lineStart, nameEnd, valueStart, valueEnd);
    const name = framingField(text, lineStart, nameEnd);
    if (name === undefined) continue;
    const value = text.slice(valueStart, valueEnd);
    if (name === "host") hosts++;
    else if (name === "content-length") {
      for (const element of value.split(",")) {
        const digits = element.replace(/^[ \t]+|[ \t]+$/g, "");
        if (!/^\d+$/.test(digits)) throw refuse("Content-Length is not digits");
        if (lengthValue === undefined) lengthValue = digits;
        else if (Number(lengthValue) !== Number(digits)) throw refuse("Content-Length values differ");
      }
    } else if (name === "transfer-encoding") {
      codings ??= [];
      for (const element of listElements(value)) codings.push(element.toLowerCase());
    } else if (name === "connection") {
      for (const element of listElements(value)) {
        if (!isToken(element)) throw refuse("Connection is not a list of tokens");
        connection.push(element.toLowerCase());
      }
    } else if (name === "expect") {
      for (const element of listElements(value)) {
        if (element.toLowerCase() !== "100-continue") expect = element;
        else expect ??= "100-continue";
      }
    }
  }
  const head = new ParsedHead(method, target, version, text, marks);
  if (hosts > 1) throw refuse("more than one Host");
  if (hosts === 0 && version === "HTTP/1.1") throw refuse("an HTTP/1.1 request without Host");
  if (codings !== undefined) {
    if (lengthValue !== undefined) throw refuse("both Content-Length and Transfer-Encoding");
    if (version === "HTTP/1.0") throw refuse("Transfer-Encoding in an HTTP/1.0 request");
    const last = codings.length - 1;
    if (codings[last] !== "chunked" || codings.indexOf("chunked") !== last) {
      throw refuse("the last transfer coding is not chunked, or chunked is not last");
    }
    if (last > 0) throw refuse(`transfer coding ${codings[0]} is not implemented`, 501);
    head.chunked = true;
  }
  if (lengthValue !== undefined) head.contentLength = Number(lengthValue);
  head.connection = connection;
  head.keepAlive = !connection.includes("close") &&
    (version === "HTTP/1.1" || connection.includes("keep-alive"));
  // RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored.
  if (expect !== undefined && version === "HTTP/1.1") {
    if (expect !== "100-continue") throw refuse(`expectation ${expect} is not met`, 417);
    head.expectContinue = true;
  }
  return head;
}

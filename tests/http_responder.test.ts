import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { delay, missingTool, tempDir, TEST_TIMEOUT } from "./_helpers.ts";
import { writeFile } from "node:fs/promises";
import { Agent, request as httpRequest, type RequestOptions } from "node:http";
import { networkInterfaces } from "node:os";
import type { IoCore } from "../mod.ts";
import {
  type HttpRequest,
  HttpResponder,
  type HttpResponse,
  MAX_HTTP_BODY_BYTES,
  MAX_HTTP_HEAD_BYTES,
} from "../processors/http_responder.ts";
import { startProcessorCore } from "./_core_fixture.ts";
import { exchange, NetPeer } from "./_net_client.ts";
import { Rng } from "./_stream_check.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds the responder the given chunks and returns everything it queued, as text. */
function drive(responder: HttpResponder, ...chunks: string[]): string {
  for (const chunk of chunks) responder.onDataReceived(encoder.encode(chunk));
  const out = responder.outputMessages.map((m) => typeof m === "string" ? m : decoder.decode(m)).join("");
  responder.outputMessages.length = 0;
  return out;
}

/** Every target `handle` was called with, for the responders below. */
class Recorder extends HttpResponder {
  readonly seen: string[] = [];
  override handle(request: HttpRequest): HttpResponse {
    this.seen.push(`${request.method} ${request.target} ${request.body.length}`);
    return { body: request.target };
  }
}

/** The full response the responder sends for `status` with its default body, closing. */
function closingResponse(status: number, reason: string, body = `${reason}\n`): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
}

/** A kept-alive 200 whose body is `body`. */
const ok = (body: string) => `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`;

describe("HttpResponder", () => {
  it("closes after a response whose handler asks for it, and answers nothing after it", () => {
    class Closing extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        return { body: "bye", close: request.target === "/last" };
      }
    }
    const responder = new Closing();
    const out = drive(
      responder,
      "GET /last HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert.equal(out, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbye");
  });

  it("answers pipelined keep-alive requests in order, split anywhere", () => {
    const responder = new Recorder();
    const stream = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\nHost: x\r\n\r\n" +
      "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let out = "";
    for (let i = 0; i < stream.length; i += 7) out += drive(responder, stream.slice(i, i + 7));
    assert.deepEqual(responder.seen, ["GET /a 0", "GET /bb 0", "GET /c 0"]);
    assert.equal(out, ok("/a") + ok("/bb") + ok("/c"));
  });

  it("parses headers on demand and reads a content-length body", () => {
    let captured: HttpRequest | undefined;
    class Capture extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        captured = request;
        return { status: 200, headers: { "x-seen": String(request.headers.get("x-multi")) } };
      }
    }
    const out = drive(
      new Capture(),
      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Multi: a\r\nx-multi: b\r\n\r\nhel",
      "lo",
    );
    assert.equal(decoder.decode(captured!.body), "hello");
    assert.equal(captured!.headers.get("content-length"), "5");
    assert.equal(out, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-seen: a, b\r\n\r\n");
  });

  it("closes after Connection: close, after keep-alive, close, and after HTTP/1.0 without keep-alive", () => {
    const closes = (text: string) => /connection: close\r\n/.test(drive(new Recorder(), text));
    assert.equal(closes("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), true);
    assert.equal(closes("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n"), true);
    assert.equal(closes("GET / HTTP/1.1\r\nHost: x\r\nCONNECTION:  Close \r\n\r\n"), true);
    assert.equal(closes("GET / HTTP/1.0\r\n\r\n"), true);
    assert.equal(closes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false);
    assert.equal(closes("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"), false);
    assert.equal(closes("GET / HTTP/1.1\r\nHost: x\r\nX-Connection: close-ish\r\n\r\n"), false);
  });

  const refusals: [string, string, string][] = [
    ["garbage", "garbage\r\n\r\n", closingResponse(400, "Bad Request")],
    ["a version that is not HTTP", "GET / FTP/1.0\r\n\r\n", closingResponse(400, "Bad Request")],
    ["HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", closingResponse(505, "HTTP Version Not Supported")],
    [
      "Content-Length -1",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      closingResponse(400, "Bad Request"),
    ],
    [
      "a declared body over maxBodyBytes",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
      closingResponse(413, "Content Too Large"),
    ],
    [
      "Transfer-Encoding gzip, chunked",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      closingResponse(501, "Not Implemented"),
    ],
    [
      "an unknown expectation",
      "GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n",
      closingResponse(417, "Expectation Failed"),
    ],
    [
      "a head over maxHeadBytes",
      "GET /" + "x".repeat(20_000),
      closingResponse(431, "Request Header Fields Too Large"),
    ],
  ];
  for (const [label, request, response] of refusals) {
    it(`answers ${label} with exactly its refusal, closing`, () => {
      const responder = new Recorder();
      assert.equal(drive(responder, request), response);
      assert.deepEqual(responder.seen, []);
    });
  }

  it("answers a head over MAX_HTTP_HEAD_BYTES with 431, whether it arrives in one read or in parts", () => {
    const prefix = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ";
    const headOf = (bytes: number) => prefix + "x".repeat(bytes - prefix.length - 4) + "\r\n\r\n";
    const tooBig = headOf(MAX_HTTP_HEAD_BYTES + 1);
    assert.match(drive(new Recorder(), tooBig), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(drive(new Recorder(), tooBig.slice(0, 9000), tooBig.slice(9000)), /^HTTP\/1\.1 431 /);
    const after = new Recorder();
    assert.match(
      drive(after, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + tooBig),
      /^HTTP\/1\.1 200 .*HTTP\/1\.1 431 /s,
    );
    assert.deepEqual(after.seen, ["GET /a 0"]);
    // A head of exactly the cap is served.
    assert.match(drive(new Recorder(), headOf(MAX_HTTP_HEAD_BYTES)), /^HTTP\/1\.1 200 /);
    const exact = headOf(MAX_HTTP_HEAD_BYTES);
    assert.match(drive(new Recorder(), exact.slice(0, 9000), exact.slice(9000)), /^HTTP\/1\.1 200 /);
  });

  it("takes maxHeadBytes and maxBodyBytes from static fields of the subclass", () => {
    class Small extends Recorder {
      static override maxHeadBytes = 64;
      static override maxBodyBytes = 8;
    }
    const longHead = `GET / HTTP/1.1\r\nHost: x\r\nX-A: ${"a".repeat(40)}\r\n\r\n`;
    assert.equal(drive(new Small(), longHead), closingResponse(431, "Request Header Fields Too Large"));
    assert.equal(drive(new Recorder(), longHead), ok("/"));
    const nine = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n123456789";
    assert.equal(drive(new Small(), nine), closingResponse(413, "Content Too Large"));
    assert.equal(drive(new Recorder(), nine), ok("/"));
  });

  const smuggling: [string, string][] = [
    [
      "two different Content-Length headers",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 10\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    [
      "Content-Length beside Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    [
      "Content-Length 0x5",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    [
      "an empty Content-Length",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    [
      "a chunked coding that is not last",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    [
      "a method of control bytes",
      "\x00\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    [
      "obsolete line folding",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
  ];
  for (const [label, stream] of smuggling) {
    it(`refuses ${label} with 400 and never answers the request smuggled after it`, () => {
      const responder = new Recorder();
      assert.equal(drive(responder, stream), closingResponse(400, "Bad Request"));
      assert.equal(drive(responder, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"), "");
      assert.deepEqual(responder.seen, []);
    });
  }

  it("answers a head with bare LF line endings with 400 at once, byte by byte or whole", () => {
    const bareLf = "GET / HTTP/1.1\nHost: x\n\n";
    assert.equal(drive(new Recorder(), bareLf), closingResponse(400, "Bad Request"));
    const responder = new Recorder();
    assert.equal(drive(responder, ...bareLf.slice(0, 15)), closingResponse(400, "Bad Request"));
  });

  it("reads a chunked body split anywhere, drops extensions and trailers, then the next request", () => {
    const stream = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n" +
      "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    const bodies: string[] = [];
    class Echo extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        bodies.push(decoder.decode(request.body));
        return { body: `${request.target} ${request.headers.get("x-trailer")}` };
      }
    }
    const rng = new Rng(25);
    for (let round = 0; round < 100; round++) {
      const responder = new Echo();
      let out = "";
      for (let i = 0; i < stream.length;) {
        const n = 1 + rng.int(round === 0 ? 1 : 24);
        out += drive(responder, stream.slice(i, i + n));
        i += n;
      }
      assert.equal(out, ok("/up undefined") + ok("/next undefined"), `round ${round}`);
    }
    assert.deepEqual(new Set(bodies), new Set(["hello, world", ""]));
  });

  it("answers 413 as soon as a chunked body passes maxBodyBytes, counted across chunks", () => {
    class Small extends Recorder {
      static override maxBodyBytes = 8;
    }
    const responder = new Small();
    const head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert.equal(drive(responder, head, "4\r\nabcd\r\n"), "");
    assert.equal(drive(responder, "5\r\n"), closingResponse(413, "Content Too Large"));
    assert.deepEqual(responder.seen, []);
  });

  it("answers Expect: 100-continue with 100 before the body, and 413 at once for a body over the cap", () => {
    const responder = new Recorder();
    const head = "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    assert.equal(drive(responder, head), "HTTP/1.1 100 Continue\r\n\r\n");
    assert.equal(drive(responder, "hello"), ok("/e"));
    // The body already here: no 100.
    assert.equal(drive(new Recorder(), head + "hello"), ok("/e"));
    const chunked =
      "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert.equal(drive(new Recorder(), chunked), "HTTP/1.1 100 Continue\r\n\r\n");
    const tooBig = "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 16777217\r\n\r\n";
    assert.equal(drive(new Recorder(), tooBig), closingResponse(413, "Content Too Large"));
  });

  it("answers HEAD with the headers GET gets and no body, keeping later requests framed", () => {
    const responder = new Recorder();
    const out = drive(responder, "HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\nGET /abc HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(out, "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n" + ok("/abc"));
    assert.deepEqual(responder.seen, ["HEAD /abc 0", "GET /abc 0"]);
  });

  it("reads a 16 MiB body that arrives in 64 KiB reads, byte for byte", () => {
    let sum = -1;
    class Sum extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        sum = request.body.reduce((a, b) => a + b, 0) + request.body.length * 1e6;
        return { body: "ok" };
      }
    }
    const size = 16 * 1024 * 1024;
    const responder = new Sum();
    let out = drive(responder, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
    const piece = new Uint8Array(64 * 1024).map((_, i) => i % 251);
    const pieceSum = piece.reduce((a, b) => a + b, 0);
    for (let sent = 0; sent < size; sent += piece.length) responder.onDataReceived(piece.slice());
    out += drive(responder);
    assert.equal(out, ok("ok"));
    assert.equal(sum, (size / piece.length) * pieceSum + size * 1e6);
  });

  it("hands on each content-length body whole, owning its bytes, whatever reads it came in", () => {
    const bodies: Uint8Array[] = [];
    class Keep extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        if (request.method !== "POST") return { body: request.target };
        bodies.push(request.body);
        return { body: `${request.body.length}` };
      }
    }
    const rng = new Rng(25);
    const sizes = [1, 2, 3, 7, 100, 4096, 70_000, 300_001];
    for (const size of sizes) {
      const body = new Uint8Array(size).map(() => rng.int(256));
      const head = encoder.encode(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
      const next = encoder.encode("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
      const wire = new Uint8Array(head.length + size + next.length);
      wire.set(head);
      wire.set(body, head.length);
      wire.set(next, head.length + size);
      for (let trial = 0; trial < 4; trial++) {
        bodies.length = 0;
        const responder = new Keep();
        const reads: Uint8Array[] = [];
        // Reads of random sizes, the last one ending with the next request's head.
        for (let at = 0; at < wire.length;) {
          const n = Math.min(wire.length - at, 1 + rng.int(trial === 0 ? 16 : 100_000));
          const read = wire.slice(at, at + n);
          reads.push(read);
          responder.onDataReceived(read);
          at += n;
        }
        const out = drive(responder);
        assert.equal(out, ok(`${size}`) + ok("/after"), `size ${size}, trial ${trial}`);
        // The transport may reuse its read buffers: the body must not be a view of them.
        for (const read of reads) read.fill(0);
        assert.deepEqual(bodies[0], body, `size ${size}, trial ${trial}`);
        assert.equal(bodies[0]!.byteLength, bodies[0]!.buffer.byteLength);
      }
    }
  });
  it("answers nothing more once it has queued a response that closes the connection", () => {
    const closed = new Recorder();
    assert.match(drive(closed, "GET / HTTP/1.0\r\n\r\n"), /connection: close\r\n/);
    assert.equal(drive(closed, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"), "");
    assert.deepEqual(closed.seen, ["GET / 0"]);
  });
});

const handlerError = new Error("handler exploded");

/** Answers `hello from <target>`, and throws for `/throw`. */
class Hello extends HttpResponder {
  override handle(request: HttpRequest): HttpResponse {
    if (request.target === "/throw") throw handlerError;
    return { body: `hello from ${request.target}\n` };
  }
}

/** A core serving {@linkcode Hello} on loopback; closed with `await using`. */
interface HttpServer {
  readonly core: IoCore;
  /** The bound port. */
  readonly port: number;
  /** Every detail the core passed to `logger.error`. */
  readonly errors: unknown[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a core serving {@linkcode Hello} to raw clients on `host`, port 0. */
async function httpServer(host = "127.0.0.1", responder: typeof HttpResponder = Hello): Promise<HttpServer> {
  const errors: unknown[] = [];
  const fx = await startProcessorCore(responder, {
    listeners: [{ transport: "tcp", hostname: host, port: 0 }],
    logger: { error: (_message, ...details) => errors.push(...details) },
  });
  return { core: fx.core, port: fx.port(), errors, [Symbol.asyncDispose]: () => fx.close() };
}

// As in transport.test.ts: the ::1 case is skipped where the machine has no IPv6 loopback.
const noIpv6Reason = Object.values(networkInterfaces()).flat().some((info) => info?.address === "::1")
  ? undefined
  : "this machine has no IPv6 loopback (::1)";

const bigHeader = "x".repeat(20 * 1024);

/** Answers with what it read: method, target, how the body came, its length and a checksum. */
class BodyEcho extends HttpResponder {
  override handle(request: HttpRequest): HttpResponse {
    const framing = request.headers.get("transfer-encoding") ?? "length";
    return {
      body: `${request.method} ${request.target} ${framing} ${request.body.length} ${
        checksum(request.body)
      }\n`,
    };
  }
}

/** The checksum {@linkcode BodyEcho} answers for `body`. */
function checksum(body: Uint8Array): number {
  let sum = 0;
  for (const byte of body) sum = (sum + byte) % 65521;
  return sum;
}

/** {@linkcode Hello} with timeouts short enough to watch. */
class Impatient extends Hello {
  static override headerTimeoutMs = 300;
  static override keepAliveTimeoutMs = 300;
  static override bodyTimeoutMs = 300;
}

describe("HttpResponder over a socket", () => {
  for (const host of ["127.0.0.1", "::1"]) {
    const options = host === "::1" && noIpv6Reason ? { ...TEST_TIMEOUT, skip: noIpv6Reason } : TEST_TIMEOUT;
    it(`answers an HTTP/1.0 request in full over ${host}, then EOF`, options, async () => {
      await using server = await httpServer(host);
      assert.deepEqual(
        await exchange(server.port, ["GET /old HTTP/1.0\r\nHost: x\r\n\r\n"], { host }),
        { text: closingResponse(200, "OK", "hello from /old\n"), eof: true },
      );
    });
  }

  it(
    "answers each refusal in full, then EOF, and never the request smuggled after it",
    TEST_TIMEOUT,
    async () => {
      await using server = await httpServer();
      const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
      const cases: [string, string[], string][] = [
        ["garbage", ["garbage\r\n\r\n"], closingResponse(400, "Bad Request")],
        [
          "Content-Length 3 and 10",
          [`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 10\r\n\r\nabc${smuggled}`],
          closingResponse(400, "Bad Request"),
        ],
        ...["0x5", "5e0", "5.0", ""].map((value): [string, string[], string] => [
          `Content-Length '${value}'`,
          [`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\nhello${smuggled}`],
          closingResponse(400, "Bad Request"),
        ]),
        [
          "Content-Length with Transfer-Encoding",
          [`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
          closingResponse(400, "Bad Request"),
        ],
        [
          "Transfer-Encoding gzip, chunked",
          ["POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"],
          closingResponse(501, "Not Implemented"),
        ],
        [
          "a method of control bytes",
          [`\x00\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n${smuggled}`],
          closingResponse(400, "Bad Request"),
        ],
        ["bare LF line endings", ["GET / HTTP/1.1\nHost: x\n\n"], closingResponse(400, "Bad Request")],
        [
          "obsolete line folding",
          [`GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n${smuggled}`],
          closingResponse(400, "Bad Request"),
        ],
        [
          "a control byte in a header",
          ["GET / HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n"],
          closingResponse(400, "Bad Request"),
        ],
        ["no Host in HTTP/1.1", ["GET / HTTP/1.1\r\n\r\n"], closingResponse(400, "Bad Request")],
        [
          "a body over maxBodyBytes",
          ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"],
          closingResponse(413, "Content Too Large"),
        ],
        [
          "a 20 KiB header in one write",
          [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${bigHeader}\r\n\r\n`],
          closingResponse(431, "Request Header Fields Too Large"),
        ],
        [
          "a 20 KiB header in two writes",
          [
            `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${bigHeader.slice(0, 9000)}`,
            `${bigHeader.slice(9000)}\r\n\r\n`,
          ],
          closingResponse(431, "Request Header Fields Too Large"),
        ],
        [
          "an unknown expectation",
          ["PUT / HTTP/1.1\r\nHost: x\r\nExpect: 42\r\n\r\n"],
          closingResponse(417, "Expectation Failed"),
        ],
        ["HTTP/2.0", ["GET / HTTP/2.0\r\n\r\n"], closingResponse(505, "HTTP Version Not Supported")],
      ];
      // Every case first, so a failure shows every answer.
      const got: Record<string, unknown> = {};
      const expected: Record<string, unknown> = {};
      for (const [label, writes, response] of cases) {
        got[label] = await exchange(server.port, writes);
        expected[label] = { text: response, eof: true };
      }
      assert.deepEqual(got, expected);
    },
  );

  it("closes with keep-alive, close after the answer", TEST_TIMEOUT, async () => {
    await using server = await httpServer();
    assert.deepEqual(
      await exchange(server.port, ["GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n"]),
      { text: closingResponse(200, "OK", "hello from /a\n"), eof: true },
    );
  });

  it(
    "answers HEAD with GET's headers and no body, then serves a GET on the same connection",
    TEST_TIMEOUT,
    async () => {
      await using server = await httpServer();
      const got = await exchange(server.port, [
        "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ]);
      assert.deepEqual(got, {
        text: "HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n" + closingResponse(200, "OK", "hello from /h\n"),
        eof: true,
      });
    },
  );

  it("sends 100 Continue before it reads the body, then the answer", TEST_TIMEOUT, async () => {
    await using server = await httpServer("127.0.0.1", BodyEcho);
    const peer = await NetPeer.connect(server.port);
    peer.write("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert.ok(await peer.until(() => peer.text().length >= 25), "an interim answer before the body");
    assert.equal(peer.text(), "HTTP/1.1 100 Continue\r\n\r\n");
    peer.write("hello");
    peer.end();
    const body = `POST /e length 5 ${checksum(encoder.encode("hello"))}\n`;
    assert.deepEqual(await peer.outcome(), {
      text: "HTTP/1.1 100 Continue\r\n\r\n" + ok(body),
      eof: true,
    });
  });

  it("reads a 16 MiB body and a chunked one written in pieces", { timeout: 120_000 }, async () => {
    await using server = await httpServer("127.0.0.1", BodyEcho);
    const size = 16 * 1024 * 1024;
    const body = new Uint8Array(size).map((_, i) => (i * 7) % 256);
    const peer = await NetPeer.connect(server.port);
    peer.write(`POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
    for (let i = 0; i < size; i += 1024 * 1024) peer.write(body.subarray(i, i + 1024 * 1024));
    peer.write("POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    peer.write("3\r\nabc\r\n");
    peer.write("4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n");
    const first = `POST /big length ${size} ${checksum(body)}\n`;
    const second = `POST /chunks chunked 7 ${checksum(encoder.encode("abcdefg"))}\n`;
    assert.deepEqual(await peer.outcome(100_000), {
      text: ok(first) + closingResponse(200, "OK", second),
      eof: true,
    });
  });

  it(
    "answers a slowloris head and a slow body 408 then closes; closes an idle kept-alive and a silent one unanswered",
    TEST_TIMEOUT,
    async () => {
      await using server = await httpServer("127.0.0.1", Impatient);
      const slow = await NetPeer.connect(server.port);
      slow.write("GET / HTTP/1.1\r\nHost: x\r\n");
      const idle = await NetPeer.connect(server.port);
      idle.write("GET /i HTTP/1.1\r\nHost: x\r\n\r\n");
      const silent = await NetPeer.connect(server.port);
      const slowBody = await NetPeer.connect(server.port);
      slowBody.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
      // As curl's `-T -` from a stalled pipe: chunked, after 100 Continue.
      const slowChunks = await NetPeer.connect(server.port);
      slowChunks.write(
        "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
      );
      assert.ok(await slowChunks.until(() => slowChunks.text().length >= 25), "100 Continue");
      slowChunks.write("3\r\nabc\r\n");
      assert.deepEqual(
        await Promise.all([
          slow.outcome(10_000),
          idle.outcome(10_000),
          silent.outcome(10_000),
          slowBody.outcome(10_000),
          slowChunks.outcome(10_000),
        ]),
        [
          { text: closingResponse(408, "Request Timeout"), eof: true },
          { text: ok("hello from /i\n"), eof: true },
          { text: "", eof: true },
          { text: closingResponse(408, "Request Timeout"), eof: true },
          { text: "HTTP/1.1 100 Continue\r\n\r\n" + closingResponse(408, "Request Timeout"), eof: true },
        ],
      );
    },
  );

  it("keeps a connection whose requests keep coming past the timeouts", TEST_TIMEOUT, async () => {
    await using server = await httpServer("127.0.0.1", Impatient);
    const peer = await NetPeer.connect(server.port);
    let expected = "";
    for (let i = 0; i < 6; i++) {
      peer.write(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expected += ok(`hello from /${i}\n`);
      assert.ok(await peer.until(() => peer.text() === expected), `answer ${i}`);
      await delay(100); // Not a wait: pacing, so that the requests span the timeouts.
    }
    peer.end();
    assert.deepEqual(await peer.outcome(), { text: expected, eof: true });
  });

  it("sends fetch a 200 with its body for Connection: close", TEST_TIMEOUT, async () => {
    await using server = await httpServer();
    const response = await fetch(`http://127.0.0.1:${server.port}/fetched`, {
      headers: { connection: "close" },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "hello from /fetched\n");
  });

  it("reads the body of a fetch with a ReadableStream body", TEST_TIMEOUT, async () => {
    await using server = await httpServer("127.0.0.1", BodyEcho);
    const parts = ["hello", ", ", "stream"];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const part = parts.shift();
        if (part === undefined) controller.close();
        else controller.enqueue(encoder.encode(part));
      },
    });
    const response = await fetch(`http://127.0.0.1:${server.port}/stream`, {
      method: "POST",
      body: stream,
      duplex: "half",
      signal: AbortSignal.timeout(5000),
    } as RequestInit);
    assert.equal(response.status, 200);
    const text = await response.text();
    // Every runtime's fetch sends a stream of unknown length chunked.
    assert.equal(text, `POST /stream chunked 13 ${checksum(encoder.encode("hello, stream"))}\n`);
  });

  it("sends fetch a 431 with its body for a 20 KiB header", TEST_TIMEOUT, async () => {
    await using server = await httpServer();
    const response = await fetch(`http://127.0.0.1:${server.port}/`, {
      headers: { "x-big": bigHeader },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(response.status, 431);
    assert.equal(await response.text(), "Request Header Fields Too Large\n");
  });

  it("sends fetch a 500 with its body when handle throws, and logs the error", TEST_TIMEOUT, async () => {
    await using server = await httpServer();
    const response = await fetch(`http://127.0.0.1:${server.port}/throw`, {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(response.status, 500);
    assert.equal(await response.text(), "internal server error\n");
    assert.ok(server.errors.includes(handlerError), "logger.error received the handler's error");
  });
});

/** One `node:http` request; resolves with the status, the body and the `connection` header. */
function nodeRequest(
  options: RequestOptions,
  writes: string[],
): Promise<{ status: number | undefined; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", timeout: 5000, ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode, body, connection: res.headers.connection }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("node:http request timed out")));
    for (const data of writes) req.write(data);
    req.end();
  });
}

describe("HttpResponder answering node:http", () => {
  it("serves kept-alive GETs, a HEAD and a chunked POST to node:http's client", TEST_TIMEOUT, async () => {
    await using server = await httpServer("127.0.0.1", BodyEcho);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const common = { port: server.port, agent };
      const got = [
        await nodeRequest({ ...common, path: "/one" }, []),
        await nodeRequest({ ...common, path: "/two" }, []),
        await nodeRequest({ ...common, path: "/head", method: "HEAD" }, []),
        await nodeRequest({ ...common, path: "/up", method: "POST" }, ["hello", " ", "node"]),
        await nodeRequest({ ...common, path: "/len", method: "POST", headers: { "content-length": 4 } }, [
          "abcd",
        ]),
      ];
      assert.deepEqual(got, [
        { status: 200, body: "GET /one length 0 0\n", connection: undefined },
        { status: 200, body: "GET /two length 0 0\n", connection: undefined },
        { status: 200, body: "", connection: undefined },
        {
          status: 200,
          body: `POST /up chunked 10 ${checksum(encoder.encode("hello node"))}\n`,
          connection: undefined,
        },
        {
          status: 200,
          body: `POST /len length 4 ${checksum(encoder.encode("abcd"))}\n`,
          connection: undefined,
        },
      ]);
    } finally {
      agent.destroy();
    }
  });
});

/** Why the Python test is skipped, or undefined when it runs. */
const noPythonReason = missingTool("python3", "--version", "apt-get install -y python3");

/** Python's http.client: a GET, a HEAD, a POST with a length and a chunked one, on one connection. */
const PYTHON_CLIENT = `
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
out = []
def ask(method, path, body=None, **kw):
    c.request(method, path, body=body, **kw)
    r = c.getresponse()
    out.append("%d %s|%s" % (r.status, r.getheader("content-length"), r.read().decode()))
ask("GET", "/get")
ask("HEAD", "/head")
ask("POST", "/len", body=b"hello")
ask("POST", "/chunked", body=iter([b"hel", b"lo"]), encode_chunked=True)
print("".join(out), end="")
`;

describe("HttpResponder answering Python's http.client", () => {
  const options = noPythonReason ? { ...TEST_TIMEOUT, skip: noPythonReason } : TEST_TIMEOUT;
  it("serves a GET, a HEAD, a POST with a length and a chunked POST on one connection", options, async () => {
    await using server = await httpServer("127.0.0.1", BodyEcho);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        "python3",
        ["-c", PYTHON_CLIENT, String(server.port)],
        { timeout: 10_000 },
        (err, out, errOut) => {
          if (err) reject(new Error(`python3 failed: ${errOut}`, { cause: err }));
          else resolve(String(out));
        },
      );
    });
    const hello = checksum(encoder.encode("hello"));
    const bodies = [
      "GET /get length 0 0\n",
      "HEAD /head length 0 0\n",
      `POST /len length 5 ${hello}\n`,
      `POST /chunked chunked 5 ${hello}\n`,
    ];
    // No body for HEAD, but its content-length.
    assert.equal(stdout, bodies.map((body, i) => `200 ${body.length}|${i === 1 ? "" : body}`).join(""));
  });
});

/** Why the curl tests are skipped, or undefined when curl runs. */
const noCurlReason = missingTool("curl", "--version", "apt-get install -y curl");

/** Runs curl with `-sS -i` (status line and headers in the output); resolves with its exit code and stdout. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-sS", "-i", "--max-time", "5", ...args],
      { timeout: 10_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

describe("HttpResponder answering curl", () => {
  const options = noCurlReason ? { ...TEST_TIMEOUT, skip: noCurlReason } : TEST_TIMEOUT;
  const cases: [string, (base: string) => string[], string][] = [
    ["--http1.0", (base) => ["--http1.0", `${base}/old`], closingResponse(200, "OK", "hello from /old\n")],
    [
      "-H 'Connection: close'",
      (base) => ["-H", "Connection: close", `${base}/bye`],
      closingResponse(200, "OK", "hello from /bye\n"),
    ],
    [
      "-I (HEAD)",
      (base) => ["-I", "-H", "Connection: close", `${base}/head`],
      "HTTP/1.1 200 OK\r\ncontent-length: 17\r\nconnection: close\r\n\r\n",
    ],
    [
      "a 20 KiB header",
      (base) => ["-H", `X-Big: ${bigHeader}`, `${base}/`],
      closingResponse(431, "Request Header Fields Too Large"),
    ],
    [
      "a handler that throws",
      (base) => [`${base}/throw`],
      closingResponse(500, "Internal Server Error", "internal server error\n"),
    ],
  ];
  for (const [label, args, expected] of cases) {
    it(`sends curl the full response for ${label}, then closes`, options, async () => {
      await using server = await httpServer();
      const got = await curl(["-v", ...args(`http://127.0.0.1:${server.port}`)]);
      assert.deepEqual({ code: got.code, stdout: got.stdout }, { code: 0, stdout: expected }, got.stderr);
      assert.doesNotMatch(got.stderr, /Excess found/);
    });
  }

  it("reads curl's chunked upload", options, async () => {
    await using server = await httpServer("127.0.0.1", BodyEcho);
    const got = await curl([
      "-H",
      "Transfer-Encoding: chunked",
      "--data-binary",
      "hello",
      `http://127.0.0.1:${server.port}/upload`,
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, ok(`POST /upload chunked 5 ${checksum(encoder.encode("hello"))}\n`));
  });

  it(
    "answers curl's 2 MiB upload with 100 Continue when it sends Expect, and without it",
    options,
    async () => {
      await using server = await httpServer("127.0.0.1", BodyEcho);
      await using dir = await tempDir();
      const body = new Uint8Array(2 * 1024 * 1024).map((_, i) => (i * 13) % 256);
      await writeFile(dir.join("body"), body);
      const url = `http://127.0.0.1:${server.port}/file`;
      const answer = ok(`POST /file length ${body.length} ${checksum(body)}\n`);
      // curl sends Expect: 100-continue for a body over 1 MiB, and waits up to 1 s for the 100.
      const withExpect = await curl([
        "--expect100-timeout",
        "4",
        "--data-binary",
        `@${dir.join("body")}`,
        url,
      ]);
      assert.equal(withExpect.code, 0, withExpect.stderr);
      assert.equal(withExpect.stdout, "HTTP/1.1 100 Continue\r\n\r\n" + answer);
      const without = await curl(["-H", "Expect:", "--data-binary", `@${dir.join("body")}`, url]);
      assert.equal(without.code, 0, without.stderr);
      assert.equal(without.stdout, answer);
    },
  );
});

/** Answers after an `await`: `/slow` later than `/fast`, and `/throw` rejects. */
class AsyncHello extends HttpResponder {
  override async handle(request: HttpRequest): Promise<HttpResponse> {
    await new Promise((resolve) => setTimeout(resolve, request.target === "/slow" ? 40 : 1));
    if (request.target === "/throw") throw handlerError;
    return { body: `later from ${request.target}\n` };
  }
}

describe("HttpResponder with an async handle", () => {
  const ok = (target: string, keepAlive = true) => {
    const body = `later from ${target}\n`;
    return `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${
      keepAlive ? "" : "connection: close\r\n"
    }\r\n${body}`;
  };

  it("answers 3 pipelined requests in request order, the slowest first", TEST_TIMEOUT, async () => {
    await using server = await httpServer("127.0.0.1", AsyncHello);
    const pipelined = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n" +
      "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert.deepEqual(await exchange(server.port, [pipelined]), {
      text: ok("/slow") + ok("/fast") + ok("/last", false),
      eof: true,
    });
  });

  it(
    "turns a rejected handle into a 500 with connection: close for fetch, and logs the error",
    TEST_TIMEOUT,
    async () => {
      await using server = await httpServer("127.0.0.1", AsyncHello);
      const fine = await fetch(`http://127.0.0.1:${server.port}/fine`, { signal: AbortSignal.timeout(5000) });
      assert.equal(await fine.text(), "later from /fine\n");
      const response = await fetch(`http://127.0.0.1:${server.port}/throw`, {
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(response.status, 500);
      assert.equal(response.headers.get("connection"), "close");
      assert.equal(await response.text(), "internal server error\n");
      assert.ok(server.errors.includes(handlerError), "logger.error received the handler's error");
    },
  );

  const curlOptions = noCurlReason ? { ...TEST_TIMEOUT, skip: noCurlReason } : TEST_TIMEOUT;
  it("sends curl the async answer, and a 500 when it rejects", curlOptions, async () => {
    await using server = await httpServer("127.0.0.1", AsyncHello);
    const base = `http://127.0.0.1:${server.port}`;
    const fine = await curl([`${base}/slow`]);
    assert.equal(fine.code, 0, fine.stderr);
    assert.equal(fine.stdout, ok("/slow"));
    const failed = await curl([`${base}/throw`]);
    assert.equal(failed.code, 0, failed.stderr);
    assert.equal(failed.stdout, closingResponse(500, "Internal Server Error", "internal server error\n"));
  });
});

/**
 * An independent judge of a request head, written from RFC 9112's grammar with regular expressions and
 * sharing no code with the parser: does the responder owe it an answer, or a refusal?
 */
function judge(head: string): "keep" | "close" | "refuse" {
  const token = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
  const shape = new RegExp(
    `^(?:\\r\\n)*${token} [\\x21-\\x7e]+ HTTP/1\\.([01])\\r\\n((?:${token}:[\\t \\x21-\\x7e\\x80-\\xff]*\\r\\n)*)\\r\\n$`,
  );
  const match = shape.exec(head);
  if (!match) return "refuse";
  const minor = match[1];
  const fields = match[2]!.split("\r\n").filter(Boolean).map((line) => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as const;
  });
  const all = (name: string) =>
    fields.filter(([n]) => n === name).flatMap(([, v]) => v.split(",").map((e) => e.trim()));
  const hosts = fields.filter(([n]) => n === "host").length;
  if (hosts > 1 || (minor === "1" && hosts === 0)) return "refuse";
  const lengths = all("content-length");
  if (lengths.some((l) => !/^[0-9]+$/.test(l)) || new Set(lengths.map(Number)).size > 1) return "refuse";
  if (lengths.length && Number(lengths[0]) > MAX_HTTP_BODY_BYTES) return "refuse";
  const hasTe = fields.some(([n]) => n === "transfer-encoding");
  const codings = all("transfer-encoding").filter(Boolean);
  if (
    hasTe &&
    (lengths.length || minor === "0" || codings.length !== 1 || codings[0]!.toLowerCase() !== "chunked")
  ) {
    return "refuse";
  }
  if (all("connection").some((e) => e !== "" && !new RegExp(`^${token}$`).test(e))) return "refuse";
  const expectations = all("expect").filter(Boolean);
  if (minor === "1" && expectations.some((e) => e.toLowerCase() !== "100-continue")) return "refuse";
  const options = all("connection").map((e) => e.toLowerCase());
  if (options.includes("close")) return "close";
  return minor === "1" || options.includes("keep-alive") ? "keep" : "close";
}

/** The body the judge's framing says follows `head`, so an accepted request is complete. */
function bodyFor(head: string): string {
  if (/\r\ntransfer-encoding:/i.test(head)) return "3\r\nabc\r\n0\r\n\r\n";
  const length = /\r\ncontent-length:[ \t]*([0-9]+)/i.exec(head);
  return length ? "b".repeat(Number(length[1])) : "";
}

const FUZZ_BYTES = [
  "\x00",
  "\r",
  "\n",
  " ",
  "\t",
  ":",
  ",",
  "\x7f",
  "\xe9",
  "a",
  "0",
  "-",
  "/",
  "\x01",
  "\r\n",
  " \r\n",
];
const FUZZ_LINES = [
  "Content-Length: 3",
  "Content-Length: 3, 3",
  "Content-Length: 4",
  "Content-Length: 0x3",
  "Content-Length: +3",
  "Content-Length:",
  "Transfer-Encoding: chunked",
  "Transfer-Encoding: gzip",
  "Transfer-Encoding: chunked, chunked",
  "Transfer-Encoding: CHUNKED",
  "Connection: keep-alive, close",
  "Connection: keep alive",
  "Connection: ,,upgrade",
  "Expect: 100-continue",
  "Expect: 100-continue, 200",
  "Host: y",
  "X-Fold: a\r\n b",
  "X-Bare: a\nb",
  " X-Lead: a",
  "X-Obs: caf\xe9",
  "X : a",
];

/** A seeded request head: a valid one, then 0 to 3 mutations (lines added or dropped, bytes inserted or removed). */
function fuzzHead(rng: Rng): string {
  const methods = ["GET", "POST", "PUT", "HEAD", "M-SEARCH", "G\x00T", "get"];
  const targets = ["/", "/a?b=c", "*", "/%20", "/a b", "/\x7f"];
  const versions = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "http/1.1"];
  const lines = rng.int(4) === 0 ? [] : ["Host: x"];
  for (let n = rng.int(4); n > 0; n--) lines.push(FUZZ_LINES[rng.int(FUZZ_LINES.length)]!);
  const pick = <T>(list: T[]) => list[rng.int(list.length)]!;
  const lead = rng.int(8) === 0 ? "\r\n" : "";
  for (;;) {
    let text = `${pick(methods)} ${pick(targets)} ${pick(versions)}\r\n` +
      lines.map((l) => l + "\r\n").join("");
    for (let n = rng.int(4); n > 0; n--) {
      const at = rng.int(text.length + 1);
      text = rng.int(2) === 0
        ? text.slice(0, at) + pick(FUZZ_BYTES) + text.slice(at)
        : text.slice(0, at) + text.slice(at + 1);
    }
    text += "\r\n";
    // One head per case: a mutation that ends the head early (an empty line inside) is drawn again.
    if (text.indexOf("\r\n\r\n") === text.length - 4 && !text.startsWith("\r\n")) return lead + text;
  }
}

/** The statuses in `out`, in order, skipping interim 100s. */
function statuses(out: string): string[] {
  return [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]!).filter((s) => s !== "100");
}

/** Bytes as chars, one to one (the fuzz's heads hold bytes over 0x7f). */
const latin1Bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

describe("HttpResponder against an independent judge", () => {
  const sentinel = "GET /sentinel HTTP/1.1\r\nHost: x\r\n\r\n";

  it("answers 5000 seeded fuzzed heads, split at random, as the judge says: one answer or one refusal", () => {
    const rng = new Rng(2025);
    const disagreements: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const head = fuzzHead(rng);
      const verdict = judge(head);
      const stream = latin1Bytes(head + (verdict === "refuse" ? "" : bodyFor(head)) + sentinel);
      const responder = new Recorder();
      for (let at = 0; at < stream.length;) {
        const n = 1 + rng.int(rng.int(2) ? 16 : stream.length);
        responder.onDataReceived(stream.slice(at, at + n));
        at += n;
      }
      const out = responder.outputMessages.map((m) =>
        typeof m === "string" ? m : new TextDecoder("latin1").decode(m)
      )
        .join("");
      const got = statuses(out);
      const ok = verdict === "keep"
        ? got.length === 2 && got[0] === "200" && got[1] === "200" && responder.seen.length === 2 &&
          responder.seen[1] === "GET /sentinel 0"
        : verdict === "close"
        ? got.length === 1 && got[0] === "200" && responder.seen.length === 1 &&
          /connection: close\r\n/.test(out)
        : got.length === 1 && /^[45]\d\d$/.test(got[0]!) && responder.seen.length === 0 &&
          /connection: close\r\n/.test(out);
      if (!ok) {
        disagreements.push(
          `${JSON.stringify(head)}: judge ${verdict}, got ${got.join(",")} ${responder.seen}`,
        );
      }
    }
    assert.deepEqual(disagreements.slice(0, 10), []);
  });

  it("answers 60 seeded fuzzed heads over sockets, each then EOF, never a hang", TEST_TIMEOUT, async () => {
    await using server = await httpServer("127.0.0.1", Recorder);
    const rng = new Rng(2026);
    const got: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 60; i++) {
      const head = fuzzHead(rng);
      const verdict = judge(head);
      const stream = head + (verdict === "refuse" ? "" : bodyFor(head)) +
        "GET /sentinel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      const outcome = await exchange(server.port, [latin1Bytes(stream)], { timeoutMs: 5000 });
      got.push(`${JSON.stringify(head)} ${statuses(outcome.text).length} eof=${outcome.eof}`);
      expected.push(`${JSON.stringify(head)} ${verdict === "keep" ? 2 : 1} eof=true`);
    }
    assert.deepEqual(got, expected);
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { missingTool, TEST_TIMEOUT } from "./_helpers.ts";
import { networkInterfaces } from "node:os";
import type { IoCore } from "../mod.ts";
import {
  type HttpRequest,
  HttpResponder,
  type HttpResponse,
  MAX_HTTP_HEAD_BYTES,
} from "../processors/http_responder.ts";
import { startCore } from "./_core_fixture.ts";
import { exchange } from "./_net_client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds the responder the given chunks and returns everything it queued, as text. */
function drive(responder: HttpResponder, ...chunks: string[]): string {
  for (const chunk of chunks) responder.onDataReceived(encoder.encode(chunk));
  const out = responder.outputMessages.map((m) => typeof m === "string" ? m : decoder.decode(m)).join("");
  responder.outputMessages.length = 0;
  return out;
}

describe("HttpResponder", () => {
  it("closes after a response whose handler asks for it, and answers nothing after it", () => {
    class Closing extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        return { body: "bye", close: request.target === "/last" };
      }
    }
    const responder = new Closing();
    const out = drive(responder, "GET /last HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    assert.equal(out, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbye");
  });

  it("answers pipelined keep-alive requests in order, split anywhere", () => {
    const seen: string[] = [];
    class Echo extends HttpResponder {
      override handle(request: HttpRequest): HttpResponse {
        seen.push(`${request.method} ${request.target} ${request.version}`);
        return { body: request.target };
      }
    }
    const responder = new Echo();
    const stream =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\n\r\nGET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let out = "";
    for (let i = 0; i < stream.length; i += 7) out += drive(responder, stream.slice(i, i + 7));
    assert.deepEqual(seen, ["GET /a HTTP/1.1", "GET /bb HTTP/1.1", "GET /c HTTP/1.0"]);
    assert.equal(
      out,
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n/a" +
        "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n/bb" +
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n/c",
    );
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
      "POST /p HTTP/1.1\r\nContent-Length: 5\r\nX-Multi: a\r\nx-multi: b\r\n\r\nhel",
      "lo",
    );
    assert.equal(decoder.decode(captured!.body), "hello");
    assert.equal(captured!.headers.get("content-length"), "5");
    assert.equal(out, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-seen: a, b\r\n\r\n");
  });

  it("closes after Connection: close and after HTTP/1.0 without keep-alive", () => {
    class Ok extends HttpResponder {
      override handle(): HttpResponse {
        return { body: "ok" };
      }
    }
    assert.match(drive(new Ok(), "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), /connection: close\r\n/);
    assert.match(drive(new Ok(), "GET / HTTP/1.0\r\n\r\n"), /connection: close\r\n/);
    assert.doesNotMatch(drive(new Ok(), "GET / HTTP/1.1\r\n\r\n"), /connection: close/);
    // Header names in any case, values trimmed and compared in lower case.
    assert.match(
      drive(new Ok(), "GET / HTTP/1.1\r\nHost: x\r\nCONNECTION:  Close \r\n\r\n"),
      /connection: close\r\n/,
    );
    assert.doesNotMatch(
      drive(new Ok(), "GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"),
      /connection: close/,
    );
    assert.match(
      drive(new Ok(), "GET / HTTP/1.1\r\nX-Connection: close-ish\r\nConnection: close\r\n\r\n"),
      /connection: close\r\n/,
    );
  });

  it("answers bad input with 400, 411, 413 and 431 and closes", () => {
    assert.match(drive(new HttpResponder(), "garbage\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(drive(new HttpResponder(), "GET / FTP/1.0\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(
      drive(new HttpResponder(), "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
      /^HTTP\/1\.1 400 /,
    );
    assert.match(
      drive(new HttpResponder(), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
      /^HTTP\/1\.1 411 /,
    );
    assert.match(
      drive(new HttpResponder(), "POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"),
      /^HTTP\/1\.1 413 /,
    );
    assert.match(drive(new HttpResponder(), "GET /" + "x".repeat(20_000)), /^HTTP\/1\.1 431 /);
    assert.match(drive(new HttpResponder(), "GET /missing HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 404 /);
  });

  it("answers a head over MAX_HTTP_HEAD_BYTES with 431, whether it arrives in one read or in parts", () => {
    let handled = 0;
    class Ok extends HttpResponder {
      override handle(): HttpResponse {
        handled++;
        return { body: "ok" };
      }
    }
    const prefix = "GET / HTTP/1.1\r\nX-Big: ";
    const headOf = (bytes: number) => prefix + "x".repeat(bytes - prefix.length - 4) + "\r\n\r\n";
    const tooBig = headOf(MAX_HTTP_HEAD_BYTES + 1);
    assert.match(drive(new Ok(), tooBig), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(drive(new Ok(), tooBig.slice(0, 9000), tooBig.slice(9000)), /^HTTP\/1\.1 431 /);
    assert.match(drive(new Ok(), "GET /a HTTP/1.1\r\n\r\n" + tooBig), /^HTTP\/1\.1 200 .*HTTP\/1\.1 431 /s);
    assert.equal(handled, 1);
    // A head of exactly the cap is served.
    assert.match(drive(new Ok(), headOf(MAX_HTTP_HEAD_BYTES)), /^HTTP\/1\.1 200 /);
    const exact = headOf(MAX_HTTP_HEAD_BYTES);
    assert.match(drive(new Ok(), exact.slice(0, 9000), exact.slice(9000)), /^HTTP\/1\.1 200 /);
  });

  it("answers nothing more once it has queued a response that closes the connection", () => {
    class Ok extends HttpResponder {
      override handle(): HttpResponse {
        return { body: "ok" };
      }
    }
    const closed = new Ok();
    assert.match(drive(closed, "GET / HTTP/1.0\r\n\r\n"), /connection: close\r\n/);
    assert.equal(drive(closed, "GET /again HTTP/1.1\r\n\r\n"), "");
    const failed = new Ok();
    assert.match(drive(failed, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), /^HTTP\/1\.1 411 /);
    assert.equal(drive(failed, "5\r\nhello\r\n0\r\n\r\n"), "");
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
  const fx = await startCore({
    listeners: [{ transport: "tcp", hostname: host, port: 0 }],
    rawConnection: () => true,
    unknownClients: "allow",
    unknownClientProcessor: responder,
    logger: { error: (_message, ...details) => errors.push(...details) },
  });
  return { core: fx.core, port: fx.port(), errors, [Symbol.asyncDispose]: () => fx.close() };
}

// As in transport.test.ts: the ::1 case is skipped where the machine has no IPv6 loopback.
const noIpv6Reason = Object.values(networkInterfaces()).flat().some((info) => info?.address === "::1")
  ? undefined
  : "this machine has no IPv6 loopback (::1)";

/** The full response the responder sends for `status` with its default body, closing. */
function closingResponse(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
}

const bigHeader = "x".repeat(20 * 1024);

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
    "answers each error in full, then EOF: 400, 411, 413, and 431 in one write or two",
    TEST_TIMEOUT,
    async () => {
      await using server = await httpServer();
      const cases: [string, string[], string][] = [
        ["400", ["garbage\r\n\r\n"], closingResponse(400, "Bad Request", "Bad Request\n")],
        [
          "411",
          ["POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
          closingResponse(411, "Length Required", "Length Required\n"),
        ],
        [
          "413",
          ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"],
          closingResponse(413, "Content Too Large", "Content Too Large\n"),
        ],
        [
          "431 in one write",
          [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${bigHeader}\r\n\r\n`],
          closingResponse(431, "Request Header Fields Too Large", "Request Header Fields Too Large\n"),
        ],
        [
          "431 in two writes",
          [
            `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${bigHeader.slice(0, 9000)}`,
            `${bigHeader.slice(9000)}\r\n\r\n`,
          ],
          closingResponse(431, "Request Header Fields Too Large", "Request Header Fields Too Large\n"),
        ],
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

  it("sends fetch a 200 with its body for Connection: close", TEST_TIMEOUT, async () => {
    await using server = await httpServer();
    const response = await fetch(`http://127.0.0.1:${server.port}/fetched`, {
      headers: { connection: "close" },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "hello from /fetched\n");
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

/** Why the curl tests are skipped, or undefined when curl runs. */
const noCurlReason = missingTool("curl", "--version", "apt-get install -y curl");

/** Runs curl with `-sS -i` (status line and headers in the output); resolves with its exit code and stdout. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-sS", "-i", "--max-time", "5", ...args],
      { timeout: 10_000 },
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
      "a chunked request body",
      (base) => ["-H", "Transfer-Encoding: chunked", "--data-binary", "hello", `${base}/upload`],
      closingResponse(411, "Length Required", "Length Required\n"),
    ],
    [
      "a 20 KiB header",
      (base) => ["-H", `X-Big: ${bigHeader}`, `${base}/`],
      closingResponse(431, "Request Header Fields Too Large", "Request Header Fields Too Large\n"),
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
      const got = await curl(args(`http://127.0.0.1:${server.port}`));
      assert.deepEqual({ code: got.code, stdout: got.stdout }, { code: 0, stdout: expected }, got.stderr);
    });
  }
});

/** Answers after an `await`: `/slow` later than `/fast`, and `/throw` rejects. */
class AsyncHello extends HttpResponder {
  override async handle(request: HttpRequest): Promise<HttpResponse> {
    // Not a wait: the handler's own work, slower for /slow so the answers would come out of order.
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
    const pipelined =
      "GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\nConnection: close\r\n\r\n";
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

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type HttpRequest,
  HttpResponder,
  type HttpResponse,
  MAX_HTTP_HEAD_BYTES,
} from "../processors/http_responder.ts";

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

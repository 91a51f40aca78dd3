import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  HttpRequestError,
  parseRequestHead,
  type RequestHead,
  RequestHeadScanner,
} from "../core/http/request_head.ts";
import { ChunkedBodyDecoder } from "../core/http/chunked_body.ts";
import { Rng } from "./_stream_check.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);

/** Splits `data` at random points (seeded), into 1 to 8 byte pieces most of the time. */
function randomSplits(data: Uint8Array, rng: Rng): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length;) {
    const n = 1 + rng.int(rng.int(4) === 0 ? 64 : 8);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** Feeds `pieces` to a fresh scanner; returns the offset of the head's end in the whole input, or -1. */
function scanPieces(pieces: Uint8Array[]): number {
  const scanner = new RequestHeadScanner();
  let base = 0;
  for (const piece of pieces) {
    const end = scanner.scan(piece, 0);
    if (end >= 0) return base + end;
    base += piece.length;
  }
  return -1;
}

/** The status `parseRequestHead` refuses `head` with, or "accepted". */
function verdict(head: string): number | "accepted" {
  try {
    parseRequestHead(bytes(head));
    return "accepted";
  } catch (err) {
    assert.ok(err instanceof HttpRequestError, String(err));
    return err.status;
  }
}

const head = (lines: string) => `POST / HTTP/1.1\r\nHost: x\r\n${lines}\r\n`;

describe("RequestHeadScanner", () => {
  const twoHeads = "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  const firstEnd = twoHeads.indexOf("\r\n\r\n") + 4;

  it("finds the end of the first head whole, byte by byte, and in 500 seeded random splits", () => {
    assert.equal(new RequestHeadScanner().scan(bytes(twoHeads), 0), firstEnd);
    const data = bytes(twoHeads);
    assert.equal(scanPieces([...data].map((b) => new Uint8Array([b]))), firstEnd);
    const rng = new Rng(25);
    for (let i = 0; i < 500; i++) assert.equal(scanPieces(randomSplits(data, rng)), firstEnd, `split ${i}`);
  });

  it("goes on with the next head after an end, and reports -1 for a head not yet ended", () => {
    const scanner = new RequestHeadScanner();
    const data = bytes(twoHeads);
    const first = scanner.scan(data, 0);
    assert.equal(scanner.scan(data, first), data.length);
    assert.equal(new RequestHeadScanner().scan(bytes("GET / HTTP/1.1\r\nHost: x\r\n"), 0), -1);
  });

  it("refuses a bare LF or a bare CR at the byte it sees it, fed byte by byte", () => {
    for (
      const [text, at] of [
        ["GET / HTTP/1.1\nHost: x\n\n", 14],
        ["GET / HTTP/1.1\r\nHost: x\n\r\n", 23],
        ["GET / HTTP/1.1\r\nHost: x\r\n\n", 25],
        ["\nGET / HTTP/1.1\r\n\r\n", 0],
        ["GET / HTTP/1.1\rHost: x\r\n\r\n", 15],
      ] as const
    ) {
      const scanner = new RequestHeadScanner();
      const data = bytes(text);
      let refusedAt = -1;
      for (let i = 0; i < data.length && refusedAt < 0; i++) {
        try {
          scanner.scan(data.subarray(i, i + 1), 0);
        } catch (err) {
          assert.ok(err instanceof HttpRequestError && err.status === 400, String(err));
          refusedAt = i;
        }
      }
      assert.equal(refusedAt, at, JSON.stringify(text));
    }
  });
});

describe("parseRequestHead", () => {
  it("reads the request line, the framing headers and every header on demand", () => {
    const parsed: RequestHead = parseRequestHead(bytes(
      "\r\nPOST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n" +
        "Connection: keep-alive, Upgrade\r\nX-Multi: a \r\nx-multi:\tb\r\nExpect: 100-Continue\r\n\r\n",
    ));
    assert.deepEqual(
      {
        method: parsed.method,
        target: parsed.target,
        version: parsed.version,
        contentLength: parsed.contentLength,
        chunked: parsed.chunked,
        keepAlive: parsed.keepAlive,
        expectContinue: parsed.expectContinue,
        connection: parsed.connection,
        multi: parsed.headers.get("x-multi"),
        host: parsed.headers.get("host"),
      },
      {
        method: "POST",
        target: "/p?q=1",
        version: "HTTP/1.1",
        contentLength: 5,
        chunked: false,
        keepAlive: true,
        expectContinue: true,
        connection: ["keep-alive", "upgrade"],
        multi: "a, b",
        host: "x",
      },
    );
  });

  it("keeps HTTP/1.1 alive unless Connection lists close, and HTTP/1.0 only with keep-alive", () => {
    const keepAlive = (text: string) => parseRequestHead(bytes(text)).keepAlive;
    assert.equal(keepAlive("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true);
    assert.equal(keepAlive("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n"), false);
    assert.equal(keepAlive("GET / HTTP/1.1\r\nHost: x\r\nConnection: ,CLOSE\r\n\r\n"), false);
    assert.equal(keepAlive("GET / HTTP/1.1\r\nHost: x\r\nX-Connection: close\r\n\r\n"), true);
    assert.equal(keepAlive("GET / HTTP/1.0\r\n\r\n"), false);
    assert.equal(keepAlive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), true);
    assert.equal(parseRequestHead(bytes(head("Transfer-Encoding: chunked\r\n"))).chunked, true);
    // An HTTP/1.0 expectation is ignored (RFC 9110 §10.1.1).
    assert.equal(
      parseRequestHead(bytes("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")).expectContinue,
      false,
    );
  });

  const refused: [string, string, number][] = [
    ["two different Content-Length headers", head("Content-Length: 3\r\nContent-Length: 10\r\n"), 400],
    ["two different Content-Length values in one header", head("Content-Length: 3, 10\r\n"), 400],
    ["Content-Length 0x5", head("Content-Length: 0x5\r\n"), 400],
    ["Content-Length 5e0", head("Content-Length: 5e0\r\n"), 400],
    ["Content-Length 5.0", head("Content-Length: 5.0\r\n"), 400],
    ["Content-Length +5", head("Content-Length: +5\r\n"), 400],
    ["Content-Length -1", head("Content-Length: -1\r\n"), 400],
    ["an empty Content-Length", head("Content-Length:\r\n"), 400],
    [
      "Content-Length with Transfer-Encoding",
      head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
      400,
    ],
    ["Transfer-Encoding gzip", head("Transfer-Encoding: gzip\r\n"), 400],
    ["Transfer-Encoding chunked, gzip", head("Transfer-Encoding: chunked, gzip\r\n"), 400],
    [
      "Transfer-Encoding chunked twice",
      head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
      400,
    ],
    ["Transfer-Encoding xchunked", head("Transfer-Encoding: xchunked\r\n"), 400],
    ["Transfer-Encoding gzip, chunked", head("Transfer-Encoding: gzip, chunked\r\n"), 501],
    ["Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["a method of control bytes", "\x00\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["a method with a slash", "GE/T / HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["two spaces after the method", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["a control byte in the target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["a byte over 0x7e in the target", "GET /\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["no version", "GET /\r\nHost: x\r\n\r\n", 400],
    ["a lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400],
    ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505],
    ["obsolete line folding", head("X-A: a\r\n b\r\n"), 400],
    ["a space before the first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400],
    ["a space before the colon", head("Content-Length : 5\r\n"), 400],
    ["a NUL in a header value", head("X-A: a\x00b\r\n"), 400],
    ["a DEL in a header value", head("X-A: a\x7fb\r\n"), 400],
    ["a header line without a colon", head("X-A\r\n"), 400],
    ["an HTTP/1.1 request without Host", "GET / HTTP/1.1\r\n\r\n", 400],
    ["two Host headers", head("Host: y\r\n"), 400],
    ["a Connection option that is not a token", head("Connection: keep alive\r\n"), 400],
    ["an expectation other than 100-continue", head("Expect: 200-ok\r\n"), 417],
    ["a head that does not end with an empty line", "GET / HTTP/1.1\r\nHost: x\r\n", 400],
  ];
  for (const [label, text, status] of refused) {
    it(`refuses ${label} with ${status}`, () => {
      assert.equal(verdict(text), status);
    });
  }

  it("accepts repeated identical Content-Length values, leading zeros, and obs-text in a value", () => {
    assert.equal(
      parseRequestHead(bytes(head("Content-Length: 5\r\nContent-Length: 005\r\n"))).contentLength,
      5,
    );
    assert.equal(verdict(head("X-Name: caf\xe9\r\n")), "accepted");
  });
});

/** Decodes `pieces` as one chunked body; returns the body, and where the body ended in the last piece. */
function decodeChunked(pieces: Uint8Array[], max = 1024): { body: string; end: number } {
  const chunked = new ChunkedBodyDecoder(max, 256);
  const out: Uint8Array[] = [];
  for (const [i, piece] of pieces.entries()) {
    const end = chunked.decode(piece, 0, out);
    if (end >= 0) {
      assert.equal(i, pieces.length - 1, "the body ended before its last piece");
      return { body: out.map((b) => decoder.decode(b)).join(""), end };
    }
  }
  return { body: out.map((b) => decoder.decode(b)).join(""), end: -1 };
}

describe("ChunkedBodyDecoder", () => {
  const body = "5;name=value\r\nhello\r\nA ; x\r\n, world!!!\r\n000\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n";

  it("decodes extensions and trailers away, whole, byte by byte and in 300 seeded random splits", () => {
    const data = bytes(body);
    assert.deepEqual(decodeChunked([data]), { body: "hello, world!!!", end: data.length });
    const single = [...data].map((b) => new Uint8Array([b]));
    assert.deepEqual(decodeChunked(single), { body: "hello, world!!!", end: 1 });
    const rng = new Rng(7);
    for (let i = 0; i < 300; i++) {
      const pieces = randomSplits(data, rng);
      assert.equal(decodeChunked(pieces).body, "hello, world!!!", `split ${i}`);
    }
  });

  it("stops at the body's end and leaves the next request's bytes", () => {
    const data = bytes("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n");
    assert.deepEqual(decodeChunked([data]), { body: "abc", end: 13 });
  });

  it("refuses with 413 as soon as the chunk sizes pass the cap, counted across chunks", () => {
    const status = (text: string, max: number) => {
      try {
        decodeChunked([bytes(text)], max);
        return "accepted";
      } catch (err) {
        assert.ok(err instanceof HttpRequestError, String(err));
        return err.status;
      }
    };
    assert.equal(status("4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n", 8), "accepted");
    assert.equal(status("4\r\nabcd\r\n5\r\n", 8), 413);
    assert.equal(status("ffffffffffffffffffff", 8), 413);
    assert.equal(status("", 8), "accepted");
  });

  const malformed: [string, string][] = [
    ["a size that is not hex", "g\r\n"],
    ["an empty size", "\r\n"],
    ["a size with a sign", "+5\r\nhello\r\n0\r\n\r\n"],
    ["data longer than its size", "3\r\nabcd\r\n0\r\n\r\n"],
    ["a bare LF after the size", "3\nabc\r\n0\r\n\r\n"],
    ["a bare LF after the data", "3\r\nabc\n0\r\n\r\n"],
    ["a control byte in an extension", "3;a\x01\r\nabc\r\n0\r\n\r\n"],
    ["obsolete folding in the trailers", "0\r\nA: 1\r\n 2\r\n\r\n"],
    ["a bare LF in the trailers", "0\r\nA: 1\n\r\n"],
    ["an extension past the line cap", `3;${"x".repeat(300)}\r\n`],
  ];
  for (const [label, text] of malformed) {
    it(`refuses ${label} with 400`, () => {
      assert.throws(
        () => decodeChunked([bytes(text)]),
        (err) => err instanceof HttpRequestError && err.status === 400,
      );
    });
  }
});

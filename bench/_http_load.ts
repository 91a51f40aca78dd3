/**
 * B1's built-in load client, used instead of `wrk` when `wrk` is not installed (`--quick` only) or
 * with `--no-wrk`. It opens N keep-alive HTTP/1.1 connections on `node:net`; each sends
 * `GET /<size>`, waits for the whole response, and sends the next, until the time is up. Every
 * response is checked: status 2xx, `Content-Length` equal to the size, a body of `X`, nothing after
 * it. The first wrong answer stops the run and is reported.
 *
 * It is one JavaScript thread, much slower than `wrk`, so its figures are smoke only: they compare
 * with nothing. `b1_http.ts` runs it on Deno as a child process, pinned to CPU 1 like `wrk`.
 *
 * ```sh
 * deno run -A bench/_http_load.ts --port 8080 --size 100 --connections 200 --seconds 1 [--tls]
 * ```
 *
 * Prints `RESULT {json}` with the fields of `wrk_report.lua` (`requests`, `bytes`, `durationUs` and
 * the error counts `connect`, `read`, `write`, `status`, `timeout`), plus `wrong` (the first wrong
 * answer) when there was one. `timeout` is always 0: the run as a whole is bounded instead.
 *
 * @module
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import process from "node:process";
import { numArg, parseArgs, report } from "./_child.ts";

/** The longest response head accepted before the answer counts as wrong. */
const MAX_HEAD_BYTES = 64 * 1024;
/** Body bytes are checked for `X` at this stride, plus the last byte of each chunk. */
const CHECK_STRIDE = 509;

const args = parseArgs();
const port = numArg(args, "port", 0);
const size = numArg(args, "size", 100);
const connections = numArg(args, "connections", 10);
const seconds = numArg(args, "seconds", 1);
const hostname = args.get("host") ?? "127.0.0.1";
/** `--tls`: HTTPS, trusting any certificate (B1's own, self-signed). */
const tls = args.has("tls");
if (!(port > 0) || !(size >= 0) || !(connections >= 1) || !(seconds > 0)) {
  throw new RangeError("Usage: _http_load.ts --port P --size S --connections C --seconds D");
}

const request = new TextEncoder().encode(`GET /${size} HTTP/1.1\r\nHost: x\r\n\r\n`);
const latin1 = new TextDecoder("latin1");
const counts = { requests: 0, bytes: 0, connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
let wrong: string | undefined;
let stopped = false;
const sockets = new Set<Socket>();
const started = performance.now();

/** Index just past the `\r\n\r\n` that ends a response head, or -1. */
function headEnd(buf: Uint8Array, from: number): number {
  for (let i = from + 3; i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

/** Parses a response head: its status code and `Content-Length`, or a description of what is wrong. */
function parseHead(head: string): { status: number; length: number } | string {
  const lines = head.split("\r\n");
  const status = /^HTTP\/1\.1 (\d{3})(?: |$)/.exec(lines[0]!);
  if (!status) return `bad status line ${JSON.stringify(lines[0]!.slice(0, 80))}`;
  let length: number | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "transfer-encoding") return `Transfer-Encoding ${value} instead of Content-Length`;
    if (name === "content-length") {
      if (!/^\d+$/.test(value) || (length !== undefined && Number(value) !== length)) {
        return `bad Content-Length ${JSON.stringify(value)}`;
      }
      length = Number(value);
    }
  }
  if (length === undefined) return "no Content-Length";
  return { status: Number(status[1]), length };
}

/** Stops every connection and prints the result, once. */
function finish(): void {
  if (stopped) return;
  stopped = true;
  const durationUs = Math.round((performance.now() - started) * 1000);
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  report("RESULT", { ...counts, durationUs, ...(wrong ? { wrong } : {}) });
  process.exit(0);
}

/** Records a wrong answer and ends the run. */
function fail(message: string): void {
  wrong ??= `GET /${size}: ${message}`;
  finish();
}

/** One connection slot: it reconnects after an error, as `wrk` does, until the run ends. */
function open(): void {
  if (stopped) return;
  let connected = false;
  let failed = false;
  let pending: Uint8Array | undefined;
  /** Body bytes still expected, or -1 while reading a head. */
  let bodyLeft = -1;
  const socket = tls
    ? tlsConnect({ host: hostname, port, rejectUnauthorized: false }).setNoDelay(true)
    : netConnect({ host: hostname, port, noDelay: true });
  sockets.add(socket);
  const send = () => {
    socket.write(request, (err) => {
      if (err && !stopped && !failed) {
        failed = true;
        counts.write++;
        socket.destroy();
      }
    });
  };
  socket.on(tls ? "secureConnect" : "connect", () => {
    connected = true;
    send();
  });
  socket.on("data", (data: Uint8Array) => {
    if (stopped) return;
    counts.bytes += data.length;
    let buf = data;
    if (pending) {
      buf = new Uint8Array(pending.length + data.length);
      buf.set(pending);
      buf.set(data, pending.length);
      pending = undefined;
    }
    let at = 0;
    while (at < buf.length) {
      if (bodyLeft < 0) {
        const end = headEnd(buf, at);
        if (end < 0) {
          if (buf.length - at > MAX_HEAD_BYTES) return fail(`response head over ${MAX_HEAD_BYTES} bytes`);
          pending = new Uint8Array(buf.subarray(at)); // a copy: the chunk is not ours to keep
          return;
        }
        const head = parseHead(latin1.decode(buf.subarray(at, end - 4)));
        if (typeof head === "string") return fail(head);
        if (head.status < 200 || head.status > 299) counts.status++;
        else if (head.length !== size) return fail(`Content-Length ${head.length}, expected ${size}`);
        bodyLeft = head.length;
        at = end;
      }
      const n = Math.min(bodyLeft, buf.length - at);
      if (n > 0) {
        for (let i = at; i < at + n; i += CHECK_STRIDE) {
          if (buf[i] !== 0x58) return fail("a body byte other than X");
        }
        if (buf[at + n - 1] !== 0x58) return fail("a body byte other than X");
      }
      bodyLeft -= n;
      at += n;
      if (bodyLeft === 0) {
        bodyLeft = -1;
        counts.requests++;
        if (at < buf.length) return fail(`${buf.length - at} bytes after the response`);
        send();
      }
    }
  });
  socket.on("error", () => {
    if (stopped || failed) return;
    failed = true;
    if (connected) counts.read++;
    else counts.connect++;
  });
  socket.on("close", () => {
    sockets.delete(socket);
    if (stopped) return;
    // The server closed a keep-alive connection: a read error for wrk too.
    if (!failed) counts.read++;
    open();
  });
}

// A parent that dies closes our stdin: do not outlive it.
process.stdin.on("end", () => process.exit(1));
process.stdin.resume();
setTimeout(finish, seconds * 1000);
for (let i = 0; i < connections; i++) open();

/**
 * B1 contender: a bare keep-alive HTTP/1.1 responder on the runtime's socket API (`Deno.listen`,
 * `Bun.listen` or `node:net`): it finds each request head, reads the target, and writes a cached
 * response. No header parsing beyond that: the floor any HTTP server on this runtime stands on.
 *
 * @module
 */
import process from "node:process";
import { nativeListen } from "../_native.ts";
import { report, serveControl } from "../_child.ts";
import { bodyFor } from "./_bodies.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const responses = new Map<string, Uint8Array[]>();
const notFound = [encoder.encode("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")];

/** Head and body as two buffers: large bodies are written without a copy. */
function responseFor(target: string): Uint8Array[] {
  let parts = responses.get(target);
  if (parts) return parts;
  const body = bodyFor(target);
  if (!body) return notFound;
  const head = encoder.encode(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`);
  if (body.length <= 16 * 1024) {
    const one = new Uint8Array(head.length + body.length);
    one.set(head);
    one.set(body, head.length);
    parts = [one];
  } else parts = [head, body];
  responses.set(target, parts);
  return parts;
}

function headEnd(buf: Uint8Array, from: number): number {
  for (let i = from + 3; i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

const server = await nativeListen(0, (socket) => {
  let pending: Uint8Array | undefined;
  return {
    onData(chunk) {
      let buf = chunk;
      if (pending) {
        buf = new Uint8Array(pending.length + chunk.length);
        buf.set(pending);
        buf.set(chunk, pending.length);
        pending = undefined;
      }
      let at = 0;
      for (;;) {
        const end = headEnd(buf, at);
        if (end < 0) break;
        const lineEnd = buf.indexOf(13, at);
        const line = latin1.decode(buf.subarray(at, lineEnd));
        const target = line.slice(line.indexOf(" ") + 1, line.lastIndexOf(" "));
        for (const part of responseFor(target)) socket.write(part);
        at = end;
      }
      if (at < buf.length) pending = buf.slice(at);
    },
  };
});
serveControl(() => ({}), () => server.close());
report("READY", { port: server.port, pid: process.pid });

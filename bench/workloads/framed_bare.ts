/**
 * The bare contenders for framed traffic, written directly on the runtime's socket API with the
 * same 8-byte little-endian framing, and the handshake load client of B4:
 *
 * - `server --mode echo`: parses frames and answers each complete one (coalesced per read).
 * - `server --mode echo-plain`: what a user of the raw socket API writes: one view per received frame,
 *   each re-encoded (a new header and a copy of its payload) and written back, a read's answers in
 *   one write.
 * - `server --mode sink --expect-bytes N [--assemble]`: the raw socket; counts bytes, answers one frame
 *   at the end. With `--assemble` it also copies them into one buffer, as a receiver of one large
 *   message must.
 * - `client --mode echo|sink --port P --count N [--size B] [--warmup N] [--window N] [--batch N]`
 * - `client --mode scale --port P --clients N [--parallel N]`: N connections that each announce a
 *   keyword (`c<i>`) and wait for `OK`, then stay idle until stdin closes.
 *
 * @module
 */
import process from "node:process";
import { nativeConnect, nativeListen, type NativeSocket } from "../_native.ts";
import { frame, frameHeader, numArg, parseArgs, peakRss, report, serveControl, xBytes } from "../_child.ts";

const args = parseArgs();
const role = process.argv[2];
const mode = args.get("mode") ?? "echo";
const TWO_POW_32 = 4294967296;

function frameLength(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16)) + buf[at + 3]! * 16777216 +
    (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24)) * TWO_POW_32;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Counts whole frames across chunks, skipping payloads without copying them. Calls `onFrames` with
 * the bytes of the whole frames of each chunk (valid during the call only) and their count.
 */
function frameScanner(onFrames: (whole: Uint8Array, frames: number) => void): (chunk: Uint8Array) => void {
  let pending: Uint8Array | undefined;
  let skip = 0; // payload bytes of a large frame still to pass
  return (chunk) => {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      if (skip === 0) onFrames(chunk, 1);
      return;
    }
    let buf = chunk;
    let at = 0;
    let frames = 0;
    if (skip > 0) {
      at = skip;
      skip = 0;
      frames = 1;
    } else if (pending) {
      buf = concat(pending, chunk);
      pending = undefined;
    }
    while (buf.length - at >= 8) {
      const end = at + 8 + frameLength(buf, at);
      if (end > buf.length) {
        if (end - buf.length > 65536) {
          // A large frame: count it once its payload has passed, without buffering it.
          if (frames) onFrames(buf.subarray(0, at), frames);
          skip = end - buf.length;
          return;
        }
        break;
      }
      at = end;
      frames++;
    }
    if (at < buf.length) pending = buf.slice(at);
    if (frames) onFrames(buf.subarray(0, at), frames);
  };
}

/** A new frame holding a copy of `payload` (under 4 GiB), as a user's own framing code writes it. */
function encode(payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const out = new Uint8Array(8 + n);
  out[0] = n & 255;
  out[1] = (n >>> 8) & 255;
  out[2] = (n >>> 16) & 255;
  out[3] = n >>> 24;
  out.set(payload, 8);
  return out;
}

/**
 * Hands each whole frame's payload to `onMessage` as a view (valid during the call only), across
 * chunks: a frame cut by a read is completed in a copy.
 */
function frameEcho(onMessage: (payload: Uint8Array) => void): (chunk: Uint8Array) => void {
  let pending: Uint8Array | undefined;
  return (chunk) => {
    const buf = pending === undefined ? chunk : concat(pending, chunk);
    pending = undefined;
    let at = 0;
    while (buf.length - at >= 8) {
      const length = frameLength(buf, at);
      const end = at + 8 + length;
      if (end > buf.length) break;
      onMessage(buf.subarray(at + 8, end));
      at = end;
    }
    if (at < buf.length) pending = buf.slice(at);
  };
}

async function server(): Promise<void> {
  const expectBytes = numArg(args, "expect-bytes", 0);
  const assemble = args.has("assemble");
  let receivedBytes = 0;
  let whole: Uint8Array | undefined;
  const server = await nativeListen(0, (socket) => {
    if (mode === "sink") {
      return {
        onData(chunk) {
          if (assemble) {
            whole ??= new Uint8Array(expectBytes);
            whole.set(chunk, receivedBytes);
          }
          const before = receivedBytes;
          receivedBytes += chunk.length;
          if (before < expectBytes && receivedBytes >= expectBytes) socket.write(frame(xBytes(4)));
        },
      };
    }
    if (mode === "echo-plain") {
      // The answers to one read go out in one write, as any writer coalesces them (a native write per
      // 38-byte frame would measure the runtime's write call, not the echo).
      const answers: Uint8Array[] = [];
      let bytes = 0;
      const each = frameEcho((view) => {
        const answer = encode(view);
        answers.push(answer);
        bytes += answer.length;
      });
      return {
        onData(chunk) {
          each(chunk);
          if (answers.length === 0) return;
          const out = new Uint8Array(bytes);
          let at = 0;
          for (const answer of answers) {
            out.set(answer, at);
            at += answer.length;
          }
          answers.length = 0;
          bytes = 0;
          socket.write(out);
        },
      };
    }
    // Echo: the answer to each whole frame is that frame, so the whole frames go back in one write.
    return { onData: frameScanner((whole) => socket.write(whole.slice())) };
  });
  serveControl(() => ({ receivedBytes }), () => server.close());
  report("READY", { port: server.port, pid: process.pid });
}

async function handshake(port: number, keyword: string): Promise<NativeSocket> {
  let answered!: () => void;
  const ok = new Promise<void>((resolve) => answered = resolve);
  let got = 0;
  const socket = await nativeConnect(port, () => ({
    onData(chunk) {
      got += chunk.length;
      if (got >= 10) answered();
    },
  }));
  socket.write(frame(new TextEncoder().encode(keyword)));
  await ok;
  return socket;
}

async function client(): Promise<void> {
  const port = numArg(args, "port", 0);
  if (mode === "scale") {
    const clients = numArg(args, "clients", 1000);
    const parallel = numArg(args, "parallel", 256);
    const sockets: NativeSocket[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: Math.min(parallel, clients) }, async () => {
      while (next < clients) sockets.push(await handshake(port, `c${next++}`));
    }));
    const seconds = (performance.now() - started) / 1000;
    serveControl(() => ({}), () => sockets.forEach((s) => s.close()));
    report("RESULT", { seconds, count: sockets.length });
    return;
  }
  const count = numArg(args, "count", 100_000);
  const size = numArg(args, "size", 30);
  // Large payloads are never copied into a frame: header and payload go out as two writes.
  const large = size >= 64 * 1024;
  const payload = xBytes(size);
  const header = frameHeader(size);
  const message = large ? header : frame(payload);
  let onFrames: (frames: number) => void = () => {};
  const socket = await nativeConnect(port, () => ({
    onData: frameScanner((_whole, frames) => onFrames(frames)),
  }));
  let seconds: number;
  if (mode === "echo") {
    const window = numArg(args, "window", 16_384);
    const batchSize = numArg(args, "batch", 1024);
    const block = new Uint8Array(message.length * batchSize);
    for (let i = 0; i < batchSize; i++) block.set(message, i * message.length);
    const phase = (total: number) =>
      new Promise<void>((resolve) => {
        let sent = 0;
        let answered = 0;
        const pump = () => {
          while (sent < total && sent - answered < window) {
            const n = Math.min(batchSize, total - sent);
            socket.write(n === batchSize ? block : block.subarray(0, n * message.length));
            sent += n;
          }
        };
        onFrames = (frames) => {
          answered += frames;
          if (answered >= total) resolve();
          else pump();
        };
        pump();
      });
    await phase(numArg(args, "warmup", Math.min(count, 50_000)));
    const started = performance.now();
    await phase(count);
    seconds = (performance.now() - started) / 1000;
  } else {
    // One-way: the same bytes asockio sends (frames of X), written as fast as the socket takes them.
    const perBlock = large ? 0 : Math.max(1, Math.floor((1024 * 1024) / message.length));
    const block = new Uint8Array(message.length * perBlock);
    for (let i = 0; i < perBlock; i++) block.set(message, i * message.length);
    let finished!: () => void;
    const answered = new Promise<void>((resolve) => finished = resolve);
    onFrames = () => finished();
    const started = performance.now();
    let sent = 0;
    while (sent < count) {
      let full = true;
      if (large) {
        socket.write(header);
        full = socket.write(payload);
        sent++;
      } else {
        const n = Math.min(perBlock, count - sent);
        full = socket.write(n === perBlock ? block : block.subarray(0, n * message.length));
        sent += n;
      }
      if (!full) await socket.drained();
    }
    await answered;
    seconds = (performance.now() - started) / 1000;
  }
  const rss = peakRss();
  socket.close();
  report("RESULT", { seconds, count, size, rss });
  process.exit(0);
}

if (role === "server") await server();
else if (role === "client") await client();
else throw new TypeError(`Cannot run framed_bare: role must be server or client, got ${role}`);

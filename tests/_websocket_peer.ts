/**
 * The client side of RFC 6455 for tests, written independently of `core/wire/websocket_frames.ts`:
 * masked frame encoding, an unmasked server-frame reader, and the upgrade request.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { NetPeer } from "./_net_client.ts";

/** One frame a server sent. */
export interface ServerFrame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** Options of {@linkcode clientFrame}. */
export interface ClientFrameOptions {
  /** Sets FIN. Default true. */
  fin?: boolean;
  /** Masks the frame (clients must). Default true. */
  masked?: boolean;
  /** The reserved bits RSV1-3, as a 3-bit number. Default 0. */
  rsv?: number;
  /** The masking key. Default a fixed non-zero key. */
  mask?: readonly number[];
  /** Forces the 64-bit length form. */
  longLength?: boolean;
}

/** One client frame, masked as a client must (unless told otherwise). */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: ClientFrameOptions = {},
): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const masked = options.masked ?? true;
  const mask = options.mask ?? [0x37, 0xfa, 0x21, 0x3d];
  const len = data.length;
  const ext = options.longLength || len > 65535 ? 8 : len > 125 ? 2 : 0;
  const head = 2 + ext + (masked ? 4 : 0);
  const out = new Uint8Array(head + len);
  out[0] = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  out[1] = (masked ? 0x80 : 0) | (ext === 8 ? 127 : ext === 2 ? 126 : len);
  const view = new DataView(out.buffer);
  if (ext === 2) view.setUint16(2, len);
  if (ext === 8) view.setBigUint64(2, BigInt(len));
  if (masked) out.set(mask, 2 + ext);
  for (let i = 0; i < len; i++) out[head + i] = masked ? data[i]! ^ mask[i & 3]! : data[i]!;
  return out;
}

/** `parts` joined into one buffer. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A named client over the frame-level client: the upgrade, the keyword sent, `OK` received (checked).
 */
export async function namedWsPeer(
  port: number,
  keyword: string,
  extra: readonly string[] = [],
): Promise<WsPeer> {
  const peer = await WsPeer.open(port, "/ws", extra);
  peer.send(2, keyword);
  await peer.until((f) => f.length >= 1);
  if (peer.texts()[0] !== "OK") {
    throw new Error(`Not admitted as ${keyword}: ${JSON.stringify(peer.texts())}`);
  }
  return peer;
}

/** A close frame's payload: the code, then the reason. */
export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Reads unmasked server frames from a byte stream in any split. */
export class ServerFrameReader {
  #buf = new Uint8Array(0);

  /** Adds bytes; returns the frames now complete. */
  push(bytes: Uint8Array): ServerFrame[] {
    const joined = new Uint8Array(this.#buf.length + bytes.length);
    joined.set(this.#buf);
    joined.set(bytes, this.#buf.length);
    const frames: ServerFrame[] = [];
    let at = 0;
    for (;;) {
      if (joined.length - at < 2) break;
      if ((joined[at + 1]! & 0x80) !== 0) throw new Error("server frame is masked");
      let len = joined[at + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        if (joined.length - at < 4) break;
        len = (joined[at + 2]! << 8) | joined[at + 3]!;
        head = 4;
      } else if (len === 127) {
        if (joined.length - at < 10) break;
        len = Number(new DataView(joined.buffer, joined.byteOffset + at + 2, 8).getBigUint64(0));
        head = 10;
      }
      if (joined.length - at < head + len) break;
      frames.push({
        fin: (joined[at]! & 0x80) !== 0,
        opcode: joined[at]! & 0x0f,
        payload: joined.slice(at + head, at + head + len),
      });
      at += head + len;
    }
    this.#buf = joined.slice(at);
    return frames;
  }
}

/** The `Sec-WebSocket-Accept` value for `key`, computed with `node:crypto`. */
export function expectedAccept(key: string): string {
  return createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
}

/** An upgrade request for `path` with `key`, and extra header lines. */
export function upgradeRequest(path: string, key: string, extra: readonly string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...extra,
    "",
    "",
  ].join("\r\n");
}

/** A frame-level WebSocket client on a raw TCP socket: it upgrades, then sends and reads frames as told. */
export class WsPeer {
  readonly net: NetPeer;
  readonly frames: ServerFrame[] = [];
  readonly #reader = new ServerFrameReader();
  #seen = 0;
  /** The 101 answer's head. */
  head = "";

  private constructor(net: NetPeer) {
    this.net = net;
  }

  /**
   * Connects to `port`, sends an upgrade for `path` (with `extra` header lines; after `prefix`, such as a
   * PROXY header, in the same write) and reads the 101.
   */
  static async open(
    port: number,
    path = "/ws",
    extra: readonly string[] = [],
    prefix?: Uint8Array,
  ): Promise<WsPeer> {
    const net = await NetPeer.connect(port);
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const request = new TextEncoder().encode(upgradeRequest(path, key, extra));
    net.write(prefix === undefined ? request : new Uint8Array([...prefix, ...request]));
    const peer = new WsPeer(net);
    const ok = await net.until(() => net.text().includes("\r\n\r\n"), 5000);
    if (!ok) throw new Error(`No answer to the upgrade: ${JSON.stringify(net.text())}`);
    const bytes = net.bytes();
    const end = net.text().indexOf("\r\n\r\n") + 4;
    peer.head = new TextDecoder().decode(bytes.subarray(0, end));
    if (!peer.head.startsWith("HTTP/1.1 101 ")) throw new Error(`Upgrade refused: ${peer.head}`);
    if (!peer.head.includes(`Sec-WebSocket-Accept: ${expectedAccept(key)}\r\n`)) {
      throw new Error(`Wrong Sec-WebSocket-Accept: ${peer.head}`);
    }
    peer.#seen = end;
    return peer;
  }

  /** Parses what arrived since the last call. */
  #read(): void {
    const bytes = this.net.bytes();
    if (bytes.length > this.#seen) {
      this.frames.push(...this.#reader.push(bytes.subarray(this.#seen)));
      this.#seen = bytes.length;
    }
  }

  /** Sends a frame. */
  send(opcode: number, payload: Uint8Array | string, options?: ClientFrameOptions): void {
    this.net.write(clientFrame(opcode, payload, options));
  }

  /** Waits until `count` frames arrived (or the socket closed); returns them. */
  async until(condition: (frames: ServerFrame[]) => boolean, timeoutMs = 10_000): Promise<ServerFrame[]> {
    await this.net.until(() => {
      this.#read();
      return condition(this.frames);
    }, timeoutMs);
    this.#read();
    return this.frames;
  }

  /** The data frames' payloads as text. */
  texts(): string[] {
    return this.frames.filter((f) => f.opcode === 1 || f.opcode === 2).map((f) =>
      new TextDecoder().decode(f.payload)
    );
  }

  /** The close frame's code, once one came. */
  closeCode(): number | undefined {
    const close = this.frames.find((f) => f.opcode === 8);
    return close && close.payload.length >= 2 ? (close.payload[0]! << 8) | close.payload[1]! : undefined;
  }

  /** Waits for a close frame and returns its code. */
  async closed(timeoutMs = 10_000): Promise<number | undefined> {
    await this.until(() => this.closeCode() !== undefined, timeoutMs);
    return this.closeCode();
  }
}

/**
 * The server side of RFC 6455 framing, no I/O: {@linkcode WebSocketFrameParser} takes the client's bytes
 * in any split and pushes events (a whole message, a ping, a pong, a close, a protocol error) to a
 * {@linkcode WebSocketFrameEvents}; {@linkcode webSocketHeader} and {@linkcode webSocketCloseFrame}
 * make the server's (unmasked) frames. No extension is negotiated, so the reserved bits must be 0.
 *
 * @example A masked text frame, fed one byte at a time
 * ```ts
 * import { WebSocketFrameParser } from "./websocket_frames.ts";
 * const parser = new WebSocketFrameParser({ maxMessageBytes: 1024 }, {
 *   message: (payload, text) => console.log(text, new TextDecoder().decode(payload)), // true "Hi"
 *   ping: () => {},
 *   pong: () => {},
 *   close: () => {},
 *   error: () => {},
 * });
 * for (const byte of [0x81, 0x82, 1, 2, 3, 4, 0x48 ^ 1, 0x69 ^ 2]) parser.push(new Uint8Array([byte]));
 * ```
 *
 * @module
 */
import { reserveArena, trimArena } from "./_byte_arena.ts";

/** The frame opcodes of RFC 6455 §5.2. */
export const WebSocketOpcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;
/** One of {@linkcode WebSocketOpcode}. */
export type WebSocketOpcode = typeof WebSocketOpcode[keyof typeof WebSocketOpcode];

/** The close codes the server sends (RFC 6455 §7.4.1). */
export const WebSocketCloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
} as const;
/** One of {@linkcode WebSocketCloseCode}. */
export type WebSocketCloseCode = typeof WebSocketCloseCode[keyof typeof WebSocketCloseCode];

/** Where the parser's events go. Each is called synchronously from {@linkcode WebSocketFrameParser.push}. */
export interface WebSocketFrameEvents {
  /** A whole message (fragments joined): binary bytes, or text as its UTF-8 bytes (checked valid). */
  message(payload: Uint8Array, text: boolean): void;
  /** A ping: answer it with a pong carrying the same payload. */
  ping(payload: Uint8Array): void;
  /** A pong (answering the server's ping, or unsolicited). */
  pong(payload: Uint8Array): void;
  /** The peer's close frame: its code (undefined when it sent none) and reason. Nothing is parsed after it. */
  close(code: number | undefined, reason: string): void;
  /**
   * The peer broke the protocol: close with `code` (1002, 1007, 1009). Nothing is parsed after it.
   * For 1009, `length` is the message's length so far, this frame included.
   */
  error(code: WebSocketCloseCode, message: string, length?: number): void;
  /**
   * With `batchBytes`: whole small messages, each behind an 8-byte little-endian length (the session's
   * framing), back to back; text ones as their UTF-8 bytes (checked valid), not told apart. Pushed at
   * the end of each chunk and before any other event, so the order of messages and events is kept.
   */
  frames?(frames: Uint8Array): void;
}

/** Options of a {@linkcode WebSocketFrameParser}. */
export interface WebSocketFrameParserOptions {
  /** The largest message, counted across its fragments before anything is buffered (else 1009). */
  maxMessageBytes: number;
  /**
   * Bytes left free in front of each delivered message's payload (the payload starts at this offset
   * of its buffer), so a caller can write its own header there without a copy.
   * @default {0}
   */
  reserveBytes?: number;
  /**
   * Unfragmented messages up to this many bytes that lie whole in the chunk being parsed are written,
   * each behind an 8-byte length, into one buffer per chunk and pushed through `frames`: no
   * allocation per message. `0`: every message goes through `message`.
   * @default {0}
   */
  batchBytes?: number;
}

const State = { header: 0, payload: 1, done: 2 } as const;
type State = typeof State[keyof typeof State];

const MAX_CONTROL_PAYLOAD = 125;
const NO_BYTES = new Uint8Array(0);
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** True when `bytes` are valid UTF-8. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** True for a close code a peer may send (RFC 6455 §7.4). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/**
 * XORs `source[from, end)` with the mask bytes `k0`..`k3` (in that order, from `k0`) into `target` at `t`;
 * returns the index in `target` after the last byte. Four bytes a step with the mask in locals: about twice
 * as fast as a lookup per byte.
 */
function unmaskInto(
  target: Uint8Array,
  t: number,
  source: Uint8Array,
  from: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): number {
  let i = from;
  for (; i + 4 <= end; i += 4, t += 4) {
    target[t] = source[i]! ^ k0;
    target[t + 1] = source[i + 1]! ^ k1;
    target[t + 2] = source[i + 2]! ^ k2;
    target[t + 3] = source[i + 3]! ^ k3;
  }
  if (i < end) target[t++] = source[i++]! ^ k0;
  if (i < end) target[t++] = source[i++]! ^ k1;
  if (i < end) target[t++] = source[i++]! ^ k2;
  return t;
}

/**
 * Reads client frames (always masked) and pushes events. It copies what it keeps (a partial header,
 * unmasked payloads), so the caller may reuse a chunk once {@linkcode push} returns.
 */
export class WebSocketFrameParser {
  readonly #events: WebSocketFrameEvents;
  readonly #max: number;
  readonly #reserve: number;
  #state: State = State.header;
  readonly #head = new Uint8Array(14);
  #headHave = 0;
  // The current frame.
  #fin = false;
  #opcode = 0;
  readonly #mask = new Uint8Array(4);
  #frameLength = 0;
  #frameHave = 0;
  #target: Uint8Array = NO_BYTES;
  #targetAt = 0;
  // The message being assembled across fragments.
  #messageOpcode = 0;
  #messageBytes = 0;
  #fragments: Uint8Array[] = [];
  // Whole small messages of the chunk (`batchBytes`): written into #slab from #slabStart to #slabAt.
  readonly #batch: number;
  #slab: Uint8Array | undefined;
  #slabStart = 0;
  #slabAt = 0;
  #inSlab = false;
  /** Bytes of the chunk being parsed after the current position (set when a header completes). */
  #chunkLeft = 0;

  /** A parser that pushes to `events`. */
  constructor(options: WebSocketFrameParserOptions, events: WebSocketFrameEvents) {
    this.#max = options.maxMessageBytes;
    this.#reserve = options.reserveBytes ?? 0;
    this.#batch = options.batchBytes ?? 0;
    this.#events = events;
  }

  /** True once a close frame or a protocol error ended parsing. */
  get done(): boolean {
    return this.#state === State.done;
  }

  /** Bytes held for the message being assembled (its fragments and the current frame's payload). */
  get bufferedBytes(): number {
    return this.#messageBytes + (this.#state === State.payload ? this.#frameHave : 0);
  }

  /** Parses `chunk`; events are pushed as frames complete. */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && this.#state !== State.done) {
      if (this.#state === State.header) {
        if (this.#batch > 0 && this.#headHave === 0 && this.#messageOpcode === 0) {
          const next = this.#wholeFrames(chunk, at);
          if (next !== at) {
            at = next;
            continue;
          }
        }
        at = this.#readHeader(chunk, at);
      } else at = this.#readPayload(chunk, at);
    }
    this.#pushSlab();
    if (this.#slab !== undefined) {
      trimArena(this.#slab, this.#slabAt);
      this.#slab = undefined;
    }
  }

  /**
   * The common case in one loop: whole, unfragmented, small binary or text frames lying in `chunk`
   * from `at` go straight into the slab. Returns where it stopped: at the first frame it leaves to
   * the general path (a control frame, a fragment, a larger or partial frame, anything to refuse).
   */
  #wholeFrames(chunk: Uint8Array, at: number): number {
    const end = chunk.length;
    const batch = this.#batch;
    while (at + 6 <= end) {
      const b0 = chunk[at]!;
      const b1 = chunk[at + 1]!;
      if ((b0 !== 0x82 && b0 !== 0x81) || b1 < 0x80) break;
      let length = b1 & 0x7f;
      let p = at + 6;
      if (length === 126) {
        if (at + 8 > end) break;
        length = (chunk[at + 2]! << 8) | chunk[at + 3]!;
        p = at + 8;
      } else if (length === 127) break;
      if (length > batch || length > this.#max || p + length > end) break;
      const k0 = chunk[p - 4]!, k1 = chunk[p - 3]!, k2 = chunk[p - 2]!, k3 = chunk[p - 1]!;
      let slab = this.#slab;
      let s = this.#slabAt;
      if (slab === undefined || s + 8 + length > slab.length) {
        this.#pushSlab();
        // The rest of the chunk holds at most (left - length) / 6 more frames, each growing by 2 bytes.
        if (slab !== undefined) trimArena(slab, s);
        slab = this.#slab = reserveArena(8 + length + Math.ceil((end - p - length) * 4 / 3));
        this.#slabStart = this.#slabAt = s = 0;
      }
      slab[s] = length;
      slab[s + 1] = length >>> 8;
      slab[s + 2] =
        slab[s + 3] =
        slab[s + 4] =
        slab[s + 5] =
        slab[s + 6] =
        slab[s + 7] =
          0;
      const stop = p + length;
      const t = unmaskInto(slab, s + 8, chunk, p, stop, k0, k1, k2, k3);
      if (b0 === 0x81 && !isValidUtf8(slab.subarray(s + 8, t))) {
        this.#fail(WebSocketCloseCode.invalidPayload, "text message is not valid UTF-8");
        return stop;
      }
      this.#slabAt = t;
      at = stop;
    }
    return at;
  }

  /** Pushes the batched messages of the chunk, if any, through `frames`. */
  #pushSlab(): void {
    if (this.#slabAt === this.#slabStart) return;
    const frames = this.#slab!.subarray(this.#slabStart, this.#slabAt);
    this.#slabStart = this.#slabAt;
    this.#events.frames!(frames);
  }

  /** Places a whole message of `length` bytes in the slab; false when it does not go there. */
  #toSlab(length: number): boolean {
    if (length > this.#batch || length > this.#chunkLeft) return false;
    const need = 8 + length;
    if (this.#slab === undefined || this.#slabAt + need > this.#slab.length) {
      this.#pushSlab();
      if (this.#slab !== undefined) trimArena(this.#slab, this.#slabAt);
      // The rest of the chunk holds at most (left - length) / 6 more frames, each growing by 2 bytes.
      this.#slab = reserveArena(need + Math.ceil((this.#chunkLeft - length) * 4 / 3));
      this.#slabStart = this.#slabAt = 0;
    }
    this.#target = this.#slab;
    this.#targetAt = this.#slabAt + 8;
    this.#inSlab = true;
    return true;
  }

  #readHeader(chunk: Uint8Array, at: number): number {
    const head = this.#head;
    if (this.#headHave === 0 && chunk.length - at >= 6) {
      // The whole header is in the chunk (the common case): checked once, not byte by byte.
      const len7 = chunk[at + 1]! & 0x7f;
      const need = len7 === 127 ? 14 : len7 === 126 ? 8 : 6;
      if (chunk.length - at >= need) {
        head[0] = chunk[at]!;
        this.#headHave = 1;
        if (this.#headerLength() === -1) return at + 1;
        head[1] = chunk[at + 1]!;
        this.#headHave = 2;
        if (this.#headerLength() === -1) return at + 2;
        for (let i = 2; i < need; i++) head[i] = chunk[at + i]!;
        this.#chunkLeft = chunk.length - at - need;
        this.#beginFrame(need);
        return at + need;
      }
    }
    while (at < chunk.length) {
      head[this.#headHave++] = chunk[at++]!;
      const need = this.#headerLength();
      if (need === -1) return at; // an error was reported
      if (this.#headHave === need) {
        this.#chunkLeft = chunk.length - at;
        this.#beginFrame(need);
        return at;
      }
    }
    return at;
  }

  /** The header's full length once enough of it is known (2 until the second byte is in). */
  #headerLength(): number {
    const head = this.#head;
    if (this.#headHave === 1) {
      const b0 = head[0]!;
      if ((b0 & 0x70) !== 0) return this.#fail(WebSocketCloseCode.protocolError, "reserved bits set");
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode >= 0x8) {
        if (opcode > 0xa) return this.#fail(WebSocketCloseCode.protocolError, `unknown opcode ${opcode}`);
        if (!fin) return this.#fail(WebSocketCloseCode.protocolError, "fragmented control frame");
      } else if (opcode > 0x2) {
        return this.#fail(WebSocketCloseCode.protocolError, `unknown opcode ${opcode}`);
      } else if (opcode === 0 && this.#messageOpcode === 0) {
        return this.#fail(WebSocketCloseCode.protocolError, "continuation frame without a message");
      } else if (opcode !== 0 && this.#messageOpcode !== 0) {
        return this.#fail(WebSocketCloseCode.protocolError, "new message before the last one ended");
      }
      return 2;
    }
    const b1 = head[1]!;
    if (this.#headHave === 2) {
      if ((b1 & 0x80) === 0) return this.#fail(WebSocketCloseCode.protocolError, "client frame not masked");
      const len7 = b1 & 0x7f;
      if ((head[0]! & 0x0f) >= 0x8 && len7 > MAX_CONTROL_PAYLOAD) {
        return this.#fail(WebSocketCloseCode.protocolError, "control frame over 125 bytes");
      }
    }
    const len7 = b1 & 0x7f;
    return len7 === 127 ? 14 : len7 === 126 ? 8 : 6;
  }

  #beginFrame(headerLength: number): void {
    const head = this.#head;
    this.#headHave = 0;
    this.#fin = (head[0]! & 0x80) !== 0;
    this.#opcode = head[0]! & 0x0f;
    const len7 = head[1]! & 0x7f;
    let length = len7;
    if (len7 === 126) length = (head[2]! << 8) | head[3]!;
    else if (len7 === 127) {
      const hi = ((head[2]! << 24) | (head[3]! << 16) | (head[4]! << 8) | head[5]!) >>> 0;
      const lo = ((head[6]! << 24) | (head[7]! << 16) | (head[8]! << 8) | head[9]!) >>> 0;
      if (hi >= 0x80000000) {
        this.#fail(WebSocketCloseCode.protocolError, "payload length with the top bit set");
        return;
      }
      length = hi * 4294967296 + lo;
    }
    const mask = this.#mask; // byte by byte: a subarray per frame cost more than the rest of its header
    mask[0] = head[headerLength - 4]!;
    mask[1] = head[headerLength - 3]!;
    mask[2] = head[headerLength - 2]!;
    mask[3] = head[headerLength - 1]!;
    this.#frameLength = length;
    this.#frameHave = 0;
    const control = this.#opcode >= 0x8;
    if (!control) {
      if (this.#opcode !== 0) this.#messageOpcode = this.#opcode;
      const total = this.#messageBytes + length;
      if (total > this.#max) {
        this.#fail(
          WebSocketCloseCode.messageTooBig,
          `message of at least ${total} bytes exceeds maxMessageBytes ${this.#max}`,
          total,
        );
        return;
      }
    }
    // A whole unfragmented message goes straight into its final buffer, with the reserved prefix.
    // (Not `#messageBytes === 0`: after an empty first fragment that is 0 too, and the prefix would double.)
    const whole = !control && this.#fin && this.#fragments.length === 0;
    if (!whole || this.#batch === 0 || !this.#toSlab(length)) {
      const reserve = whole ? this.#reserve : 0;
      this.#target = new Uint8Array(reserve + length);
      this.#targetAt = reserve;
    }
    this.#state = State.payload;
    if (length === 0) this.#endFrame();
  }

  #readPayload(chunk: Uint8Array, at: number): number {
    const n = Math.min(chunk.length - at, this.#frameLength - this.#frameHave);
    const mask = this.#mask;
    const m = this.#frameHave & 3;
    const k0 = mask[m]!, k1 = mask[(m + 1) & 3]!, k2 = mask[(m + 2) & 3]!, k3 = mask[(m + 3) & 3]!;
    const end = at + n;
    this.#targetAt = unmaskInto(this.#target, this.#targetAt, chunk, at, end, k0, k1, k2, k3);
    this.#frameHave += n;
    if (this.#frameHave === this.#frameLength) this.#endFrame();
    return end;
  }

  #endFrame(): void {
    this.#state = State.header;
    if (this.#inSlab) return this.#endSlabFrame();
    this.#pushSlab();
    const payload = this.#target;
    this.#target = NO_BYTES;
    switch (this.#opcode) {
      case WebSocketOpcode.ping:
        return this.#events.ping(payload);
      case WebSocketOpcode.pong:
        return this.#events.pong(payload);
      case WebSocketOpcode.close:
        return this.#closeFrame(payload);
    }
    if (!this.#fin) {
      this.#fragments.push(payload);
      this.#messageBytes += payload.length;
      return;
    }
    let message = payload;
    if (this.#fragments.length > 0) {
      this.#fragments.push(payload);
      message = new Uint8Array(this.#reserve + this.#messageBytes + payload.length);
      let at = this.#reserve;
      for (const part of this.#fragments) {
        message.set(part, at);
        at += part.length;
      }
      this.#fragments = [];
    }
    const text = this.#messageOpcode === WebSocketOpcode.text;
    this.#messageOpcode = 0;
    this.#messageBytes = 0;
    if (text && !isValidUtf8(message.subarray(this.#reserve))) {
      this.#fail(WebSocketCloseCode.invalidPayload, "text message is not valid UTF-8");
      return;
    }
    this.#events.message(message, text);
  }

  /** A batched message is in: its length goes in front (its text checked), its bytes stay for `frames`. */
  #endSlabFrame(): void {
    this.#inSlab = false;
    const slab = this.#target;
    this.#target = NO_BYTES;
    const at = this.#slabAt;
    const length = this.#frameLength;
    const text = this.#messageOpcode === WebSocketOpcode.text;
    this.#messageOpcode = 0;
    if (text && !isValidUtf8(slab.subarray(at + 8, at + 8 + length))) {
      this.#fail(WebSocketCloseCode.invalidPayload, "text message is not valid UTF-8");
      return;
    }
    slab[at] = length;
    slab[at + 1] = length >>> 8;
    slab[at + 2] = length >>> 16;
    slab[at + 3] = length >>> 24;
    slab[at + 4] =
      slab[at + 5] =
      slab[at + 6] =
      slab[at + 7] =
        0; // arena bytes are not always zero
    this.#slabAt = at + 8 + length;
  }

  #closeFrame(payload: Uint8Array): void {
    if (payload.length === 1) {
      this.#fail(WebSocketCloseCode.protocolError, "close frame with a 1-byte payload");
      return;
    }
    let code: number | undefined;
    let reason = "";
    if (payload.length >= 2) {
      code = (payload[0]! << 8) | payload[1]!;
      if (!isValidCloseCode(code)) {
        this.#fail(WebSocketCloseCode.protocolError, `invalid close code ${code}`);
        return;
      }
      const reasonBytes = payload.subarray(2);
      if (!isValidUtf8(reasonBytes)) {
        this.#fail(WebSocketCloseCode.invalidPayload, "close reason is not valid UTF-8");
        return;
      }
      reason = utf8.decode(reasonBytes);
    }
    this.#stop();
    this.#events.close(code, reason);
  }

  #stop(): void {
    this.#state = State.done;
    this.#fragments = [];
    this.#messageBytes = 0;
    this.#target = NO_BYTES;
  }

  #fail(code: WebSocketCloseCode, message: string, length?: number): -1 {
    this.#pushSlab();
    this.#stop();
    this.#events.error(code, `Cannot read WebSocket frame: ${message}`, length);
    return -1;
  }
}

/**
 * The header of one unmasked server frame with `length` payload bytes (2, 4 or 10 bytes).
 *
 * @param opcode The frame's opcode.
 * @param length The payload's length.
 * @param fin False for a fragment other than the last.
 */
export function webSocketHeader(opcode: WebSocketOpcode, length: number, fin = true): Uint8Array {
  const b0 = (fin ? 0x80 : 0) | opcode;
  if (length < 126) return new Uint8Array([b0, length]);
  if (length < 65536) return new Uint8Array([b0, 126, length >>> 8, length & 0xff]);
  const head = new Uint8Array(10);
  head[0] = b0;
  head[1] = 127;
  const hi = Math.floor(length / 4294967296);
  const lo = length >>> 0;
  head[2] = hi >>> 24;
  head[3] = hi >>> 16;
  head[4] = hi >>> 8;
  head[5] = hi;
  head[6] = lo >>> 24;
  head[7] = lo >>> 16;
  head[8] = lo >>> 8;
  head[9] = lo;
  return head;
}

/** A whole unmasked server control frame (`payload` at most 125 bytes). */
export function webSocketControlFrame(opcode: WebSocketOpcode, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(2 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = payload.length;
  frame.set(payload, 2);
  return frame;
}

/** A whole unmasked close frame with `code` and a reason cut to fit 123 bytes. */
export function webSocketCloseFrame(code: number, reason = ""): Uint8Array {
  let text = new TextEncoder().encode(reason);
  if (text.length > MAX_CONTROL_PAYLOAD - 2) {
    let cut = MAX_CONTROL_PAYLOAD - 2;
    while (cut > 0 && (text[cut]! & 0xc0) === 0x80) cut--;
    text = text.subarray(0, cut);
  }
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return webSocketControlFrame(WebSocketOpcode.close, payload);
}

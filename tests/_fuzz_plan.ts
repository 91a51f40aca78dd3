/**
 * The fuzzer's plans: every fuzz connection, fully determined by `(seed, index)`, with what it writes,
 * what it expects and how it ends; the oracle predicts the outcome of stream connections.
 *
 * @module
 */
import { encodeFrame, encodeFrames, FRAME_HEADER_BYTES } from "../mod.ts";
import { frameHeader, text } from "./_wire_peer.ts";
import { concatBytes, KiB } from "./_helpers.ts";
import { fnv, FNV_OFFSET, RefDecoder, Rng } from "./_stream_check.ts";
import { proxyHeaderCase, type ProxySource } from "./_fuzz_proxy.ts";

const encoder = new TextEncoder();

/** The answer a handshake plan allows when the core may close without answering. */
export const NO_ANSWER = "<none>";
/** Matches any `AUTH-HMAC-SHA256:` challenge. */
export const CHALLENGE = "AUTH*";
export const CHALLENGE_PREFIX = "AUTH-HMAC-SHA256:";
/** A frame starting with these bytes asks the fuzz server to switch the connection to raw mode. */
export const RAW_SWITCH_MAGIC = new Uint8Array([0x00, 0xff, ...encoder.encode("FUZZ-RAW:")]);
export const RAW_ACK = "RAW-ACK";
export const FRAMED_ACK = "FRAMED-ACK";
export const SECRET_KEYWORD = "hs-secret";
export const HANDSHAKE_KEYWORDS = 16;

/** One step of a fuzz connection's script. */
type FuzzStep =
  | { op: "write"; bytes: Uint8Array }
  | { op: "yield" }
  | { op: "expect"; answers: readonly string[] };

/** The outcome the oracle predicts for a stream connection. */
interface StreamExpectation {
  messages: number;
  hash: number;
  rawBytes: number;
  rawHash: number;
  fatal: boolean;
}

/**
 * One fuzz connection, fully determined by `(seed, index)`: what it writes, what it expects, and how
 * it ends. `scripts/fuzz.ts --seed S --only I` replays connection I alone.
 */
export interface FuzzPlan {
  /** The connection's index in the run. */
  readonly index: number;
  /**
   * `framed`: a valid handshake, then a stream of mutated frames (with raw-mode segments);
   * `raw`: a valid handshake of a raw client, then garbage chunks; `unknown`: garbage to the raw
   * listener; `handshake`: a mutated handshake on its own connection; `proxy`: a valid or mutated
   * PROXY header to the PROXY listener, then (unless cut short) its own keyword and a few frames.
   */
  readonly kind: "framed" | "raw" | "unknown" | "handshake" | "proxy";
  /** The listener it goes to. */
  readonly target: "tcp4" | "tcp6" | "unix" | "proxy";
  /** Stream plans: write the stream right behind the keyword, without waiting for `OK`. */
  readonly pipelined: boolean;
  /** What to write, when to yield to the event loop, and which answers to wait for. */
  readonly steps: FuzzStep[];
  /** How it ends: the peer half-closes, closes, stalls, or the core must close it (fatal). */
  readonly ending: "half-close" | "close" | "fatal" | "stall";
  /** Handshake plans: the answers allowed after the steps (`<none>`: the core may close silently). */
  readonly finalAnswers: readonly string[];
  /** Stream plans: the oracle's prediction. */
  readonly expect: StreamExpectation;
  /** Cases in this plan, by kind (see {@linkcode FuzzReport}). */
  readonly frameCases: number;
  /** Raw chunks written (raw plans, unknown plans and raw segments of framed plans). */
  readonly rawCases: number;
  /** 1 for a handshake plan. */
  readonly handshakeCases: number;
  /** 1 for a PROXY plan. */
  readonly proxyCases: number;
  /**
   * PROXY plans: the keyword the plan announces (the runner registers it, admitting any address),
   * and, when the header names one, the client address the core must report.
   */
  readonly proxy?: {
    readonly keyword: string;
    readonly source: ProxySource | undefined;
    /** The header is cut short and nothing follows it. */
    readonly truncated: boolean;
    /** Bytes up to the end of the keyword frame (of the header, when cut short): the handshake's part. */
    readonly handshakeBytes: number;
  };
  /** Bytes written. */
  readonly bytes: number;
  /** A short description, for failure messages. */
  readonly label: string;
}

/** Limits the fuzz core runs with (small, so the caps are cheap to reach). */
export interface FuzzLimits {
  /** The core's `maxMessageBytes`. */
  maxMessageBytes: number;
  /** The core's `maxKeywordBytes`. */
  maxKeywordBytes: number;
  /** The core's `inputBytes` cap (small, to exercise pausing). */
  inputBytes: number;
  /** The core's `handshakeTimeoutMs`. */
  handshakeTimeoutMs: number;
  /** The most cases in one stream connection. */
  maxCasesPerConnection: number;
}

/**
 * The limits used unless overridden.
 */
export const DEFAULT_FUZZ_LIMITS: FuzzLimits = {
  maxMessageBytes: 4096,
  maxKeywordBytes: 64,
  inputBytes: 64 * KiB,
  handshakeTimeoutMs: 400,
  maxCasesPerConnection: 200,
};

/** `size` bytes in one of several shapes: random, zeros, one repeated byte, text, a ramp. */
function fuzzFill(rng: Rng, size: number): Uint8Array {
  const out = new Uint8Array(size);
  switch (rng.int(5)) {
    case 0:
      for (let i = 0; i < size; i += 4) {
        const v = rng.u32();
        out[i] = v;
        if (i + 1 < size) out[i + 1] = v >>> 8;
        if (i + 2 < size) out[i + 2] = v >>> 16;
        if (i + 3 < size) out[i + 3] = v >>> 24;
      }
      break;
    case 1:
      break;
    case 2:
      out.fill(rng.int(256));
      break;
    case 3:
      for (let i = 0; i < size; i++) out[i] = 0x20 + (rng.u32() % 95);
      break;
    default: {
      const start = rng.int(256);
      for (let i = 0; i < size; i++) out[i] = (start + i) & 0xff;
    }
  }
  return out;
}

function fuzzPayload(rng: Rng, max: number): Uint8Array {
  const r = rng.float();
  const size = r < 0.7
    ? rng.int(Math.min(33, max + 1))
    : r < 0.95
    ? rng.int(Math.min(513, max + 1))
    : rng.int(
      max + 1,
    );
  return fuzzFill(rng, size);
}

function flipBits(rng: Rng, bytes: Uint8Array, from: number, to: number, count: number): void {
  if (to <= from) return;
  for (let i = 0; i < count; i++) {
    const at = from + rng.int(to - from);
    bytes[at] ^= 1 << rng.int(8);
  }
}

/** A garbage chunk for raw connections: random bytes, frames, huge headers, text, or zeros. */
function rawChunk(rng: Rng, max: number): Uint8Array {
  const r = rng.float();
  if (r < 0.4) return fuzzFill(rng, rng.range(1, 256));
  if (r < 0.6) return encodeFrame(fuzzPayload(rng, max));
  if (r < 0.7) return frameHeader(2n ** 64n - 1n);
  if (r < 0.8) return encoder.encode(`GET /${rng.int(1000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return fuzzFill(rng, rng.range(1, max));
}

/** Writes for one plan, fed to the oracle as they are made. */
class PlanWriter {
  readonly steps: FuzzStep[] = [];
  bytes = 0;
  readonly ref: RefDecoder;
  constructor(max: number) {
    this.ref = new RefDecoder(max);
  }
  /** Framed-mode bytes: the oracle decodes them. */
  framed(bytes: Uint8Array): void {
    // Past a fatal header the core has closed the connection: the rest of a case is never sent.
    if (bytes.length === 0 || this.ref.fatal) return;
    this.steps.push({ op: "write", bytes });
    this.bytes += bytes.length;
    this.ref.push(bytes);
  }
  /** Raw-mode bytes: the oracle only hashes them (the caller does). */
  raw(bytes: Uint8Array): void {
    this.steps.push({ op: "write", bytes });
    this.bytes += bytes.length;
  }
  yield(): void {
    this.steps.push({ op: "yield" });
  }
  expect(...answers: string[]): void {
    this.steps.push({ op: "expect", answers });
  }
}

/** Emits one fuzz case (sometimes several coalesced frames) and returns how many frame cases it was. */
function fuzzFrameCase(rng: Rng, limits: FuzzLimits, w: PlanWriter): number {
  const max = limits.maxMessageBytes;
  const r = rng.float();
  const payload = fuzzPayload(rng, max);
  const frame = encodeFrame(payload);
  if (r < 0.4) {
    w.framed(frame);
  } else if (r < 0.52) {
    // Many small frames in one write.
    const k = rng.range(2, 32);
    const list: Uint8Array[] = [];
    for (let i = 0; i < k; i++) list.push(fuzzFill(rng, rng.int(65)));
    w.framed(encodeFrames(list));
    return k;
  } else if (r < 0.64) {
    // Random splits, each piece its own write.
    const cuts = new Set<number>();
    const pieces = rng.range(1, 3);
    for (let i = 0; i < pieces && frame.length > 1; i++) cuts.add(rng.range(1, frame.length - 1));
    let at = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      w.framed(frame.subarray(at, cut));
      w.yield();
      at = cut;
    }
    w.framed(frame.subarray(at));
  } else if (r < 0.66) {
    // The header byte by byte.
    for (let i = 0; i < FRAME_HEADER_BYTES; i++) {
      w.framed(frame.subarray(i, i + 1));
      w.yield();
    }
    w.framed(frame.subarray(FRAME_HEADER_BYTES));
  } else if (r < 0.7) {
    w.framed(frameHeader(0));
  } else if (r < 0.78) {
    flipBits(rng, frame, FRAME_HEADER_BYTES, frame.length, rng.range(1, 4));
    w.framed(frame);
  } else if (r < 0.795) {
    w.framed(encodeFrame(fuzzFill(rng, max - 1)));
  } else if (r < 0.81) {
    w.framed(encodeFrame(fuzzFill(rng, max)));
  } else if (r < 0.825) {
    // A low length bit flipped: the stream desynchronizes by a little.
    flipBits(rng, frame, 0, 2, 1);
    w.framed(frame);
  } else if (r < 0.835) {
    flipBits(rng, frame, 0, FRAME_HEADER_BYTES, 1);
    w.framed(frame);
  } else if (r < 0.845) {
    // A length of 0 with the payload still following.
    w.framed(concatBytes([frameHeader(0), payload]));
  } else if (r < 0.86) {
    w.framed(frame.subarray(0, rng.int(frame.length)));
  } else if (r < 0.875) {
    w.framed(concatBytes([fuzzFill(rng, rng.range(1, 16)), frame]));
  } else if (r < 0.88) {
    w.framed(concatBytes([frame.subarray(0, FRAME_HEADER_BYTES), frame]));
  } else if (r < 0.89) {
    // Declares more than it sends: the next frames fill the gap.
    w.framed(concatBytes([frameHeader(Math.min(max, payload.length + rng.range(1, 64))), payload]));
  } else if (r < 0.9) {
    w.framed(concatBytes([frameHeader(rng.int(payload.length + 1)), payload]));
  } else if (r < 0.904) {
    w.framed(concatBytes([frameHeader(max + 1), fuzzFill(rng, rng.int(64))]));
  } else if (r < 0.908) {
    w.framed(concatBytes([frameHeader(2n ** 64n - 1n), fuzzFill(rng, rng.int(64))]));
  } else if (r < 0.912) {
    const huge = rng.pick([2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, BigInt(max) * 2n, 2n ** 31n]);
    const h = frameHeader(huge);
    // Sometimes split inside the header, so the check runs on a header assembled across reads.
    const cut = rng.range(1, 7);
    w.framed(h.subarray(0, cut));
    w.yield();
    w.framed(h.subarray(cut));
  } else {
    w.yield();
    w.framed(frame);
  }
  return 1;
}

function fuzzTarget(rng: Rng): FuzzPlan["target"] {
  const r = rng.float();
  return r < 0.4 ? "tcp4" : r < 0.5 ? "tcp6" : "unix";
}

function streamPlan(rng: Rng, index: number, limits: FuzzLimits, raw: boolean): FuzzPlan {
  const w = new PlanWriter(limits.maxMessageBytes);
  const target = fuzzTarget(rng);
  const pipelined = rng.chance(0.5);
  const goal = rng.range(1, limits.maxCasesPerConnection);
  let frameCases = 0;
  let rawCases = 0;
  let rawBytes = 0;
  let rawHash = FNV_OFFSET;
  const rawPiece = (bytes: Uint8Array): void => {
    w.raw(bytes);
    rawCases++;
    rawBytes += bytes.length;
    rawHash = fnv(rawHash, bytes);
  };
  while (frameCases + rawCases < goal && !w.ref.fatal) {
    if (raw) {
      rawPiece(rawChunk(rng, limits.maxMessageBytes));
      if (rng.chance(0.3)) w.yield();
    } else if (w.ref.inSync && rng.chance(0.015)) {
      // A raw segment: the server switches to raw on the magic frame, reads n bytes, switches back.
      const n = rng.range(1, limits.maxMessageBytes);
      w.framed(encodeFrame(concatBytes([RAW_SWITCH_MAGIC, encoder.encode(String(n))])));
      frameCases++;
      w.expect(RAW_ACK);
      let left = n;
      while (left > 0) {
        const piece = rawChunk(rng, limits.maxMessageBytes).subarray(0, left);
        rawPiece(piece);
        left -= piece.length;
        if (rng.chance(0.3)) w.yield();
      }
      w.expect(FRAMED_ACK);
    } else {
      frameCases += fuzzFrameCase(rng, limits, w);
    }
  }
  const ending = w.ref.fatal ? "fatal" : rng.chance(0.75) ? "half-close" : "close";
  return {
    index,
    kind: raw ? "raw" : "framed",
    target,
    pipelined,
    steps: w.steps,
    ending,
    finalAnswers: [],
    expect: { messages: w.ref.messages, hash: w.ref.hash, rawBytes, rawHash, fatal: w.ref.fatal },
    frameCases,
    rawCases,
    handshakeCases: 0,
    proxyCases: 0,
    bytes: w.bytes,
    label: `${raw ? "raw" : "framed"} stream, ${frameCases + rawCases} cases, ending ${ending}`,
  };
}

function unknownPlan(rng: Rng, index: number, limits: FuzzLimits): FuzzPlan {
  const w = new PlanWriter(limits.maxMessageBytes);
  const goal = rng.range(1, 64);
  for (let i = 0; i < goal; i++) {
    w.raw(rawChunk(rng, limits.maxMessageBytes));
    if (rng.chance(0.3)) w.yield();
  }
  const ending = rng.chance(0.7) ? "half-close" : "close";
  return {
    index,
    kind: "unknown",
    target: "tcp4",
    pipelined: true,
    steps: w.steps,
    ending,
    finalAnswers: [],
    expect: { messages: 0, hash: FNV_OFFSET, rawBytes: w.bytes, rawHash: FNV_OFFSET, fatal: false },
    frameCases: 0,
    rawCases: goal,
    handshakeCases: 0,
    proxyCases: 0,
    bytes: w.bytes,
    label: `unknown raw client, ${goal} chunks, ending ${ending}`,
  };
}

function handshakePlan(rng: Rng, index: number, limits: FuzzLimits): FuzzPlan {
  const maxKw = limits.maxKeywordBytes;
  let keyword: Uint8Array;
  const k = rng.float();
  if (k < 0.25) keyword = encoder.encode(`hs-${index % HANDSHAKE_KEYWORDS}`);
  else if (k < 0.3) keyword = encoder.encode(`hsr-${index % HANDSHAKE_KEYWORDS}`);
  else if (k < 0.55) {
    keyword = encoder.encode(`un-${index}-${text(fuzzFill(rng, rng.int(16)).map((b) => 97 + b % 26))}`);
  } else if (k < 0.6) keyword = encoder.encode("control");
  else if (k < 0.72) keyword = encoder.encode(SECRET_KEYWORD);
  else if (k < 0.75) keyword = new Uint8Array(0);
  else if (k < 0.8) keyword = encoder.encode(`ux-${index}-`.padEnd(maxKw, "x"));
  else if (k < 0.9) keyword = concatBytes([encoder.encode(`rb-${index}-`), rng.bytes(rng.int(maxKw - 16))]);
  else keyword = encoder.encode("o".repeat(maxKw + 1));
  const base = encodeFrame(keyword);
  let bytes: Uint8Array;
  let split = false;
  const m = rng.float();
  if (m < 0.4) bytes = base;
  else if (m < 0.5) bytes = concatBytes([rng.bytes(rng.range(1, 24)), base]);
  else if (m < 0.53) bytes = encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  else if (m < 0.55) {
    bytes = concatBytes([
      new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
      rng.bytes(64),
    ]);
  } else if (m < 0.65) {
    bytes = base.slice();
    flipBits(rng, bytes, 0, bytes.length, rng.range(1, 3));
  } else if (m < 0.68) bytes = concatBytes([frameHeader(2n ** 64n - 1n), keyword]);
  else if (m < 0.71) bytes = concatBytes([frameHeader(maxKw + 1), keyword]);
  else if (m < 0.73) bytes = concatBytes([frameHeader(2n ** 32n), keyword]);
  else if (m < 0.85) bytes = base.subarray(0, rng.int(base.length));
  else if (m < 0.88) bytes = concatBytes([frameHeader(0), keyword]);
  else {
    bytes = base;
    split = true;
  }
  const w = new PlanWriter(maxKw);
  if (split) {
    const byteByByte = rng.chance(0.5);
    for (let at = 0; at < bytes.length;) {
      const n = byteByByte ? 1 : rng.range(1, Math.max(1, bytes.length - at));
      w.raw(bytes.subarray(at, at + n));
      w.yield();
      at += n;
    }
  } else if (bytes.length > 0) w.raw(bytes);

  // The oracle: what does the first frame (decoded with maxKeywordBytes) announce?
  const ref = new RefDecoder(maxKw, true);
  ref.push(bytes);
  let finalAnswers: string[];
  let ending: FuzzPlan["ending"];
  let label: string;
  if (ref.messages === 0 && ref.fatal) {
    finalAnswers = [NO_ANSWER];
    ending = "fatal";
    label = "first frame declares more than maxKeywordBytes";
  } else if (ref.messages === 0) {
    finalAnswers = [NO_ANSWER];
    ending = rng.chance(0.06) ? "stall" : rng.chance(0.6) ? "half-close" : "close";
    label = `incomplete first frame (${bytes.length} bytes)`;
  } else {
    const announced = ref.first!;
    const name = text(announced);
    const rest = bytes.subarray(ref.firstEnd);
    label = `keyword ${JSON.stringify(name.slice(0, 24))}${rest.length ? ` + ${rest.length} bytes` : ""}`;
    ending = rng.chance(0.6) ? "half-close" : "close";
    if (name === "control") {
      finalAnswers = ["duplicate keyword"];
    } else if (name === SECRET_KEYWORD && rest.length === 0) {
      // Challenge, then a wrong, oversized or truncated proof.
      w.expect(CHALLENGE);
      const p = rng.float();
      let proof: Uint8Array;
      if (p < 0.5) proof = encodeFrame(rng.bytes(32));
      else if (p < 0.6) proof = encodeFrame(new Uint8Array(0));
      else if (p < 0.7) proof = concatBytes([frameHeader(maxKw + 1), rng.bytes(8)]);
      else if (p < 0.8) proof = encodeFrame(rng.bytes(32)).subarray(0, rng.range(1, 39));
      else proof = encodeFrame(rng.bytes(rng.range(1, maxKw)));
      w.raw(proof);
      const proofRef = new RefDecoder(maxKw);
      proofRef.push(proof);
      if (proofRef.messages > 0) {
        // A half-close right behind the proof may close before the (asynchronous) check answers.
        finalAnswers = ending === "half-close"
          ? ["authentication failed", NO_ANSWER]
          : ["authentication failed"];
      } else {
        finalAnswers = [NO_ANSWER];
        if (proofRef.fatal) ending = "fatal";
      }
      label += ", wrong proof";
    } else if (name === SECRET_KEYWORD) {
      finalAnswers = [CHALLENGE, NO_ANSWER];
    } else {
      // Named, raw named or held: OK, or a duplicate of a concurrent connection. A tail that is fatal
      // under maxMessageBytes may close the connection before OK leaves.
      // A raw client's tail is raw bytes, never fatal.
      const rawClient = name.startsWith("hsr-");
      const tail = new RefDecoder(limits.maxMessageBytes);
      if (!rawClient) tail.push(rest);
      finalAnswers = tail.fatal ? ["OK", "duplicate keyword", NO_ANSWER] : ["OK", "duplicate keyword"];
      if (!tail.fatal && rng.chance(0.5)) {
        // Wait for the answer, then a few more (mutated) frames to the admitted connection.
        w.expect("OK", "duplicate keyword");
        finalAnswers = [NO_ANSWER];
        const more = rng.int(8);
        const after = new PlanWriter(limits.maxMessageBytes);
        for (let i = 0; i < more; i++) fuzzFrameCase(rng, limits, after);
        for (const step of after.steps) w.steps.push(step);
        w.bytes += after.bytes;
        if (after.ref.fatal && !rawClient) ending = "fatal";
      }
    }
  }
  return {
    index,
    kind: "handshake",
    target: fuzzTarget(rng),
    pipelined: true,
    steps: w.steps,
    ending,
    finalAnswers,
    expect: { messages: 0, hash: FNV_OFFSET, rawBytes: 0, rawHash: FNV_OFFSET, fatal: false },
    frameCases: 0,
    rawCases: 0,
    handshakeCases: 1,
    proxyCases: 0,
    bytes: w.bytes,
    label: `handshake: ${label}, ending ${ending}`,
  };
}

/**
 * Cuts `bytes` into writes with yields between: whole, at random points, in small pieces, or byte by
 * byte over a stretch of the first `fine` bytes (the header and keyword). The cuts in that part stay
 * few, so it arrives well within the core's handshake timeout even on a loaded machine.
 */
function splitWrites(rng: Rng, w: PlanWriter, bytes: Uint8Array, fine: number): void {
  const r = rng.float();
  const cuts = new Set<number>();
  const end = Math.min(fine, bytes.length);
  if (r < 0.35) {
    const pieces = rng.range(1, 6);
    for (let i = 0; i < pieces && bytes.length > 1; i++) cuts.add(rng.range(1, bytes.length - 1));
  } else if (r < 0.6) {
    // Byte by byte over up to 40 bytes, often across the end of the header.
    const from = rng.chance(0.5) ? rng.int(end) : Math.max(0, end - rng.range(1, 40));
    for (let at = Math.max(1, from); at < Math.min(end, from + 40); at++) cuts.add(at);
  } else if (r < 0.8) {
    const step = Math.max(2, Math.ceil(end / 24));
    for (let at = rng.range(1, step); at < end; at += rng.range(1, step)) cuts.add(at);
  }
  if (cuts.size > 0 && fine < bytes.length && rng.chance(0.5)) cuts.add(rng.range(fine, bytes.length - 1));
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    if (cut <= at || cut >= bytes.length) continue;
    w.raw(bytes.subarray(at, cut));
    w.yield();
    at = cut;
  }
  if (at < bytes.length) w.raw(bytes.subarray(at));
}

function proxyPlan(rng: Rng, index: number, limits: FuzzLimits): FuzzPlan {
  const header = proxyHeaderCase(rng);
  const keyword = `px-${index}`;
  const keywordFrame = encodeFrame(encoder.encode(keyword));
  const frames: Uint8Array[] = [];
  const count = rng.int(7);
  for (let i = 0; i < count; i++) frames.push(fuzzPayload(rng, Math.min(1024, limits.maxMessageBytes)));
  const ref = new RefDecoder(limits.maxMessageBytes);
  const body = frames.length ? encodeFrames(frames) : new Uint8Array(0);
  ref.push(body);
  const w = new PlanWriter(limits.maxMessageBytes);
  const truncated = header.outcome === "truncated";
  // A cut header is followed by nothing: whatever came next would be read as the rest of the header.
  const stream = truncated ? header.bytes : concatBytes([header.bytes, keywordFrame, body]);
  splitWrites(rng, w, stream, header.bytes.length + keywordFrame.length);
  const admitted = header.outcome === "ok" || header.outcome === "either";
  const ending: FuzzPlan["ending"] = truncated && rng.chance(0.05)
    ? "stall"
    : rng.chance(0.7)
    ? "half-close"
    : "close";
  const finalAnswers = header.outcome === "ok"
    ? ["OK"]
    : header.outcome === "either"
    ? ["OK", NO_ANSWER]
    : [NO_ANSWER];
  return {
    index,
    kind: "proxy",
    target: "proxy",
    pipelined: true,
    steps: w.steps,
    ending,
    finalAnswers,
    expect: {
      messages: admitted ? ref.messages : 0,
      hash: admitted ? ref.hash : FNV_OFFSET,
      rawBytes: 0,
      rawHash: FNV_OFFSET,
      fatal: false,
    },
    frameCases: admitted ? frames.length : 0,
    rawCases: 0,
    handshakeCases: 0,
    proxyCases: 1,
    proxy: {
      keyword,
      source: admitted ? header.source : undefined,
      truncated,
      handshakeBytes: truncated ? header.bytes.length : header.bytes.length + keywordFrame.length,
    },
    bytes: w.bytes,
    label: `PROXY ${header.label}, expecting ${finalAnswers.join(" or ")}, ${
      truncated ? "nothing after it" : `${frames.length} frames`
    }, ending ${ending}`,
  };
}

/** The share of connections that carry a PROXY header to the PROXY listener. */
export const PROXY_PLAN_SHARE = 0.07;

/**
 * Builds fuzz connection `index` of the run seeded with `seed`: the same arguments always give the
 * same plan, on every runtime.
 *
 * @example
 * ```ts
 * const plan = fuzzPlan(1, 1234);
 * console.log(plan.label, plan.frameCases);
 * ```
 */
export function fuzzPlan(seed: number, index: number, limits: FuzzLimits = DEFAULT_FUZZ_LIMITS): FuzzPlan {
  const rng = new Rng(seed, index);
  const p = rng.float();
  if (p < PROXY_PLAN_SHARE) return proxyPlan(rng, index, limits);
  // The other kinds keep their proportions in the rest.
  const r = (p - PROXY_PLAN_SHARE) / (1 - PROXY_PLAN_SHARE);
  if (r < 0.72) return streamPlan(rng, index, limits, false);
  if (r < 0.8) return streamPlan(rng, index, limits, true);
  if (r < 0.84) return unknownPlan(rng, index, limits);
  return handshakePlan(rng, index, limits);
}

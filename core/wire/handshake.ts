/**
 * The keyword handshake as two state machines with no I/O: bytes go in, a decision comes out, and
 * the session acts on it (writes the reply, binds the client, closes). The wire protocol is the
 * Python FI-ASockIOCore's: the connecting side's first frame is its keyword; the accepting side
 * answers `OK`, a shared-secret challenge, or a short reason before it closes.
 *
 * @example The accepting side, fed one byte at a time
 * ```ts
 * import { ServerHandshake } from "./handshake.ts";
 * import { encodeFrame } from "./codec.ts";
 * const handshake = new ServerHandshake({ maxKeywordBytes: 1024, policy: () => ({ kind: "admit" }) });
 * let decision = handshake.step();
 * for (const byte of encodeFrame(new TextEncoder().encode("worker"))) {
 *   handshake.push(new Uint8Array([byte]));
 *   decision = handshake.step();
 * }
 * console.log(decision.kind); // "admit"
 * ```
 *
 * @module
 */
import { AUTH_PROOF_BYTES, challengeNonce, makeChallenge } from "./auth.ts";
import { bytesEqual } from "./bytes.ts";
import { FrameDecoder } from "./codec.ts";
import {
  ConnectionClosedError,
  HandshakeRejectedError,
  MessageTooLargeError,
  ProtocolError,
} from "../errors.ts";

/** The accepting side's answer that admits a keyword: `"OK"`. */
export const KEYWORD_ACCEPTED: Uint8Array = new Uint8Array([0x4f, 0x4b]);

/** What the accepting side's policy says of an announced keyword. */
export type KeywordVerdict =
  /** A registered client: answer `OK` and bind it. */
  | { readonly kind: "admit" }
  /** Nobody registered it: answer `OK` and hold the connection until somebody does. */
  | { readonly kind: "hold" }
  /** Registered with a secret, and not proven yet: send a challenge. */
  | { readonly kind: "challenge" }
  /** Refused: send the reason and close. */
  | { readonly kind: "refuse"; readonly reason: string };

/**
 * Decides on a keyword. `authenticated` is true when it is asked again after the peer proved the
 * secret (the client may have been removed, or connected elsewhere, meanwhile).
 */
export type KeywordPolicy = (keyword: Uint8Array, authenticated: boolean) => KeywordVerdict;

/** A handshake's decision after some input (or after an asynchronous step finished). */
export type HandshakeDecision =
  /** More bytes are needed, or an asynchronous step is running. */
  | { readonly kind: "pending" }
  /** Admitted: write `reply` (accepting side), then the connection is open. */
  | { readonly kind: "admit"; readonly keyword: Uint8Array; readonly reply?: Uint8Array }
  /** Accepting side: write `reply` and hold the connection for an unregistered keyword. */
  | { readonly kind: "hold"; readonly keyword: Uint8Array; readonly reply: Uint8Array }
  /** Accepting side: write the challenge `reply`, then wait for the proof. */
  | { readonly kind: "challenge"; readonly keyword: Uint8Array; readonly reply: Uint8Array }
  /** Accepting side: check `proof` against the secret, then call `verified`. */
  | {
    readonly kind: "verify";
    readonly keyword: Uint8Array;
    readonly nonce: Uint8Array;
    readonly proof: Uint8Array;
  }
  /** Connecting side: write the proof for `nonce`, then call `proved`. */
  | { readonly kind: "prove"; readonly nonce: Uint8Array }
  /** Accepting side: write `reply` (the reason) and close once written. */
  | { readonly kind: "refuse"; readonly reason: string; readonly reply: Uint8Array }
  /** Close now with `error`. */
  | { readonly kind: "fail"; readonly error: Error };

/** The phases both machines go through; `done` once they have decided for good. */
export const HandshakePhase = {
  awaitKeyword: 0,
  awaitProof: 1,
  verifying: 2,
  awaitAnswer: 3,
  proving: 4,
  done: 5,
} as const;
/** One of {@linkcode HandshakePhase}'s values. */
export type HandshakePhase = typeof HandshakePhase[keyof typeof HandshakePhase];

const PENDING: HandshakeDecision = Object.freeze({ kind: "pending" });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options for {@linkcode ServerHandshake}. */
export interface ServerHandshakeOptions {
  /** The longest keyword accepted. */
  maxKeywordBytes: number;
  /** Decides on the announced keyword. */
  policy: KeywordPolicy;
  /**
   * Names the peer in error messages.
   * @default {"the peer"}
   */
  peer?: string;
}

/** Shared by both sides: the frame decoder that holds the handshake's bytes. */
abstract class FramedHandshake {
  phase: HandshakePhase;
  readonly #decoder: FrameDecoder;
  readonly #maxFrame: number;
  readonly #peer: string;

  constructor(phase: HandshakePhase, maxFrame: number, peer: string | undefined) {
    this.phase = phase;
    this.#maxFrame = maxFrame;
    this.#decoder = new FrameDecoder({ maxMessageBytes: maxFrame });
    this.#peer = peer ?? "the peer";
  }

  /** Buffers bytes received; {@linkcode step} decodes them. */
  push(chunk: Uint8Array): void {
    this.#decoder.push(chunk);
  }

  /** Bytes received and not yet consumed by the handshake. */
  get bufferedBytes(): number {
    return this.#decoder.bufferedBytes;
  }

  /** The bytes received after the handshake's last frame: the start of the open connection. */
  takeRest(): Uint8Array {
    return this.#decoder.takeBuffered();
  }

  /** The next whole frame, `undefined`, or a `fail` decision for an oversized one. */
  protected nextFrame(): Uint8Array | HandshakeDecision | undefined {
    try {
      return this.#decoder.next();
    } catch (err) {
      this.phase = HandshakePhase.done;
      if (!(err instanceof MessageTooLargeError)) throw err;
      return {
        kind: "fail",
        error: new ProtocolError(
          `Cannot complete handshake with ${this.#peer}: first frame declares ${err.declaredLength} bytes, more than the ${this.#maxFrame} allowed`,
          { cause: err },
        ),
      };
    }
  }
}

/**
 * The accepting side: reads the keyword, asks the policy, and runs the shared-secret exchange.
 */
export class ServerHandshake extends FramedHandshake {
  readonly #policy: KeywordPolicy;
  #keyword: Uint8Array | undefined = undefined;
  #nonce: Uint8Array | undefined = undefined;

  /** Starts waiting for the keyword frame. */
  constructor(options: ServerHandshakeOptions) {
    super(HandshakePhase.awaitKeyword, options.maxKeywordBytes, options.peer);
    this.#policy = options.policy;
  }

  /** Decodes what has been pushed and decides, or says `pending`. */
  step(): HandshakeDecision {
    if (this.phase !== HandshakePhase.awaitKeyword && this.phase !== HandshakePhase.awaitProof) {
      return PENDING;
    }
    const frame = this.nextFrame();
    if (frame === undefined) return PENDING;
    if (!(frame instanceof Uint8Array)) return frame;
    if (this.phase === HandshakePhase.awaitKeyword) {
      this.#keyword = frame.slice();
      return this.#decide(false);
    }
    if (frame.length !== AUTH_PROOF_BYTES) return this.#refuse("authentication failed");
    this.phase = HandshakePhase.verifying;
    return { kind: "verify", keyword: this.#keyword!, nonce: this.#nonce!, proof: frame.slice() };
  }

  /** The result of checking the proof a `verify` decision asked for. */
  verified(ok: boolean): HandshakeDecision {
    if (this.phase !== HandshakePhase.verifying) return PENDING;
    return ok ? this.#decide(true) : this.#refuse("authentication failed");
  }

  #decide(authenticated: boolean): HandshakeDecision {
    const keyword = this.#keyword!;
    const verdict = this.#policy(keyword, authenticated);
    switch (verdict.kind) {
      case "admit":
        this.phase = HandshakePhase.done;
        return { kind: "admit", keyword, reply: KEYWORD_ACCEPTED };
      case "hold":
        this.phase = HandshakePhase.done;
        return { kind: "hold", keyword, reply: KEYWORD_ACCEPTED };
      case "challenge": {
        const { challenge, nonce } = makeChallenge();
        this.#nonce = nonce;
        this.phase = HandshakePhase.awaitProof;
        return { kind: "challenge", keyword, reply: challenge };
      }
      default:
        return this.#refuse(verdict.reason);
    }
  }

  #refuse(reason: string): HandshakeDecision {
    this.phase = HandshakePhase.done;
    return { kind: "refuse", reason, reply: encoder.encode(reason) };
  }
}

/** Options for {@linkcode ClientHandshake}. */
export interface ClientHandshakeOptions {
  /** The keyword this side announces. */
  keyword: Uint8Array;
  /** Whether this side has a secret to answer a challenge with. */
  hasSecret: boolean;
  /** The longest answer accepted from the server. */
  maxAnswerBytes: number;
  /**
   * Names the server in error messages.
   * @default {"the peer"}
   */
  peer?: string;
}

/**
 * The connecting side: announces the keyword, then reads `OK`, a challenge, or the refusal.
 *
 * @example
 * ```ts
 * import { ClientHandshake } from "./handshake.ts";
 * import { encodeFrame } from "./codec.ts";
 * const keyword = new TextEncoder().encode("worker");
 * const handshake = new ClientHandshake({ keyword, hasSecret: false, maxAnswerBytes: 1024 });
 * handshake.push(encodeFrame(new TextEncoder().encode("OK")));
 * console.log(handshake.step().kind); // "admit"
 * ```
 */
export class ClientHandshake extends FramedHandshake {
  /** The keyword, to be written as the connection's first frame. */
  readonly hello: Uint8Array;
  readonly #hasSecret: boolean;

  /** Starts waiting for the server's answer to {@linkcode hello}. */
  constructor(options: ClientHandshakeOptions) {
    super(HandshakePhase.awaitAnswer, options.maxAnswerBytes, options.peer);
    this.hello = options.keyword;
    this.#hasSecret = options.hasSecret;
  }

  /** Decodes what has been pushed and decides, or says `pending`. */
  step(): HandshakeDecision {
    if (this.phase !== HandshakePhase.awaitAnswer) return PENDING;
    const answer = this.nextFrame();
    if (answer === undefined) return PENDING;
    if (!(answer instanceof Uint8Array)) return answer;
    if (bytesEqual(answer, KEYWORD_ACCEPTED)) {
      this.phase = HandshakePhase.done;
      return { kind: "admit", keyword: this.hello };
    }
    const nonce = challengeNonce(answer);
    if (nonce && this.#hasSecret) {
      this.phase = HandshakePhase.proving;
      return { kind: "prove", nonce: nonce.slice() };
    }
    this.phase = HandshakePhase.done;
    const reason = nonce
      ? "server requires authentication, and no secret is set for this client"
      : decoder.decode(answer);
    return { kind: "fail", error: new HandshakeRejectedError(reason) };
  }

  /** The proof a `prove` decision asked for has been written: wait for the server's answer. */
  proved(): void {
    if (this.phase === HandshakePhase.proving) this.phase = HandshakePhase.awaitAnswer;
  }

  /** The connection closed before the server answered: the error to report. */
  closedEarly(): Error {
    return new HandshakeRejectedError("", { cause: new ConnectionClosedError("Connection closed") });
  }
}

/**
 * {@linkcode HandshakeDriver}: drives a session before it opens: the PROXY header behind a trusted
 * balancer, then the keyword handshake, acting on each decision (reply, admit, hold, challenge,
 * verify, prove, refuse, fail). Split from `Session`, which calls {@linkcode HandshakeDriver.step}
 * from its decode loop until the session is open.
 *
 * @module
 */
import { AsockioError } from "../errors.ts";
import type { ClientHandshake, HandshakeDecision, ServerHandshake } from "../wire/handshake.ts";
import type { Session, SessionHost } from "./session.ts";
import { Phase } from "./session_phase.ts";

/**
 * The handshake side of one session.
 *
 * @example
 * ```ts
 * import { HandshakeDriver } from "./session_handshake.ts";
 * // Session creates one: new HandshakeDriver(session, host); its decode loop calls step().
 * ```
 */
export class HandshakeDriver {
  readonly #session: Session;
  readonly #host: SessionHost;
  /** An asynchronous handshake step (HMAC) is running: input waits in the handshake's buffer. */
  busy = false;

  /** The driver of `session`, whose core is `host`. */
  constructor(session: Session, host: SessionHost) {
    this.#session = session;
    this.#host = host;
  }

  /** One step of the PROXY header or the handshake; returns true when decoding should go on. */
  step(): boolean {
    const session = this.#session;
    if (session.phase === Phase.proxyHeader) return this.#readProxyHeader();
    const handshake = session.handshake!;
    const before = handshake.bufferedBytes;
    const decision = handshake.step();
    this.#host.budget.released(before - handshake.bufferedBytes);
    return this.#act(decision);
  }

  /**
   * Reads the PROXY header; once it is in, the session goes on as the scheduler decides, with the
   * bytes after the header. Returns true when decoding should go on.
   */
  #readProxyHeader(): boolean {
    const session = this.#session;
    const budget = this.#host.budget;
    const reader = session.proxyReader!;
    const before = reader.bufferedBytes;
    const decision = reader.step();
    budget.released(before - reader.bufferedBytes); // the header's own bytes
    if (decision.kind === "pending") return false;
    if (decision.kind === "fail") {
      session.fail(decision.error);
      return false;
    }
    const { header } = decision;
    session.proxyReader = undefined;
    session.proxyAddr = session.conn.remoteAddr;
    if (header.command === "proxy" && header.source) {
      const transport = session.listener!.addr.transport === "tls" ? "tls" : "tcp";
      session.proxiedRemote = { transport, hostname: header.source.hostname, port: header.source.port };
    }
    const rest = reader.takeRest();
    this.#host.proxied(session);
    if (session.phase === Phase.accepting) session.handshake!.push(rest);
    else if (session.phase === Phase.open) session.decoder!.push(rest);
    else {
      budget.released(rest.length);
      return false;
    }
    return true;
  }

  /** Acts on a handshake decision; returns true when decoding should go on. */
  #act(decision: HandshakeDecision): boolean {
    const session = this.#session;
    const host = this.#host;
    switch (decision.kind) {
      case "pending":
        return false;
      case "admit":
        if (decision.reply) {
          session.queueOutput(decision.reply, true);
          host.admitNamed(session, decision.keyword);
        } else host.bind(session, session.client!);
        return true;
      case "hold":
        session.queueOutput(decision.reply, true);
        host.hold(session, decision.keyword);
        return true;
      case "challenge":
        session.queueOutput(decision.reply, true);
        return true;
      case "verify":
        this.#runAsync(
          host.verifyProof(decision.keyword, decision.nonce, decision.proof),
          (ok) => this.#act((session.handshake as ServerHandshake).verified(ok)),
          "Cannot verify the client's secret",
        );
        return false;
      case "prove":
        this.#runAsync(host.proofFor(session.client!, decision.nonce), (proof) => {
          session.queueOutput(proof, true);
          (session.handshake as ClientHandshake).proved();
          return true;
        }, "Cannot answer the server's challenge");
        return false;
      case "refuse":
        session.refuse(decision.reason, decision.reply);
        return false;
      case "fail":
        session.fail(decision.error);
        return false;
    }
  }

  /** Runs an asynchronous handshake step; input waits until it is done, then decoding goes on. */
  #runAsync<T>(step: Promise<T>, then: (value: T) => boolean, failure: string): void {
    const session = this.#session;
    const phase = session.phase;
    this.busy = true;
    step.then(
      (value) => {
        this.busy = false;
        if (session.phase !== phase) return;
        session.guarded(() => {
          if (then(value)) session.decodeNow();
        });
      },
      (err: unknown) => {
        this.busy = false;
        session.fail(new AsockioError(failure, { cause: err }));
      },
    );
  }
}

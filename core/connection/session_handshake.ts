/**
 * {@linkcode HandshakeDriver}: drives a session before it opens: the PROXY header behind a trusted
 * balancer, then the keyword handshake, acting on each decision (reply, admit, hold, challenge,
 * verify, prove, refuse, fail). It owns the handshake's state and buffered bytes. Split from
 * `Session`, which pushes input into it and calls {@linkcode HandshakeDriver.step} from its decode
 * loop until the session is open.
 *
 * @module
 */
import type { Addr } from "../../transports/types.ts";
import type { ClientRecord } from "../clients/client_registry.ts";
import { AsockioError, TimeoutError } from "../errors.ts";
import { ClientHandshake, type HandshakeDecision, ServerHandshake } from "../wire/handshake.ts";
import { describeAddr } from "../wire/ip.ts";
import { ProxyHeaderReader } from "../wire/proxy_protocol.ts";
import type { Session } from "./session.ts";
import type { SessionHost } from "./session_host.ts";
import { type Deadline, Phase } from "./session_phase.ts";

const encoder = new TextEncoder();

/**
 * The handshake side of one session.
 */
export class HandshakeDriver {
  readonly #session: Session;
  readonly #host: SessionHost;
  readonly #deadline: Deadline;
  /** An asynchronous handshake step (HMAC) is running: input waits in the handshake's buffer. */
  busy = false;
  #handshake: ServerHandshake | ClientHandshake | undefined = undefined;
  /** Behind a trusted balancer: the PROXY header reader, until the header is read. */
  #proxyReader: ProxyHeaderReader | undefined = undefined;
  #proxyAddr: Addr | undefined = undefined;
  #proxiedRemote: Addr | undefined = undefined;

  /** The driver of `session`, whose core is `host`; the handshake's time runs on `deadline`, the session's. */
  constructor(session: Session, host: SessionHost, deadline: Deadline) {
    this.#session = session;
    this.#host = host;
    this.#deadline = deadline;
  }

  /** Fails the session if the PROXY header and the keyword handshake are not done within `ms`. */
  startTimer(ms: number): void {
    const session = this.#session;
    this.#deadline.set(ms, () => {
      if (session.phase !== Phase.accepting && session.phase !== Phase.proxyHeader) return;
      const peer = describeAddr(session.remoteAddr);
      session.fail(new TimeoutError(`Cannot complete handshake with ${peer}: not done within ${ms} ms`));
    });
  }

  /** Behind a trusted balancer: the balancer's address (the connection's own peer). */
  get proxyAddr(): Addr | undefined {
    return this.#proxyAddr;
  }

  /** The original client's address from the PROXY header, when there is one. */
  get proxiedRemote(): Addr | undefined {
    return this.#proxiedRemote;
  }

  /** Bytes buffered and not yet decided on. */
  get bufferedBytes(): number {
    return (this.#handshake?.bufferedBytes ?? 0) + (this.#proxyReader?.bufferedBytes ?? 0);
  }

  /** Accepting side, behind a trusted balancer: the PROXY header comes first. */
  expectProxyHeader(): void {
    this.#proxyReader = new ProxyHeaderReader();
  }

  /** Starts the accepting side's keyword handshake. */
  beginServer(): void {
    const host = this.#host;
    const session = this.#session;
    this.#handshake = new ServerHandshake({
      maxKeywordBytes: host.limits.maxKeywordBytes,
      policy: (keyword, authenticated) => host.keywordVerdict(session, keyword, authenticated),
      peer: describeAddr(session.remoteAddr),
    });
  }

  /** Starts an outgoing client's handshake; its keyword is sent by the caller. */
  beginClient(record: ClientRecord): void {
    this.#handshake = new ClientHandshake({
      keyword: record.keyword,
      hasSecret: record.secretKey !== undefined,
      maxAnswerBytes: this.#host.limits.maxKeywordBytes,
      peer: describeAddr(this.#session.conn.remoteAddr),
    });
  }

  /** Input arrived before the session opened. */
  push(chunk: Uint8Array): void {
    (this.#handshake ?? this.#proxyReader!).push(chunk);
  }

  /** The session opens: forgets the handshake, and returns the bytes after it (the first messages). */
  finish(): Uint8Array | undefined {
    const rest = this.#handshake?.takeRest();
    this.#handshake = undefined;
    return rest;
  }

  /** Drops what is buffered; returns its length. */
  discard(): number {
    return (this.#handshake?.takeRest().length ?? 0) + (this.#proxyReader?.takeRest().length ?? 0);
  }

  /** Why an outgoing connection that closed during its handshake failed. */
  closedEarly(): Error {
    return (this.#handshake as ClientHandshake).closedEarly();
  }

  /** One step of the PROXY header or the handshake; returns true when decoding should go on. */
  step(): boolean {
    const session = this.#session;
    if (session.phase === Phase.proxyHeader) return this.#readProxyHeader();
    const handshake = this.#handshake!;
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
    const reader = this.#proxyReader!;
    const before = reader.bufferedBytes;
    const decision = reader.step();
    budget.released(before - reader.bufferedBytes); // the header's own bytes
    if (decision.kind === "pending") return false;
    if (decision.kind === "fail") {
      session.fail(decision.error);
      return false;
    }
    const { header } = decision;
    this.#proxyReader = undefined;
    this.#proxyAddr = session.conn.remoteAddr;
    if (header.command === "proxy" && header.source) {
      const transport = session.listener!.addr.transport === "tls" ? "tls" : "tcp";
      this.#proxiedRemote = { transport, hostname: header.source.hostname, port: header.source.port };
    }
    const rest = reader.takeRest();
    this.#host.proxied(session);
    if (session.phase === Phase.accepting) this.#handshake!.push(rest);
    else if (session.phase === Phase.open) session.pushUndecoded(rest);
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
      case "admit": {
        if (!decision.reply) {
          host.bind(session, session.client!);
          return true;
        }
        const { keyword, reply } = decision;
        // A connection for this keyword is waiting for the cluster's answer: this one is a duplicate.
        if (host.router.admitting(keyword)) {
          session.refuse("duplicate keyword", encoder.encode("duplicate keyword"));
          return false;
        }
        const asked = host.router.admit(keyword);
        if (!asked) return this.#admitNamed(keyword, reply);
        this.#runAsync(
          asked,
          (refusal) => {
            host.router.admitted(keyword, false);
            if (!refusal) return this.#admitNamed(keyword, reply);
            session.refuse(
              `${refusal.reason} (node ${refusal.node} holds it)`,
              encoder.encode(refusal.reason),
            );
            return false;
          },
          "Cannot ask the cluster about the keyword",
          () => host.router.admitted(keyword, true),
        );
        return false;
      }
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
          (ok) => this.#act((this.#handshake as ServerHandshake).verified(ok)),
          "Cannot verify the client's secret",
        );
        return false;
      case "prove":
        this.#runAsync(host.proofFor(session.client!, decision.nonce), (proof) => {
          session.queueOutput(proof, true);
          (this.#handshake as ClientHandshake).proved();
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

  /** Sends `OK` and binds the session to the keyword's client. */
  #admitNamed(keyword: Uint8Array, reply: Uint8Array): boolean {
    this.#session.queueOutput(reply, true);
    this.#host.admitNamed(this.#session, keyword);
    return true;
  }

  /**
   * Runs an asynchronous handshake step; input waits until it is done, then decoding goes on.
   * `abandoned` runs instead of `then` when the session moved on (closed) meanwhile, or the step failed.
   */
  #runAsync<T>(
    step: Promise<T>,
    then: (value: T) => boolean,
    failure: string,
    abandoned?: () => void,
  ): void {
    const session = this.#session;
    const phase = session.phase;
    this.busy = true;
    step.then(
      (value) => {
        this.busy = false;
        if (session.phase !== phase) return abandoned?.();
        session.guarded(() => {
          if (then(value)) session.decodeNow();
        });
      },
      (err: unknown) => {
        this.busy = false;
        abandoned?.();
        session.fail(new AsockioError(failure, { cause: err }));
      },
    );
  }
}

/**
 * The keyword handshake as a pure state machine: bytes in, decisions out, no sockets.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AUTH_CHALLENGE_PREFIX,
  AUTH_NONCE_BYTES,
  AUTH_PROOF_BYTES,
  challengeNonce,
} from "../core/wire/auth.ts";
import { encodeFrame } from "../core/wire/codec.ts";
import { HandshakeRejectedError, ProtocolError } from "../core/errors.ts";
import {
  ClientHandshake,
  type HandshakeDecision,
  HandshakePhase,
  KEYWORD_ACCEPTED,
  type KeywordPolicy,
  type KeywordVerdict,
  ServerHandshake,
} from "../core/wire/handshake.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Feeds `bytes` one at a time, stepping after each; returns every non-pending decision. */
function feedByteByByte(
  handshake: { push(chunk: Uint8Array): void; step(): HandshakeDecision },
  bytes: Uint8Array,
): HandshakeDecision[] {
  const decisions: HandshakeDecision[] = [];
  for (const byte of bytes) {
    handshake.push(new Uint8Array([byte]));
    for (let d = handshake.step(); d.kind !== "pending"; d = handshake.step()) decisions.push(d);
  }
  return decisions;
}

function server(verdict: KeywordVerdict | KeywordPolicy, maxKeywordBytes = 64): ServerHandshake {
  const policy: KeywordPolicy = typeof verdict === "function" ? verdict : () => verdict;
  return new ServerHandshake({ maxKeywordBytes, policy, peer: "tcp:127.0.0.1:1" });
}

describe("ServerHandshake", () => {
  it("admits a keyword split into single bytes, deciding only once the whole frame is in", () => {
    const seen: string[] = [];
    const handshake = server((keyword) => {
      seen.push(text(keyword));
      return { kind: "admit" };
    });
    const decisions = feedByteByByte(handshake, encodeFrame(utf8("worker-7")));
    assert.equal(decisions.length, 1);
    const [decision] = decisions;
    assert.equal(decision!.kind, "admit");
    if (decision!.kind !== "admit") return;
    assert.equal(text(decision.keyword), "worker-7");
    assert.deepEqual(decision.reply, KEYWORD_ACCEPTED);
    assert.deepEqual(seen, ["worker-7"]);
    assert.equal(handshake.phase, HandshakePhase.done);
  });

  it("keeps the bytes after the keyword frame for the open connection", () => {
    const handshake = server({ kind: "admit" });
    const first = encodeFrame(utf8("a"));
    const after = encodeFrame(utf8("first message"));
    const both = new Uint8Array(first.length + after.length);
    both.set(first);
    both.set(after, first.length);
    handshake.push(both);
    assert.equal(handshake.step().kind, "admit");
    assert.deepEqual(handshake.takeRest(), after);
    assert.equal(handshake.bufferedBytes, 0);
  });

  it("holds an unregistered keyword with OK", () => {
    const handshake = server({ kind: "hold" });
    handshake.push(encodeFrame(utf8("later")));
    const decision = handshake.step();
    assert.equal(decision.kind, "hold");
    if (decision.kind === "hold") assert.deepEqual(decision.reply, KEYWORD_ACCEPTED);
  });

  for (
    const reason of [
      "access denied",
      "duplicate keyword",
      "unexpected keyword",
      "keyword is not accepted here",
    ]
  ) {
    it(`refuses with the reason "${reason}" as the reply`, () => {
      const handshake = server({ kind: "refuse", reason });
      handshake.push(encodeFrame(utf8("x")));
      const decision = handshake.step();
      assert.equal(decision.kind, "refuse");
      if (decision.kind !== "refuse") return;
      assert.equal(decision.reason, reason);
      assert.equal(text(decision.reply), reason);
      assert.equal(handshake.phase, HandshakePhase.done);
      assert.equal(handshake.step().kind, "pending", "a refused handshake decides nothing more");
    });
  }

  it("fails with a ProtocolError when the first frame declares more than maxKeywordBytes", () => {
    const handshake = server({ kind: "admit" }, 8);
    const header = encodeFrame(new Uint8Array(9)).subarray(0, 8);
    const decisions = feedByteByByte(handshake, header);
    assert.equal(decisions.length, 1);
    const [decision] = decisions;
    assert.equal(decision!.kind, "fail");
    if (decision!.kind !== "fail") return;
    assert.ok(decision.error instanceof ProtocolError);
    assert.match(
      decision.error.message,
      /tcp:127\.0\.0\.1:1: first frame declares 9 bytes, more than the 8 allowed/,
    );
  });

  it("challenges a keyword with a secret, asks to verify the proof, and admits after the policy agrees again", () => {
    const asked: boolean[] = [];
    const handshake = server((_keyword, authenticated) => {
      asked.push(authenticated);
      return authenticated ? { kind: "admit" } : { kind: "challenge" };
    });
    const [challenge] = feedByteByByte(handshake, encodeFrame(utf8("secret-client")));
    assert.equal(challenge!.kind, "challenge");
    if (challenge!.kind !== "challenge") return;
    assert.equal(challenge.reply.length, AUTH_CHALLENGE_PREFIX.length + AUTH_NONCE_BYTES);
    const nonce = challengeNonce(challenge.reply);
    assert.ok(nonce, "the reply is a challenge frame");
    const proof = new Uint8Array(AUTH_PROOF_BYTES).fill(7);
    const [verify] = feedByteByByte(handshake, encodeFrame(proof));
    assert.equal(verify!.kind, "verify");
    if (verify!.kind !== "verify") return;
    assert.deepEqual(verify.nonce, nonce);
    assert.deepEqual(verify.proof, proof);
    assert.equal(text(verify.keyword), "secret-client");
    handshake.push(encodeFrame(utf8("early message")));
    assert.equal(handshake.step().kind, "pending", "input waits while the proof is checked");
    const admitted = handshake.verified(true);
    assert.equal(admitted.kind, "admit");
    assert.deepEqual(asked, [false, true]);
    assert.deepEqual(handshake.takeRest(), encodeFrame(utf8("early message")));
  });

  it('refuses a wrong proof with "authentication failed"', () => {
    const handshake = server((_k, authenticated) =>
      authenticated ? { kind: "admit" } : { kind: "challenge" }
    );
    handshake.push(encodeFrame(utf8("k")));
    assert.equal(handshake.step().kind, "challenge");
    handshake.push(encodeFrame(new Uint8Array(AUTH_PROOF_BYTES)));
    assert.equal(handshake.step().kind, "verify");
    const decision = handshake.verified(false);
    assert.equal(decision.kind, "refuse");
    if (decision.kind === "refuse") assert.equal(decision.reason, "authentication failed");
  });

  it("refuses a proof of the wrong length without asking to verify it", () => {
    const handshake = server({ kind: "challenge" });
    handshake.push(encodeFrame(utf8("k")));
    assert.equal(handshake.step().kind, "challenge");
    handshake.push(encodeFrame(new Uint8Array(AUTH_PROOF_BYTES - 1)));
    const decision = handshake.step();
    assert.equal(decision.kind, "refuse");
    if (decision.kind === "refuse") assert.equal(decision.reason, "authentication failed");
  });

  it("refuses after the proof when the policy changed its mind (client removed meanwhile)", () => {
    const handshake = server((_k, authenticated) =>
      authenticated ? { kind: "refuse", reason: "unexpected keyword" } : { kind: "challenge" }
    );
    handshake.push(encodeFrame(utf8("k")));
    handshake.step();
    handshake.push(encodeFrame(new Uint8Array(AUTH_PROOF_BYTES)));
    handshake.step();
    const decision = handshake.verified(true);
    assert.equal(decision.kind, "refuse");
    if (decision.kind === "refuse") assert.equal(decision.reason, "unexpected keyword");
  });
});

describe("ClientHandshake", () => {
  const keyword = utf8("worker-7");

  it("announces its keyword and is admitted by OK split into single bytes", () => {
    const handshake = new ClientHandshake({ keyword, hasSecret: false, maxAnswerBytes: 1024 });
    assert.deepEqual(handshake.hello, keyword);
    const decisions = feedByteByByte(handshake, encodeFrame(KEYWORD_ACCEPTED));
    assert.deepEqual(decisions.map((d) => d.kind), ["admit"]);
  });

  it("fails with HandshakeRejectedError carrying the server's reason", () => {
    const handshake = new ClientHandshake({ keyword, hasSecret: false, maxAnswerBytes: 1024 });
    const [decision] = feedByteByByte(handshake, encodeFrame(utf8("duplicate keyword")));
    assert.equal(decision!.kind, "fail");
    if (decision!.kind !== "fail") return;
    assert.ok(decision.error instanceof HandshakeRejectedError);
    assert.equal((decision.error as HandshakeRejectedError).reason, "duplicate keyword");
  });

  it("answers a challenge when it has a secret, then waits for OK", () => {
    const handshake = new ClientHandshake({ keyword, hasSecret: true, maxAnswerBytes: 1024 });
    const challenge = new Uint8Array(AUTH_CHALLENGE_PREFIX.length + AUTH_NONCE_BYTES);
    challenge.set(AUTH_CHALLENGE_PREFIX);
    challenge.fill(5, AUTH_CHALLENGE_PREFIX.length);
    const [prove] = feedByteByByte(handshake, encodeFrame(challenge));
    assert.equal(prove!.kind, "prove");
    if (prove!.kind !== "prove") return;
    assert.deepEqual(prove.nonce, new Uint8Array(AUTH_NONCE_BYTES).fill(5));
    handshake.push(encodeFrame(KEYWORD_ACCEPTED));
    assert.equal(handshake.step().kind, "pending", "no answer is read while the proof is computed");
    handshake.proved();
    assert.equal(handshake.step().kind, "admit");
  });

  it("fails when challenged without a secret", () => {
    const handshake = new ClientHandshake({ keyword, hasSecret: false, maxAnswerBytes: 1024 });
    const challenge = new Uint8Array(AUTH_CHALLENGE_PREFIX.length + AUTH_NONCE_BYTES);
    challenge.set(AUTH_CHALLENGE_PREFIX);
    handshake.push(encodeFrame(challenge));
    const decision = handshake.step();
    assert.equal(decision.kind, "fail");
    if (decision.kind === "fail") assert.match(decision.error.message, /requires authentication/);
  });

  it("reports a close before any answer as a rejection with an empty reason", () => {
    const handshake = new ClientHandshake({ keyword, hasSecret: false, maxAnswerBytes: 1024 });
    const error = handshake.closedEarly();
    assert.ok(error instanceof HandshakeRejectedError);
    assert.equal((error as HandshakeRejectedError).reason, "");
  });

  it("fails with a ProtocolError when the answer declares more than maxAnswerBytes", () => {
    const handshake = new ClientHandshake({ keyword, hasSecret: false, maxAnswerBytes: 4 });
    handshake.push(encodeFrame(utf8("a long refusal")));
    const decision = handshake.step();
    assert.equal(decision.kind, "fail");
    if (decision.kind === "fail") assert.ok(decision.error instanceof ProtocolError);
  });
});

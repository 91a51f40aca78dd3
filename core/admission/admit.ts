/**
 * Admission as pure functions of the connection and the policy: whether an incoming connection
 * starts a keyword handshake, is a raw unknown client or is refused, and the answer to the keyword
 * it announces. The scheduler calls the application's rules and predicates (behind its guard) and
 * passes their results in; nothing here does I/O or keeps state.
 *
 * @module
 */
import type { KeywordVerdict } from "../wire/handshake.ts";
import type { IoCoreOptions } from "../options.ts";
import { oneOf } from "../option_tables.ts";
import { ALLOW_ALL, compileRules, LOCAL_ONLY, type RuleCheck } from "./rules.ts";

/** The core's admission options, checked and compiled once. */
export interface AdmissionPolicy {
  /** `unknownClients: "allow"`: raw connections become unknown clients. */
  readonly allowUnknown: boolean;
  /** `acceptUnexpectedKeywords`: an unregistered keyword is held until `addClient`. */
  readonly acceptUnexpected: boolean;
  /** `acceptUnexpectedKeywords: "adopt"`: an unregistered keyword is registered at once. */
  readonly adopt: boolean;
  /** `duplicateKeyword: "replace"`: a second connection for a keyword replaces the first. */
  readonly replaceDuplicates: boolean;
  /** `allow`: who may announce a keyword whose client has no rules of its own. */
  readonly defaultRules: RuleCheck;
  /** `unknownClientsAllow`: who may connect as an unknown client. */
  readonly unknownRules: RuleCheck;
}

/** Checks the admission options of `IoCoreOptions` and compiles their rules; throws `TypeError`. */
export function admissionPolicy(options: IoCoreOptions): AdmissionPolicy {
  return {
    allowUnknown: oneOf("unknownClients", options.unknownClients, ["allow", "refuse"], "refuse") === "allow",
    acceptUnexpected: options.acceptUnexpectedKeywords !== false,
    adopt: options.acceptUnexpectedKeywords === "adopt",
    replaceDuplicates:
      oneOf("duplicateKeyword", options.duplicateKeyword, ["refuse", "replace"], "refuse") === "replace",
    defaultRules: compileRules(options.allow ?? LOCAL_ONLY),
    unknownRules: compileRules(options.unknownClientsAllow ?? ALLOW_ALL),
  };
}

/** How an incoming connection goes on. */
export type Route = "handshake" | "raw" | "refuse";

/**
 * The route of an incoming connection: a handshake unless it is raw (a UDP address, or
 * `rawConnection` said so); a raw one is an unknown client if the policy and `unknownAllowed` (its
 * rules' answer, asked only then) let it in.
 */
export function routeIncoming(policy: AdmissionPolicy, raw: boolean, unknownAllowed: () => boolean): Route {
  if (!raw) return "handshake";
  return policy.allowUnknown && unknownAllowed() ? "raw" : "refuse";
}

/** What admission needs to know of the client registered for an announced keyword. */
export interface KeywordOwner {
  /** Set for an outgoing client: its keyword is not accepted from outside. */
  readonly connect: unknown;
  readonly removed: boolean;
  /** Set while the client has a connection. */
  readonly session: unknown;
  /** Set when the client must prove a secret. */
  readonly secretKey: unknown;
  readonly rules: RuleCheck | undefined;
}

const ADMIT: KeywordVerdict = Object.freeze({ kind: "admit" });
const HOLD: KeywordVerdict = Object.freeze({ kind: "hold" });
const CHALLENGE: KeywordVerdict = Object.freeze({ kind: "challenge" });
const refusal = (reason: string): KeywordVerdict => ({ kind: "refuse", reason });

/**
 * The accepting side's answer to an announced keyword.
 *
 * @param owner The client registered for the keyword, if any.
 * @param held True when another connection already holds this unregistered keyword.
 * @param authenticated True when the peer has proved the client's secret.
 * @param browser True when only a client with a secret may connect (see `needsSecret`).
 * @param allowed Asks the access rules about this peer; asked only before authentication.
 */
export function keywordVerdict(
  policy: AdmissionPolicy,
  owner: KeywordOwner | undefined,
  held: boolean,
  authenticated: boolean,
  browser: boolean,
  allowed: (rules: RuleCheck) => boolean,
): KeywordVerdict {
  if (!authenticated && !allowed(owner?.rules ?? policy.defaultRules)) return refusal("access denied");
  if (browser && !owner?.secretKey) {
    return refusal("a browser may connect only as a client with a secret (or set websocket.allowedOrigins)");
  }
  if (owner) {
    if (owner.connect) return refusal("keyword is not accepted here");
    if (owner.removed) return refusal("unexpected keyword");
    if (owner.session && !policy.replaceDuplicates) return refusal("duplicate keyword");
    return owner.secretKey && !authenticated ? CHALLENGE : ADMIT;
  }
  if (authenticated || !policy.acceptUnexpected) return refusal("unexpected keyword");
  if (held) return refusal("duplicate keyword");
  return policy.adopt ? ADMIT : HOLD;
}

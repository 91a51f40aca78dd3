/**
 * Admission as pure functions, without sockets: the route of an incoming connection and the answer
 * to an announced keyword, for each policy.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type AdmissionPolicy,
  admissionPolicy,
  type KeywordOwner,
  keywordVerdict,
  routeIncoming,
} from "../core/admission/admit.ts";
import type { RuleCheck } from "../core/admission/rules.ts";

const allowAll: RuleCheck = () => 0;
const policy = (overrides: Partial<AdmissionPolicy> = {}): AdmissionPolicy => ({
  ...admissionPolicy({}),
  ...overrides,
});
const owner = (overrides: Partial<KeywordOwner> = {}): KeywordOwner => ({
  connect: undefined,
  removed: false,
  session: undefined,
  secretKey: undefined,
  rules: undefined,
  ...overrides,
});
const yes = () => true;
const no = () => false;

describe("admissionPolicy", () => {
  it("fills in the defaults and refuses unknown values", () => {
    const p = admissionPolicy({});
    assert.equal(p.allowUnknown, false);
    assert.equal(p.acceptUnexpected, true);
    assert.equal(p.replaceDuplicates, false);
    assert.equal(admissionPolicy({ unknownClients: "allow" }).allowUnknown, true);
    assert.throws(() => admissionPolicy({ duplicateKeyword: "keep" as "refuse" }), TypeError);
  });
});

describe("routeIncoming", () => {
  it("starts a handshake unless raw; a raw one needs the policy and its rules", () => {
    let asked = 0;
    const rules = () => (asked++, true);
    assert.equal(routeIncoming(policy({ allowUnknown: true }), false, rules), "handshake");
    assert.equal(asked, 0, "the unknown clients' rules are not asked for a handshake");
    assert.equal(routeIncoming(policy({ allowUnknown: false }), true, rules), "refuse");
    assert.equal(asked, 0, "nor when unknown clients are refused anyway");
    assert.equal(routeIncoming(policy({ allowUnknown: true }), true, rules), "raw");
    assert.equal(routeIncoming(policy({ allowUnknown: true }), true, no), "refuse");
  });
});

describe("keywordVerdict", () => {
  // [case, policy, owner, held, authenticated, rules allow, expected verdict]
  const table: [
    string,
    Partial<AdmissionPolicy>,
    KeywordOwner | undefined,
    boolean,
    boolean,
    boolean,
    string,
  ][] = [
    ["a registered client", {}, owner(), false, false, true, "admit"],
    ["refused by the rules", {}, owner(), false, false, false, "refuse:access denied"],
    ["a client with a secret is challenged", {}, owner({ secretKey: {} }), false, false, true, "challenge"],
    ["and admitted once authenticated", {}, owner({ secretKey: {} }), false, true, false, "admit"],
    [
      "an outgoing client's keyword",
      {},
      owner({ connect: {} }),
      false,
      false,
      true,
      "refuse:keyword is not accepted here",
    ],
    ["a removed client", {}, owner({ removed: true }), false, false, true, "refuse:unexpected keyword"],
    ["a duplicate", {}, owner({ session: {} }), false, false, true, "refuse:duplicate keyword"],
    [
      "a duplicate that replaces",
      { replaceDuplicates: true },
      owner({ session: {} }),
      false,
      false,
      true,
      "admit",
    ],
    ["an unexpected keyword is held", {}, undefined, false, false, true, "hold"],
    ["unless one is held already", {}, undefined, true, false, true, "refuse:duplicate keyword"],
    [
      "or unexpected keywords are refused",
      { acceptUnexpected: false },
      undefined,
      false,
      false,
      true,
      "refuse:unexpected keyword",
    ],
    ["an authenticated unknown keyword", {}, undefined, false, true, true, "refuse:unexpected keyword"],
  ];
  for (const [name, overrides, registered, held, authenticated, allowed, expected] of table) {
    it(`${name}: ${expected}`, () => {
      const verdict = keywordVerdict(
        policy(overrides),
        registered,
        held,
        authenticated,
        false,
        allowed ? yes : no,
      );
      assert.equal(verdict.kind === "refuse" ? `refuse:${verdict.reason}` : verdict.kind, expected);
    });
  }

  it("asks the client's own rules before the core's, and none once authenticated", () => {
    const seen: string[] = [];
    const own: RuleCheck = () => (seen.push("own"), 0);
    const core: RuleCheck = () => (seen.push("core"), 0);
    const ask = (rules: RuleCheck) => rules({} as never) >= 0;
    keywordVerdict(policy({ defaultRules: core }), owner({ rules: own }), false, false, false, ask);
    keywordVerdict(policy({ defaultRules: core }), owner(), false, false, false, ask);
    keywordVerdict(
      policy({ defaultRules: allowAll }),
      owner(),
      false,
      true,
      false,
      () => assert.fail("not asked"),
    );
    assert.deepEqual(seen, ["own", "core"]);
  });
});

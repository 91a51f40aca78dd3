/**
 * The npm package's exports as users reach them: `require()` and `import` by the package's name.
 * Runs on Node only, against the compiled package in npm/ (the tests there sit inside it).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import process from "node:process";
import { detectRuntime } from "../mod.ts";

const isNode = detectRuntime() === "node" && !(process.versions as { bun?: string }).bun;
const skip = isNode && import.meta.url.endsWith(".js")
  ? undefined
  : "the npm package is checked on Node, compiled";

describe("the npm package", () => {
  it("loads with require() by its name, as CommonJS users write it", { skip }, () => {
    const require = createRequire(import.meta.url);
    const asockio = require("asockio");
    assert.equal(typeof asockio.IoCore, "function");
    assert.equal(typeof require("asockio/transports").nativeTransport, "function");
    assert.equal(typeof require("asockio/codec").FrameDecoder, "function");
    assert.equal(typeof require("asockio/http").HttpResponder, "function");
    assert.equal(typeof require("asockio/cluster").natsCluster, "function");
    assert.equal(typeof require("asockio/websocket").connectWebSocket, "function");
  });

  it("loads with import by its name, the same module as require() gives", { skip }, async () => {
    const name = "asockio"; // a variable: the package exists only once built, after this file is compiled
    const imported = await import(name);
    const required = createRequire(import.meta.url)("asockio");
    assert.equal(imported.IoCore, required.IoCore);
  });
});

/**
 * The release's version is one number: the JSR manifest (`deno.json`), the npm manifest (`package.json`)
 * and its lock file carry the same version, and CHANGELOG.md has a dated section for it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the folder above this file (or its compiled copy) that holds deno.json and package.json. */
function repositoryRoot(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, "deno.json")) && existsSync(join(dir, "package.json"))) return dir;
  }
  return undefined;
}

const root = repositoryRoot();
const skip = root === undefined ? "the manifests are not above this test (a packed copy)" : undefined;
const read = (name: string): string => readFileSync(join(root!, name), "utf8");
const versionOf = (name: string): unknown => JSON.parse(read(name)).version;

describe("the release version", () => {
  it("is the same in deno.json, package.json and package-lock.json", { skip }, () => {
    const version = versionOf("deno.json");
    assert.match(String(version), /^\d+\.\d+\.\d+(?:-[\w.]+)?$/);
    assert.equal(versionOf("package.json"), version, "package.json");
    assert.equal(versionOf("package-lock.json"), version, "package-lock.json");
  });

  it("has a dated CHANGELOG.md section, below Unreleased, with a compare link", { skip }, () => {
    const version = String(versionOf("deno.json"));
    const changelog = read("CHANGELOG.md");
    const headings = [...changelog.matchAll(/^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$/gm)];
    assert.deepEqual(headings.slice(0, 2).map((m) => m[1]), ["Unreleased", version]);
    assert.ok(headings[1]![2], `the ${version} section has a date`);
    assert.match(changelog, new RegExp(`^\\[${version.replaceAll(".", "\\.")}\\]: https://`, "m"));
  });
});

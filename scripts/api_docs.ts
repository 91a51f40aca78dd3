/**
 * The API reference: `npm run docs` writes it as HTML with `deno doc --html` into `docs/api/` (not
 * committed), for every entry point `deno.json` exports.
 *
 * `--check` writes nothing: it runs `deno doc --lint` over the entry points, then asks `deno doc --json`
 * whether every public symbol has a doc comment and every function and class an `@example`. `npm test`
 * runs it.
 *
 * Usage: see {@linkcode CLI} (`--help`).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseCli } from "./_cli.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = join(ROOT, "node_modules", ".bin", "deno");
/** Where the HTML goes; `.gitignore` and the `deno.json` excludes name it too. */
const OUTPUT = "docs/api";

/** The command line, for {@linkcode parseCli}: `--help` prints its usage. */
const CLI = {
  command: "deno run -A scripts/api_docs.ts [options]",
  summary: `Writes the HTML API reference of the deno.json exports into ${OUTPUT}/ (npm run docs).`,
  options: {
    check: {
      type: "boolean",
      help: "write nothing; fail unless deno doc --lint is clean, every public symbol has a doc comment,\n" +
        "           and every function and class an @example",
    },
  },
} as const;

/** One exported symbol's declaration, as `deno doc --json` gives it (only what is checked). */
interface DocDeclaration {
  kind: string;
  jsDoc?: { doc?: string; tags?: { kind: string }[] };
}

/** The entry points: the files `deno.json` exports. */
function entryPoints(): string[] {
  const exports = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")).exports;
  return typeof exports === "string" ? [exports] : Object.values(exports as Record<string, string>);
}

function deno(args: string[]): { status: number | null; stdout: string } {
  const result = spawnSync(DENO, args, {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.error) throw new Error(`Cannot run ${DENO}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout };
}

/**
 * What the reference lacks: a symbol without a doc comment, a function or class without an `@example`.
 * A `reference` (a re-export of another entry point's symbol) is judged where it is declared.
 */
function missingDocs(
  nodes: Record<string, { symbols?: { name: string; declarations: DocDeclaration[] }[] }>,
): string[] {
  const missing: string[] = [];
  for (const [file, node] of Object.entries(nodes)) {
    const where = file.replace(/^file:\/\/.*?\/(?=[^/]+(?:\/[^/]+)?$)/, "");
    for (const symbol of node.symbols ?? []) {
      for (const declaration of symbol.declarations) {
        if (declaration.kind === "reference") continue;
        const doc = declaration.jsDoc;
        if (!doc?.doc?.trim()) missing.push(`${where}: ${symbol.name} has no doc comment`);
        const isCode = declaration.kind === "function" || declaration.kind === "class";
        if (isCode && !doc?.tags?.some((tag) => tag.kind === "example")) {
          missing.push(`${where}: ${declaration.kind} ${symbol.name} has no @example`);
        }
      }
    }
  }
  return missing;
}

function check(entries: string[]): number {
  if (deno(["doc", "--quiet", "--lint", ...entries]).status !== 0) {
    console.error("Cannot pass the API reference: deno doc --lint reports problems (above)");
    return 1;
  }
  const json = deno(["doc", "--json", ...entries]);
  if (json.status !== 0) return 1;
  const missing = missingDocs(JSON.parse(json.stdout).nodes);
  if (missing.length > 0) {
    console.error(`Cannot pass the API reference:\n  ${missing.join("\n  ")}`);
    return 1;
  }
  console.log(`API reference of ${entries.join(", ")}: lint clean, every symbol documented`);
  return 0;
}

function main(): number {
  const values = parseCli(process.argv.slice(2), CLI);
  const entries = entryPoints();
  if (values.check) return check(entries);
  mkdirSync(join(ROOT, OUTPUT), { recursive: true });
  const written = deno(["doc", "--html", "--name=asockio", `--output=${OUTPUT}`, ...entries]);
  if (written.status !== 0) return 1;
  console.log(`API reference written to ${OUTPUT}/index.html`);
  return 0;
}

process.exit(main());

/**
 * The architecture, checked from the imports: `core/wire/` is bytes only, `core/` never names
 * `processors/` or a concrete transport, `transports/` reach `core/` only for the errors and leaf
 * types, and no files import each other in a circle at run time (type-only imports may point
 * anywhere), and no source file outgrows its line ceiling. No socket: it reads the source files.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

/** The repository root: this file is `tests/layering.test.ts` (or its compiled `.js`). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The npm build runs the suite on compiled JavaScript, where the TypeScript sources (and type imports) are gone. */
const NO_SOURCES = existsSync(join(ROOT, "core", "io_core.ts"))
  ? undefined
  : "the TypeScript sources are not here (npm build); Deno and Bun check them";

/** One `import` or `export … from` of a file. */
export interface ImportEdge {
  /** The specifier as written. */
  readonly specifier: string;
  /** True when nothing of it exists at run time (`import type`, or every name marked `type`). */
  readonly typeOnly: boolean;
}

/**
 * The imports of a TypeScript source: `import … from`, `export … from` and side-effect imports,
 * outside comments (doc examples hold imports too).
 */
export function parseImports(source: string): ImportEdge[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const edges: ImportEdge[] = [];
  const clause = String.raw`(\{[^}]*\}|\*\s+as\s+[\w$]+|\*|[\w$]+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+[\w$]+))?)`;
  const from = new RegExp(
    String.raw`(?:^|[;\n])\s*(import|export)\s+(type\s+)?${clause}\s*from\s*["']([^"']+)["']`,
    "g",
  );
  for (const m of code.matchAll(from)) {
    const names = m[3]!;
    const braces = /^\{([^}]*)\}$/.exec(names.trim());
    const specifiers = braces ? braces[1]!.split(",").map((s) => s.trim()).filter((s) => s !== "") : [];
    const allTypes = specifiers.length > 0 && specifiers.every((s) => s.startsWith("type "));
    edges.push({ specifier: m[4]!, typeOnly: m[2] !== undefined || allTypes });
  }
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s*["']([^"']+)["']/g)) {
    edges.push({ specifier: m[1]!, typeOnly: false });
  }
  return edges;
}

/** A file's imports, resolved to paths relative to the root (`core/wire/codec.ts`). */
interface Module {
  readonly path: string;
  readonly imports: readonly { readonly target: string; readonly typeOnly: boolean }[];
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

async function modules(): Promise<Module[]> {
  const files = [
    ...await sourceFiles("core"),
    ...await sourceFiles("transports"),
    ...await sourceFiles("processors"),
  ];
  return Promise.all(files.map(async (path) => {
    const edges = parseImports(await readFile(join(ROOT, path), "utf8"));
    const imports = edges
      .filter((e) => e.specifier.startsWith("."))
      .map((e) => ({
        target: relative(ROOT, resolve(ROOT, dirname(path), e.specifier)).split("\\").join("/"),
        typeOnly: e.typeOnly,
      }));
    return { path, imports };
  }));
}

/** The circles of `edges` (strongly connected components of more than one file, or a self-import). */
export function circles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
    }
    if (low.get(v) !== indexOf.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (edges.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of edges.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

const isConcreteTransport = (path: string) =>
  path.startsWith("transports/") && path !== "transports/types.ts";
/** What `transports/` may name in `core/`: the errors at run time, and these leaf files for types. */
const TRANSPORT_TYPE_LEAVES = new Set(["core/errors.ts", "core/types.ts"]);

/** The imports of the files under `folder` that `isForbidden`, as `from -> to` lines. */
async function forbidden(
  folder: string,
  isForbidden: (i: Module["imports"][number]) => boolean,
): Promise<string[]> {
  return (await modules())
    .filter((m) => m.path.startsWith(folder))
    .flatMap((m) =>
      m.imports.filter(isForbidden).map((i) => `${m.path} -> ${i.target}${i.typeOnly ? " (type)" : ""}`)
    );
}

describe("layering", () => {
  it("parses value, type-only, re-export and multi-line imports, and skips those in comments", () => {
    const edges = parseImports(`
      /** @example
       * import { Nope } from "./in_a_comment";
       */
      // import { AlsoNope } from "./line_comment";
      import { a, type B } from "./value";
      import type { C } from "./type";
      import { type D, type E } from "./all_types";
      import {
        f,
        g,
      } from "./multi_line";
      import * as h from "./namespace";
      export { i } from "./re_export";
      export type { J } from "./type_re_export";
      export * from "./star";
      import "./side_effect";
      export function notAnImport(from: string) { return from; }
    `);
    assert.deepEqual(edges, [
      { specifier: "./value", typeOnly: false },
      { specifier: "./type", typeOnly: true },
      { specifier: "./all_types", typeOnly: true },
      { specifier: "./multi_line", typeOnly: false },
      { specifier: "./namespace", typeOnly: false },
      { specifier: "./re_export", typeOnly: false },
      { specifier: "./type_re_export", typeOnly: true },
      { specifier: "./star", typeOnly: false },
      { specifier: "./side_effect", typeOnly: false },
    ]);
  });

  it("finds circles, and none in a chain", () => {
    const chain = new Map([["a", ["b"]], ["b", ["c"]], ["c", []]]);
    assert.deepEqual(circles(chain), []);
    const loop = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["d"]]]);
    assert.deepEqual(circles(loop).sort(), [["a", "b", "c"], ["d"]]);
  });

  it("core/wire/ imports only core/wire/ and core/errors.ts at run time", { skip: NO_SOURCES }, async () => {
    const wrong = await forbidden(
      "core/wire/",
      (i) => !i.typeOnly && !i.target.startsWith("core/wire/") && i.target !== "core/errors.ts",
    );
    assert.deepEqual(wrong, []);
  });

  it(
    "core/ imports neither processors/ nor a concrete transport, not even for types",
    { skip: NO_SOURCES },
    async () => {
      const wrong = await forbidden(
        "core/",
        (i) => i.target.startsWith("processors/") || isConcreteTransport(i.target),
      );
      assert.deepEqual(wrong, []);
    },
  );

  it(
    "transports/ reach core/ only for errors.ts, and for types only in leaf files",
    { skip: NO_SOURCES },
    async () => {
      const wrong = await forbidden(
        "transports/",
        (i) =>
          i.target.startsWith("core/") &&
          (i.typeOnly ? !TRANSPORT_TYPE_LEAVES.has(i.target) : i.target !== "core/errors.ts"),
      );
      assert.deepEqual(wrong, []);
    },
  );

  it("no files import each other in a circle at run time", { skip: NO_SOURCES }, async () => {
    const edges = new Map<string, string[]>();
    for (const m of await modules()) {
      edges.set(
        m.path,
        m.imports.filter((i) => !i.typeOnly).map((i) => i.target),
      );
    }
    assert.deepEqual(circles(edges), []);
  });

  it("no source file in core/, transports/ or processors/ is over 600 lines (core/io_core.ts 800)", {
    skip: NO_SOURCES,
  }, async () => {
    const over: string[] = [];
    for (const dir of ["core", "transports", "processors"]) {
      for (const path of await sourceFiles(dir)) {
        const lines = (await readFile(join(ROOT, path), "utf8")).split("\n").length - 1;
        if (lines > (path === "core/io_core.ts" ? 800 : 600)) over.push(`${path}: ${lines} lines`);
      }
    }
    assert.deepEqual(over, []);
  });
});

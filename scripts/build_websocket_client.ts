/**
 * Builds `connectWebSocket` (`web/websocket_client.ts`) as one self-contained ES module, with the
 * handshake, HMAC and reconnect code it imports inlined, so a page can load it with
 * `<script type="module">` from the core's own port. `npm test` runs it before the suites, so every
 * runtime's Chromium test loads the same file; the npm build ships it as `asockio/websocket/bundle`.
 *
 * The bundler is Bun's (`bun build`, from `node_modules`: a dev dependency, offline). The output is
 * checked: no `import`, `require` or `export ... from` may be left in it.
 *
 * Usage: `deno run -A scripts/build_websocket_client.ts [out-file]` (default `.build/asockio_websocket.js`).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository root: the first folder above this file with a `deno.json` (also from `npm/esm/`). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "deno.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("Cannot build the WebSocket client: no deno.json above scripts/");
    dir = up;
  }
  return dir;
}

const ROOT = findRoot();
/** The bundle's entry point. */
const ENTRY = join(ROOT, "web", "websocket_client.ts");
/** Where `npm test` and the example find the bundle. */
export const WEBSOCKET_CLIENT_BUNDLE: string = join(ROOT, ".build", "asockio_websocket.js");
/** Folders whose sources the bundle may include: a newer file there makes it stale. */
const SOURCE_DIRS = ["web", "core"];

/** What is left of a module system in `code`, or `undefined` when it stands alone. */
export function leftoverImport(code: string): string | undefined {
  return /^\s*import\s[^(]|^\s*export\s.*\sfrom\s|\bimport\s*\(|\brequire\s*\(/m.exec(code)?.[0];
}

/** Bundles the client into `outFile` (written whole, then renamed, so a reader never sees half a file). */
export function buildWebSocketClient(outFile: string = WEBSOCKET_CLIENT_BUNDLE): string {
  const bun = (process.versions as { bun?: string }).bun
    ? process.execPath
    : join(ROOT, "node_modules", ".bin", "bun");
  const tmp = `${outFile}.${process.pid}.tmp`;
  mkdirSync(dirname(outFile), { recursive: true });
  const result = spawnSync(
    bun,
    ["build", ENTRY, "--format", "esm", "--target", "browser", "--outfile", tmp],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  if (result.error || result.status !== 0) {
    throw new Error(`Cannot build the WebSocket client: bun build failed\n${result.stderr ?? ""}`, {
      cause: result.error,
    });
  }
  const code = readFileSync(tmp, "utf8");
  const left = leftoverImport(code);
  if (left !== undefined) throw new Error(`Cannot build the WebSocket client: the bundle still has ${left}`);
  if (!/\bconnectWebSocket\b/.test(code)) {
    throw new Error("Cannot build the WebSocket client: no connectWebSocket");
  }
  renameSync(tmp, outFile);
  return outFile;
}

function newestSource(): number {
  let newest = 0;
  for (const dir of SOURCE_DIRS) {
    for (const entry of readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith(".ts")) {
        newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
      }
    }
  }
  return newest;
}

/** The bundle's text, built first when it is missing or older than a source (a test run on its own). */
export function webSocketClientBundle(): string {
  const fresh = existsSync(WEBSOCKET_CLIENT_BUNDLE) &&
    statSync(WEBSOCKET_CLIENT_BUNDLE).mtimeMs >= newestSource();
  if (!fresh) buildWebSocketClient();
  return readFileSync(WEBSOCKET_CLIENT_BUNDLE, "utf8");
}

if ((import.meta as { main?: boolean }).main) {
  const out = buildWebSocketClient(process.argv[2] ?? WEBSOCKET_CLIENT_BUNDLE);
  writeFileSync(process.stdout.fd, `WebSocket client bundle: ${out} (${statSync(out).size} bytes)\n`);
}

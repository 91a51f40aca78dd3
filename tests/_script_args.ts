/**
 * What the scripts in `scripts/` and the workload reports share: option parsing, a runtime label for
 * report headers, and byte counts for people to read.
 *
 * @module
 */
import process from "node:process";
import { detectRuntime } from "../mod.ts";

/**
 * Parses `--name value` / `--name=value` options into numbers; `4GiB`, `64MiB`, `10M`, `20k` and
 * `1e6` are accepted. Unknown options throw a `TypeError` naming them; `--help` prints the options
 * with their defaults and exits.
 *
 * @example
 * ```ts
 * const { cases, seed } = parseNumberArgs(process.argv.slice(2), { cases: 1_000_000, seed: 1 });
 * ```
 */
export function parseNumberArgs<T extends Record<string, number>>(argv: readonly string[], defaults: T): T {
  const out: Record<string, number> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      // Every option is a number with a default: that list is the help.
      const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      console.log(`Options (numbers; 4GiB, 64MiB, 10M, 20k and 1e6 are accepted), with their defaults:`);
      for (const [name, value] of Object.entries(defaults)) console.log(`  --${kebab(name)} ${value}`);
      process.exit(0);
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new TypeError(`Cannot parse argument ${JSON.stringify(arg)}`);
    const name = match[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(name in defaults)) {
      throw new TypeError(`Cannot parse argument --${match[1]}: known options are ${Object.keys(defaults)}`);
    }
    const raw = match[2] ?? argv[++i];
    const value = parseSize(raw ?? "");
    if (!Number.isFinite(value)) throw new TypeError(`Cannot parse --${match[1]}: ${JSON.stringify(raw)}`);
    out[name] = value;
  }
  return out as T;
}

function parseSize(raw: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([kKMG]i?B?|[kKMG])?$/.exec(raw.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  const unit = m[2] ?? "";
  const binary = unit.includes("i");
  const base = binary ? 1024 : 1000;
  const power = { "": 0, k: 1, K: 1, M: 2, G: 3 }[unit.charAt(0) as "" | "k" | "K" | "M" | "G"] ?? 0;
  return Math.round(n * base ** power);
}

/**
 * The runtime and its version, for report headers.
 *
 * @example
 * ```ts
 * console.log(`fuzz on ${runtimeLabel()}`); // "fuzz on deno 2.9.6"
 * ```
 */
export function runtimeLabel(): string {
  const runtime = detectRuntime();
  const versions = process.versions as Record<string, string | undefined>;
  const version = runtime === "deno" ? versions.deno : runtime === "bun" ? versions.bun : versions.node;
  return `${runtime} ${version ?? "?"}`;
}

/**
 * Formats a byte count with a binary unit.
 *
 * @example
 * ```ts
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

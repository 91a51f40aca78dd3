/**
 * What the scripts in `scripts/` and the workload reports share: a runtime label for report headers, and
 * byte counts for people to read. The scripts parse their options with `scripts/_cli.mjs`.
 *
 * @module
 */
import process from "node:process";
import { detectRuntime } from "../mod.ts";

/**
 * The runtime and its version, for report headers.
 */
export function runtimeLabel(): string {
  const runtime = detectRuntime();
  const versions = process.versions as Record<string, string | undefined>;
  const version = runtime === "deno" ? versions.deno : runtime === "bun" ? versions.bun : versions.node;
  return `${runtime} ${version ?? "?"}`;
}

/**
 * Formats a byte count with a binary unit.
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

// @ts-check
/**
 * The command-line conventions of every entry point (`bench/run.ts`, `scripts/*`): `node:util` `parseArgs`
 * (built into Deno, Bun and Node 20+), kebab-case flags, `--help` prints the usage and exits 0, a bad or
 * unknown argument prints the usage to stderr and exits 2.
 *
 * Plain JavaScript with JSDoc types, because `scripts/test_all.mjs` (`npm test`) imports it on Node 20,
 * which runs no TypeScript; the TypeScript entry points import the same file and get its types.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";

/**
 * One option. Its flag is the key in kebab-case (`timeoutMs` is `--timeout-ms`).
 *
 * - `number`: a whole number, at least `min`; `4GiB`, `64MiB`, `10M`, `20k`, `1.5k` and `1e6` are accepted;
 * - `string`: one word, from `choices` when given;
 * - `list`: comma-separated words, each from `choices` when given;
 * - `boolean`: present or not (`false` by default).
 *
 * @typedef {object} CliOption
 * @property {"number" | "string" | "list" | "boolean"} type The kind of value.
 * @property {string} help What it does, for the usage.
 * @property {number | string | readonly string[]} [default] The value when the flag is absent; none means `undefined`.
 * @property {string} [value] The value's name in the usage: `N` for numbers, `LIST` for lists, `VALUE` otherwise
 *   unless given.
 * @property {readonly string[]} [choices] The words a `string` or `list` option accepts.
 * @property {0 | 1} [min] The least value of a `number` option: `0` where zero means something (a seed, an
 *   index, a delay). Default `1`.
 */

/**
 * What a program tells about its command line.
 *
 * @template {Record<string, CliOption>} T
 * @typedef {object} CliSpec
 * @property {string} command How to run it, e.g. `deno run -A scripts/fuzz.ts [options]`.
 * @property {string} [summary] What it does, a few lines.
 * @property {T} options Its options (`--help` is added).
 * @property {string} [notes] Printed after the options: exit codes, examples.
 */

/**
 * The parsed value of one option.
 *
 * @template {CliOption} O
 * @typedef {O extends { type: "boolean" } ? boolean
 *   : O extends { type: "number" } ? (O extends { default: number } ? number : number | undefined)
 *   : O extends { type: "list" } ? (O extends { default: readonly string[] } ? string[] : string[] | undefined)
 *   : O extends { default: string } ? string : string | undefined} CliValue
 */

/**
 * The parsed values, by option key.
 *
 * @template {Record<string, CliOption>} T
 * @typedef {{ -readonly [K in keyof T]: CliValue<T[K]> }} CliValues
 */

/** @param {string} key */
const flagOf = (key) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** @param {CliOption} option */
function placeholderOf(option) {
  if (option.type === "boolean") return "";
  return option.value ?? (option.type === "number" ? "N" : option.type === "list" ? "LIST" : "VALUE");
}

/**
 * The usage text of `spec`, as `--help` prints it.
 *
 * @example
 * ```js
 * console.log(formatUsage({ command: "fuzz.ts [options]", options: { seed: { type: "number", default: 1, help: "the seed" } } }));
 * ```
 *
 * @template {Record<string, CliOption>} T
 * @param {CliSpec<T>} spec What the program tells about its command line.
 * @returns {string} The usage, without a trailing newline.
 */
export function formatUsage(spec) {
  const rows = Object.entries(spec.options).map(([key, option]) => {
    const left = `--${flagOf(key)}${option.type === "boolean" ? "" : ` ${placeholderOf(option)}`}`;
    const notes = [];
    if (option.choices && option.value === undefined) {
      notes.push(`${option.type === "list" ? "any" : "one"} of ${option.choices.join(", ")}`);
    }
    if (option.type === "number" && option.min === 0) notes.push("0 or more");
    if (option.default !== undefined) {
      notes.push(`default ${Array.isArray(option.default) ? option.default.join(",") : option.default}`);
    }
    return [left, notes.length > 0 ? `${option.help} (${notes.join("; ")})` : option.help];
  });
  rows.push(["--help", "print this and exit"]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const lines = [`Usage: ${spec.command}`, ""];
  if (spec.summary) lines.push(spec.summary, "");
  lines.push("Options:");
  for (const [left, right] of rows) lines.push(`  ${left.padEnd(width)}${right}`);
  if (Object.values(spec.options).some((o) => o.type === "number")) {
    lines.push(
      "",
      "Numbers are whole, 1 or more unless marked, and accept 4GiB, 64MiB, 10M, 20k, 1.5k and 1e6.",
    );
  }
  if (spec.notes) lines.push("", spec.notes);
  return lines.join("\n");
}

/**
 * Prints `message` and the usage of `spec` to stderr, and exits with 2 (bad arguments).
 *
 * @example
 * ```js
 * if (values.reps < 1) exitWithUsage(spec, "Cannot run: --reps must be at least 1");
 * ```
 *
 * @template {Record<string, CliOption>} T
 * @param {CliSpec<T>} spec What the program tells about its command line.
 * @param {string} message Why the arguments were refused.
 * @returns {never}
 */
export function exitWithUsage(spec, message) {
  console.error(`${message}\n\n${formatUsage(spec)}`);
  process.exit(2);
}

/**
 * Parses a number with an optional sign and unit: `4GiB`, `64MiB`, `10M`, `20k`, `1.5k`, `1e6`, `-5`; NaN
 * when it is none. Not rounded: `1.5` is 1.5, and the caller decides what it accepts.
 *
 * @example
 * ```js
 * parseCount("64MiB"); // 67108864
 * ```
 *
 * @param {string} raw The argument.
 * @returns {number} The number, or NaN.
 */
export function parseCount(raw) {
  const match = /^(-?\d+(?:\.\d+)?)(?:e(\d+))?([kKMG]i?B?)?$/.exec(raw.trim());
  if (!match) return NaN;
  const unit = match[3] ?? "";
  const power = { k: 1, K: 1, M: 2, G: 3 }[unit.charAt(0)] ?? 0;
  const exponent = Number(match[2] ?? 0);
  // Decimal units go into the exponent, so `1.1k` is exactly 1100 (1.1 * 1000 is not).
  if (!unit.includes("i")) return Number(`${match[1]}e${exponent + 3 * power}`);
  return Number(`${match[1]}e${exponent}`) * 1024 ** power;
}

/**
 * `--cases -5` as parseArgs reads it: `-5` looks like a flag, and the value is "ambiguous". For a number
 * option, a following word that starts like a negative number is its value (`--cases=-5`), so that it is
 * refused as a number instead.
 *
 * @param {readonly string[]} argv The arguments.
 * @param {Set<string>} numberFlags The flags of `number` options, `--` included.
 * @returns {string[]} The arguments, a number flag and a negative value joined with `=`.
 */
function joinNegativeValues(argv, numberFlags) {
  /** @type {string[]} */
  const joined = [];
  for (let i = 0; i < argv.length; i++) {
    const next = argv[i + 1];
    if (numberFlags.has(argv[i] ?? "") && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(`${argv[i]}=${next}`);
      i++;
    } else joined.push(argv[i] ?? "");
  }
  return joined;
}

/**
 * Parses `argv` with `node:util` `parseArgs` against `spec`. `--help` (or `-h`) prints the usage and exits
 * 0; an unknown flag, a positional argument, a missing value, a number that is not one, a number that is
 * negative, a fraction or below the option's `min`, or a word not in `choices` prints the reason and the
 * usage to stderr and exits 2.
 *
 * @example
 * ```js
 * const args = parseCli(process.argv.slice(2), {
 *   command: "deno run -A scripts/fuzz.ts [options]",
 *   options: { cases: { type: "number", default: 1_000_000, help: "how many cases" } },
 * });
 * console.log(args.cases);
 * ```
 *
 * @template {Record<string, CliOption>} T
 * @param {readonly string[]} argv The arguments, without the runtime and the script.
 * @param {CliSpec<T>} spec What the program tells about its command line.
 * @returns {CliValues<T>} The values by option key; absent flags take their defaults.
 */
export function parseCli(argv, spec) {
  /** @type {Record<string, { type: "string" | "boolean", short?: string }>} */
  const config = { help: { type: "boolean", short: "h" } };
  const numberFlags = new Set();
  for (const [key, option] of Object.entries(spec.options)) {
    config[flagOf(key)] = { type: option.type === "boolean" ? "boolean" : "string" };
    if (option.type === "number") numberFlags.add(`--${flagOf(key)}`);
  }
  /** @type {Record<string, string | boolean | undefined>} */
  let parsed;
  try {
    const args = joinNegativeValues(argv, numberFlags);
    parsed = parseArgs({ args, options: config, strict: true, allowPositionals: false }).values;
  } catch (err) {
    // Node's message goes on to suggest `--` for positional arguments, which no entry point takes.
    const reason = (err instanceof Error ? err.message : String(err)).split(/\.\s/)[0];
    exitWithUsage(spec, `Cannot parse the arguments: ${reason}`);
  }
  if (parsed.help) {
    console.log(formatUsage(spec));
    process.exit(0);
  }
  /** @type {Record<string, unknown>} */
  const values = {};
  for (const [key, option] of Object.entries(spec.options)) {
    const flag = `--${flagOf(key)}`;
    const raw = parsed[flagOf(key)];
    if (option.type === "boolean") {
      values[key] = raw === true;
      continue;
    }
    if (typeof raw !== "string") {
      values[key] = Array.isArray(option.default) ? [...option.default] : option.default;
      continue;
    }
    const words = option.type === "list" ? raw.split(",").map((w) => w.trim()).filter(Boolean) : [raw];
    const refused = words.find((w) => option.choices !== undefined && !option.choices.includes(w));
    if (refused !== undefined) {
      exitWithUsage(spec, `Cannot parse ${flag}: ${JSON.stringify(refused)} is not one of ${option.choices}`);
    }
    if (option.type === "number") {
      const value = parseCount(raw);
      if (!Number.isFinite(value)) {
        exitWithUsage(spec, `Cannot parse ${flag}: ${JSON.stringify(raw)} is no number`);
      }
      const min = option.min ?? 1;
      if (!Number.isInteger(value) || value < min) {
        const wanted = min === 0 ? "0 or a positive integer" : "a positive integer";
        exitWithUsage(spec, `Cannot parse ${flag}: it must be ${wanted}, not ${JSON.stringify(raw)}`);
      }
      values[key] = value + 0; // -0 is 0
    } else if (option.type === "list") {
      if (words.length === 0) exitWithUsage(spec, `Cannot parse ${flag}: the list is empty`);
      values[key] = words;
    } else values[key] = raw;
  }
  return /** @type {CliValues<T>} */ (values);
}

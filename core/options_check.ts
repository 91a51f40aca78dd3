/**
 * The one checker of option objects and call arguments: a table per options object (the known
 * names, each with the check of its value), unknown names refused with the nearest known one
 * suggested, and error messages that name the argument and what it got. To accept a new option
 * or value, add it to its table in `options.ts`.
 *
 * @module
 */

/**
 * Checks one value; throws a `TypeError` (wrong type) or `RangeError` (right type, out of range)
 * whose message names `at`, the argument's path, and the action that was refused.
 */
export interface Check {
  (value: unknown, at: string, action: string): void;
  /** True when the field must be present (not `undefined`) in its object. */
  readonly required?: boolean;
}

// "a Uint8Array", "an ArrayBuffer", "an object".
const article = (noun: string): string => (/^[aeio]/i.test(noun) ? "an " : "a ") + noun;

/**
 * A short description of a value for an error message: `12345`, `"tpc"`, `NaN`, `undefined`,
 * `null`, `an ArrayBuffer`, `a Uint16Array`, `an array`, `an object`, `a function`.
 *
 * @example
 * ```ts
 * import { describeValue } from "./options_check.ts";
 * console.log(describeValue(new Uint16Array(2))); // "a Uint16Array"
 * ```
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    case "number":
    case "boolean":
    case "undefined":
      return String(value);
    case "bigint":
      return `${value}n`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name !== "Object" && name !== "" ? article(name) : "an object";
}

/** A `TypeError` saying what `at` must be and what it got. */
export function typeError(action: string, at: string, expected: string, value: unknown): TypeError {
  return new TypeError(`Cannot ${action}: ${at} must be ${expected}, got ${describeValue(value)}`);
}

/** A `RangeError` saying what `at` must be and what it got. */
export function rangeError(action: string, at: string, expected: string, value: unknown): RangeError {
  return new RangeError(`Cannot ${action}: ${at} must be ${expected}, got ${describeValue(value)}`);
}

/** Optimal string alignment distance: edits, with a swap of two neighbours counted as one. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0]![j] = j;
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The known name nearest to `name`, when it is close enough to be a typo, or `undefined`.
 *
 * @example
 * ```ts
 * import { nearestName } from "./options_check.ts";
 * console.log(nearestName("maxMesageBytes", ["maxMessageBytes", "inputBytes"])); // "maxMessageBytes"
 * ```
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    const [a, b] = [name.toLowerCase(), candidate.toLowerCase()];
    // A name cut short or lengthened (highWaterMark, timeout) is as close as one typo.
    const distance = a === b ? 0 : a.includes(b) || b.includes(a) ? 1 : editDistance(name, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

const didYouMean = (name: string, known: Iterable<string>): string => {
  const nearest = nearestName(name, known);
  return nearest === undefined ? "" : `; did you mean ${nearest}?`;
};

/** The same check, for a field that must be present. */
export function required(check: Check): Check {
  return Object.assign((value: unknown, at: string, action: string) => check(value, at, action), {
    required: true,
  });
}

/** Any value: the name is known, its value is checked elsewhere. */
export const anyValue: Check = () => {};

/** A boolean. */
export const boolean: Check = (value, at, action) => {
  if (typeof value !== "boolean") throw typeError(action, at, "a boolean", value);
};

/** A number (its range is checked elsewhere). */
export const numeric: Check = (value, at, action) => {
  if (typeof value !== "number") throw typeError(action, at, "a number", value);
};

/** A function (a callback, or a class such as a processor). */
export const callable: Check = (value, at, action) => {
  if (typeof value !== "function") throw typeError(action, at, "a function", value);
};

/** A non-empty string. */
export const text: Check = (value, at, action) => {
  if (typeof value !== "string") throw typeError(action, at, "a string", value);
  if (value === "") throw rangeError(action, at, "a non-empty string", value);
};

/** Bytes or text: a `Uint8Array` or a string. */
export const bytesOrText: Check = (value, at, action) => {
  if (typeof value !== "string" && !(value instanceof Uint8Array)) {
    throw typeError(action, at, "a string or a Uint8Array", value);
  }
};

/** An `AbortSignal` (anything with `aborted` and `addEventListener`, so any realm's). */
export const abortSignal: Check = (value, at, action) => {
  const signal = value as { aborted?: unknown; addEventListener?: unknown } | null;
  if (
    typeof signal !== "object" || signal === null || typeof signal.aborted !== "boolean" ||
    typeof signal.addEventListener !== "function"
  ) {
    throw typeError(action, at, "an AbortSignal", value);
  }
};

/** One of `values`; a string close to one of them gets it suggested. */
export function oneOfValues(...values: readonly (string | boolean)[]): Check {
  const expected = `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`;
  const names = values.filter((v): v is string => typeof v === "string");
  return (value, at, action) => {
    if (values.includes(value as string | boolean)) return;
    const hint = typeof value === "string" ? didYouMean(value, names) : "";
    throw new TypeError(`Cannot ${action}: ${at} must be ${expected}, got ${describeValue(value)}${hint}`);
  };
}

/** An integer in [`min`, `max`], or `Infinity` when `infinite` says so. */
export function integer(min: number, max: number = Number.MAX_SAFE_INTEGER, infinite = false): Check {
  const bounds = max !== Number.MAX_SAFE_INTEGER
    ? `an integer from ${min} to ${max}`
    : min === 0
    ? "a non-negative integer"
    : min === 1
    ? "a positive integer"
    : `an integer of at least ${min}`;
  const expected = infinite ? `${bounds}, or Infinity` : bounds;
  return (value, at, action) => {
    if (typeof value !== "number") throw typeError(action, at, expected, value);
    if (infinite && value === Infinity) return;
    if (!Number.isInteger(value) || value < min || value > max) throw rangeError(action, at, expected, value);
  };
}

/** The longest delay `setTimeout` takes as it is, in milliseconds (2^31 − 1). */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A duration in milliseconds: a number from `min` to {@linkcode MAX_TIMER_MS}, or `Infinity` when
 * `infinite` says so.
 */
export function milliseconds(min: number, infinite = false): Check {
  const expected = `a number of milliseconds from ${min} to ${MAX_TIMER_MS}${
    infinite ? ", or Infinity" : ""
  }`;
  return (value, at, action) => {
    if (typeof value !== "number") throw typeError(action, at, expected, value);
    if (!(value >= min && (value <= MAX_TIMER_MS || (infinite && value === Infinity)))) {
      throw rangeError(action, at, expected, value);
    }
  };
}

/** An array whose items pass `item` (any items when omitted). */
export function arrayOf(item: Check = anyValue, expected = "an array"): Check {
  return (value, at, action) => {
    if (!Array.isArray(value)) throw typeError(action, at, expected, value);
    value.forEach((v, i) => item(v, `${at}[${i}]`, action));
  };
}

/** A value that passes `first`, or else `second` (whose error is the one reported). */
export function either(first: Check, second: Check): Check {
  return (value, at, action) => {
    try {
      first(value, at, action);
    } catch {
      second(value, at, action);
    }
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * An options object: each own name must be in `fields`, whose check its value must pass
 * (`undefined` counts as absent); required fields must be there. An unknown name is refused with
 * the nearest known name, or with `elsewhere(name)`: where that name belongs instead.
 *
 * @example
 * ```ts
 * import { integer, optionsOf } from "./options_check.ts";
 * const shutdown = optionsOf("shutdown option", { timeoutMs: integer(0) });
 * shutdown({ timeotMs: 5 }, "options", "shut down"); // TypeError: ... did you mean timeoutMs?
 * ```
 */
export function optionsOf(
  noun: string,
  fields: Readonly<Record<string, Check>>,
  elsewhere?: (name: string) => string | undefined,
): Check {
  const requiredNames = Object.keys(fields).filter((name) => fields[name]!.required);
  const check = (value: unknown, at: string, action: string): void => {
    if (!isPlainObject(value)) throw typeError(action, at, "an object", value);
    for (const name of Object.keys(value)) {
      const field = fields[name];
      if (field === undefined) {
        const hint = elsewhere?.(name) ?? didYouMean(name, Object.keys(fields));
        throw new TypeError(`Cannot ${action}: unknown ${noun} ${name} in ${at}${hint}`);
      }
      if (value[name] !== undefined) field(value[name], `${at}.${name}`, action);
    }
    for (const name of requiredNames) {
      if (value[name] === undefined) throw new TypeError(`Cannot ${action}: ${at}.${name} is required`);
    }
  };
  return check;
}

/**
 * An address-like options object picked by its `transport` field: one table per transport. A
 * name that only another transport takes is refused as such ("cert is for tls listeners").
 *
 * @example
 * ```ts
 * import { byTransport, integer } from "./options_check.ts";
 * const listener = byTransport("listener", {
 *   tcp: { port: integer(0, 65535) },
 *   unix: { mode: integer(0, 0o777) },
 * });
 * listener({ transport: "tpc" }, "options.listeners[0]", "create IoCore"); // did you mean tcp?
 * ```
 */
export function byTransport(noun: string, tables: Readonly<Record<string, Record<string, Check>>>): Check {
  const kinds = Object.keys(tables);
  const transport = required(oneOfValues(...kinds));
  const checks: Record<string, Check> = {};
  for (const kind of kinds) {
    const elsewhere = (name: string): string | undefined => {
      const owners = kinds.filter((other) => name in tables[other]!);
      if (owners.length) return ` (it is for ${owners.join(" and ")} ${noun}s, not ${kind})`;
      // `tls: {...}` or `tsl`: the kind is chosen by `transport`, and its options sit beside it.
      const nearKind = nearestName(name, kinds);
      return nearKind &&
        `; did you mean ${nearKind}? That is transport: "${nearKind}", its options beside it`;
    };
    checks[kind] = optionsOf(`${noun} option`, { transport, ...tables[kind] }, elsewhere);
  }
  return (value, at, action) => {
    if (!isPlainObject(value)) throw typeError(action, at, "an object", value);
    transport(value.transport, `${at}.transport`, action);
    checks[value.transport as string]!(value, at, action);
  };
}

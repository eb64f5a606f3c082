/**
 * A small typed schema language for the config file.
 *
 * Each field carries its type, its help text, its default and an example, so that validation, the typed config,
 * `archive.yaml.example` checks and the variable table in docs/TECHNICAL.md all come from one declaration
 * (see src/config/schema.ts). Parsing never coerces silently: `"30"` is not a number, `yes` is not a boolean.
 */
import { parseDuration, parseSize } from "./units.ts";

/** Thrown while validating; `path` is the dotted key path ("source.url"). Turned into a ConfigError by load.ts. */
export class FieldError extends Error {
  constructor(readonly path: string, message: string, readonly hint = "") {
    super(message);
  }
}

type ParseFn<T> = (raw: unknown, path: string) => T;

/** One config key. `T` is the type of the validated value. */
export class Field<T> {
  constructor(
    readonly type: string,
    readonly parseFn: ParseFn<T>,
    readonly help = "",
    readonly required = true,
    readonly defaultValue: T | undefined = undefined,
    readonly example: unknown = undefined,
    readonly children: Record<string, Field<unknown>> | undefined = undefined,
    readonly variants: Record<string, Field<unknown>> | undefined = undefined,
    /** A secret triple's inline key: "required" when one of the three must be given. */
    readonly secret: false | "optional" | "required" = false,
    /** A file the run trusts (a key, a CA, a program it runs): refused at load when others could change it. */
    readonly trusted = false,
  ) {}

  private with(p: Partial<Field<unknown>>): Field<any> {
    const f = Object.create(Field.prototype);
    Object.assign(f, this, p);
    return f;
  }

  /** The key may be absent; the value is then `undefined`. */
  optional(): Field<T | undefined> {
    return this.with({ required: false, defaultValue: undefined });
  }

  /** The key may be absent; the value is then `v`. */
  default(v: T): Field<T> {
    return this.with({ required: false, defaultValue: v });
  }

  /** Help text (one sentence or two) and an example value for docs and the example config. */
  doc(help: string, example?: unknown): Field<T> {
    return this.with({ help, example });
  }

  /** Mark as a secret: never shown in docs examples, logs or dumps. */
  markSecret(required = false): Field<T> {
    return this.with({ secret: required ? "required" : "optional" });
  }

  /** Mark as a file the run trusts: writable by anyone but its owner, or owned by another user, is refused. */
  trust(): Field<T> {
    return this.with({ trusted: true });
  }

  /** Add a check over the parsed value (cross-key rules); `fn` returns [subkey, message] when something is wrong. */
  refine(fn: (v: T) => [string, string] | undefined): Field<T> {
    const inner = this.parseFn;
    return this.with({
      parseFn: (raw: unknown, path: string) => {
        const v = inner(raw, path);
        const bad = fn(v);
        if (bad) throw new FieldError(path ? `${path}.${bad[0]}` : bad[0], bad[1]);
        return v;
      },
    });
  }

  /** Parse a present value. */
  parse(raw: unknown, path: string): T {
    return this.parseFn(raw, path);
  }

  /** Parse a value that may be absent, applying the default or reporting the missing key. */
  parseMaybe(raw: unknown, path: string): T {
    if (raw === undefined || raw === null) {
      if (this.children && this.required) return this.parseFn({}, path); // sections: defaults inside
      if (this.required) throw new FieldError(path, `is required (${this.type})`, this.help);
      return this.defaultValue as T;
    }
    return this.parseFn(raw, path);
  }
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** A string, with an optional extra check returning an error message. */
export function str(check?: (s: string) => string | undefined, type = "string"): Field<string> {
  return new Field<string>(type, (raw, path) => {
    if (typeof raw !== "string") throw new FieldError(path, `expected ${type}, got ${typeName(raw)}`);
    const problem = check?.(raw);
    if (problem) throw new FieldError(path, problem);
    return raw;
  });
}

/** A non-empty string. */
export function nonEmpty(type = "string"): Field<string> {
  return str((s) => (s.trim() === "" ? `expected a non-empty ${type}` : undefined), type);
}

/** An absolute filesystem path. */
export function absPath(): Field<string> {
  return str((s) => (s.startsWith("/") ? undefined : `expected an absolute path (starting with /), got ${JSON.stringify(s)}`), "path");
}

/** An integer within [min, max]. */
export function int(min: number, max = Number.MAX_SAFE_INTEGER): Field<number> {
  return new Field<number>(`integer ${min}..${max === Number.MAX_SAFE_INTEGER ? "" : max}`, (raw, path) => {
    if (typeof raw !== "number" || !Number.isInteger(raw)) throw new FieldError(path, `expected an integer, got ${typeName(raw)}`);
    if (raw < min || raw > max) throw new FieldError(path, `expected an integer from ${min} to ${max}, got ${raw}`);
    return raw;
  });
}

/** true or false (YAML booleans only). */
export function bool(): Field<boolean> {
  return new Field<boolean>("boolean", (raw, path) => {
    if (typeof raw !== "boolean") throw new FieldError(path, `expected true or false, got ${typeName(raw)}`);
    return raw;
  });
}

/** One of a fixed set of strings. */
export function oneOf<const V extends string>(...values: V[]): Field<V> {
  return new Field<V>(values.join(" | "), (raw, path) => {
    if (typeof raw !== "string" || !values.includes(raw as V)) {
      throw new FieldError(path, `expected one of ${values.join(", ")}, got ${typeName(raw)}`);
    }
    return raw as V;
  });
}

/** The longest timer a JavaScript runtime can wait (2^31-1 ms, about 24.8 days): beyond it a timer fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration such as `30s`, `5m`, `12h`, `30d`, `1h30m`, in milliseconds. `timer()` bounds it for use as a
 * timeout or delay (24 days at most): a timer past 24.8 days would overflow and fire at once.
 */
export function duration(): Field<number> & { timer(): Field<number> } {
  const parse = (raw: unknown, path: string) => {
    const ms = typeof raw === "string" ? parseDuration(raw) : undefined;
    if (ms === undefined) {
      throw new FieldError(path, `expected a duration like 30s, 5m, 12h, 30d, got ${typeName(raw)}`);
    }
    return ms;
  };
  const f = new Field<number>("duration", parse) as Field<number> & { timer(): Field<number> };
  f.timer = () =>
    new Field<number>("duration up to 24d", (raw, path) => {
      const ms = parse(raw, path);
      if (ms < 1 || ms > 24 * 86_400_000) {
        throw new FieldError(path, `${raw} is out of range for a timeout: give between 1ms and 24d (timers overflow past 24.8 days)`);
      }
      return ms;
    });
  return f;
}

/** A size such as `500MB`, `20GiB`, or a plain number of bytes. */
export function size(): Field<number> {
  return new Field<number>("size", (raw, path) => {
    const n = typeof raw === "number" && Number.isInteger(raw) && raw >= 0 ? raw : typeof raw === "string" ? parseSize(raw) : undefined;
    if (n === undefined) throw new FieldError(path, `expected a size like 500MB, 20GiB or a number of bytes, got ${typeName(raw)}`);
    return n;
  });
}

/** A list whose items all parse with `item`. */
export function list<T>(item: Field<T>): Field<T[]> & { item: Field<T> } {
  const f = new Field<T[]>(`list of ${item.type}`, (raw, path) => {
    const arr = typeof raw === "string" && !item.children && !item.variants ? [raw] : raw;
    if (!Array.isArray(arr)) throw new FieldError(path, `expected a list, got ${typeName(raw)}`);
    return arr.map((v, i) => item.parse(v, `${path}[${i}]`));
  });
  // The item's field (secrets inside a list of mappings, the JSON Schema); copied along by optional(), doc()...
  return Object.assign(f, { item });
}

type Shape = Record<string, Field<any>>;
type Out<S extends Shape> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/** Levenshtein distance, for did-you-mean on unknown keys. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** The closest known key to `key`, if it is close enough to be a typo. */
export function didYouMean(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function checkMapping(raw: unknown, path: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FieldError(path || "(top level)", `expected a mapping of keys, got ${typeName(raw)}`);
  }
  return raw as Record<string, unknown>;
}

function rejectUnknown(m: Record<string, unknown>, known: string[], path: string): void {
  for (const key of Object.keys(m)) {
    if (!known.includes(key)) {
      const guess = didYouMean(key, known);
      throw new FieldError(
        path ? `${path}.${key}` : key,
        `unknown key${guess ? `; did you mean '${guess}'?` : ""}`,
        `known keys${path ? ` under ${path}` : ""}: ${known.join(", ")}`,
      );
    }
  }
}

/** A mapping with known keys; unknown keys are errors with a did-you-mean. */
export function obj<S extends Shape>(shape: S): Field<Out<S>> {
  const parse = (raw: unknown, path: string): Out<S> => {
    const m = checkMapping(raw, path);
    rejectUnknown(m, Object.keys(shape), path);
    const out: Record<string, unknown> = {};
    for (const [k, f] of Object.entries(shape)) out[k] = f.parseMaybe(m[k], path ? `${path}.${k}` : k);
    return out as Out<S>;
  };
  return new Field<Out<S>>("mapping", parse, "", true, undefined, undefined, shape);
}

/**
 * A mapping whose shape depends on its `type` key (the destination: local, sftp, ...).
 * Each variant is an `obj` that includes the `type` key itself.
 */
export function tagged<V extends Record<string, Field<any>>>(
  variants: V,
): Field<{ [K in keyof V]: V[K] extends Field<infer T> ? T : never }[keyof V]> {
  type R = { [K in keyof V]: V[K] extends Field<infer T> ? T : never }[keyof V];
  const names = Object.keys(variants);
  const parse = (raw: unknown, path: string) => {
    const m = checkMapping(raw, path);
    const t = m.type;
    if (t === undefined) throw new FieldError(`${path}.type`, `is required: one of ${names.join(", ")}`);
    if (typeof t !== "string" || !(t in variants)) {
      const guess = typeof t === "string" ? didYouMean(t, names) : undefined;
      throw new FieldError(
        `${path}.type`,
        `expected one of ${names.join(", ")}, got ${typeName(t)}${guess ? `; did you mean '${guess}'?` : ""}`,
      );
    }
    return variants[t].parse(m, path);
  };
  return new Field<R>("mapping (by type)", parse as ParseFn<R>, "", true, undefined, undefined, undefined, variants);
}

/**
 * The three ways to give a secret: inline (only in a 0600 file), from a file, or from an environment variable.
 * Returns the fields `<name>`, `<name>_file`, `<name>_env`; load.ts resolves them into a {@link Secret}.
 */
export function secretFields<N extends string>(
  name: N,
  what: string,
  required = false,
): { [K in N | `${N}_file` | `${N}_env`]: Field<string | undefined> } {
  return {
    [name]: nonEmpty("string").optional().markSecret(required).doc(
      `${what}, inline. Refused unless the config file is mode 0600 (or stricter); prefer ${name}_file.`,
    ),
    [`${name}_file`]: absPath().trust().optional().doc(
      `File holding the ${what} (first line; keep it mode 0600).`,
      `/etc/archivist/${name}.secret`,
    ),
    [`${name}_env`]: nonEmpty("variable name").optional().doc(`Environment variable holding the ${what}.`),
  } as { [K in N | `${N}_file` | `${N}_env`]: Field<string | undefined> };
}

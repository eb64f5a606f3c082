/**
 * The JSON Schema (draft 2020-12) of archive.yaml, generated from src/config/schema.ts like the docs table, so that
 * an editor (yaml-language-server) completes and checks the config with the same keys, types, defaults and help.
 * `deno task docs` writes it to archive.schema.json; tests/docs_test.ts fails when it is out of date.
 */
import { configSchema } from "../src/config/schema.ts";
import type { Field } from "../src/config/fields.ts";
import { shortDuration, shortSize } from "../src/config/units.ts";
import { PER_RUN_KEYS } from "../src/config/jobs.ts";

type Json = Record<string, unknown>;

const DURATION = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d|w))+$";
const SIZE = "^[0-9]+(\\.[0-9]+)?\\s*([kKmMgGtT]i?[bB]?|[bB])?$";

function typeSchema(type: string): Json {
  if (type === "boolean") return { type: "boolean" };
  const int = /^integer (\d+)\.\.(\d*)$/.exec(type);
  if (int) return { type: "integer", minimum: Number(int[1]), ...(int[2] ? { maximum: Number(int[2]) } : {}) };
  if (type.startsWith("duration")) return { type: "string", pattern: DURATION };
  if (type === "size") return { anyOf: [{ type: "integer", minimum: 0 }, { type: "string", pattern: SIZE }] };
  if (type === "file mode") {
    return { anyOf: [{ type: "integer", minimum: 0, maximum: 7777 }, { type: "string", pattern: "^0?[0-7]{3,4}$" }] };
  }
  if (type === "name or id") {
    return { anyOf: [{ type: "integer", minimum: 0 }, { type: "string", pattern: "^[a-z_][a-z0-9_.-]*\\$?$|^[0-9]+$" }] };
  }
  if (type.startsWith("list of ")) {
    const item = typeSchema(type.slice("list of ".length));
    return { anyOf: [item, { type: "array", items: item }] };
  }
  if (type.includes(" | ")) {
    const values = type.split(" | ");
    const numeric = values.every((v) => /^\d+(\.\d+)?$/.test(v));
    return numeric ? { anyOf: [{ enum: values }, { enum: values.map(Number) }] } : { enum: values };
  }
  return { type: "string" };
}

function defaultOf(f: Field<unknown>): unknown {
  const v = f.defaultValue;
  if (v === undefined) return undefined;
  if (f.type.startsWith("duration") && typeof v === "number") return shortDuration(v);
  if (f.type === "size" && typeof v === "number") return shortSize(v);
  return v;
}

export function fieldSchema(f: Field<unknown>): Json {
  const item = (f as { item?: Field<unknown> }).item;
  if (item && (item.children || item.variants)) {
    return { type: "array", minItems: 1, items: fieldSchema(item), ...(f.help ? { description: f.help } : {}) };
  }
  if (f.variants) {
    return {
      type: "object",
      required: ["type"],
      oneOf: Object.entries(f.variants).map(([name, v]) => {
        const s = fieldSchema(v) as { properties: Json };
        s.properties.type = { const: name, description: (s.properties.type as Json).description };
        return s;
      }),
      ...(f.help ? { description: f.help } : {}),
    };
  }
  if (f.children) {
    const properties: Json = {};
    const required: string[] = [];
    for (const [k, c] of Object.entries(f.children)) {
      const cs = fieldSchema(c) as { required?: string[] };
      properties[k] = cs;
      // A key without a default is required; so is a section holding one.
      if (c.required && c.defaultValue === undefined && (!c.children || (cs.required?.length ?? 0) > 0)) required.push(k);
    }
    return {
      // A section whose keys are all commented out is YAML null, which archivist reads as "all defaults".
      type: ["object", "null"],
      properties,
      additionalProperties: false,
      ...(required.length ? { required } : {}),
      ...(f.help ? { description: f.help } : {}),
    };
  }
  const s: Json = { ...typeSchema(f.type) };
  if (f.help) s.description = f.help;
  const d = defaultOf(f);
  if (d !== undefined) s.default = d;
  if (f.example !== undefined) s.examples = [f.example];
  return s;
}

/** A schema with no key required at any depth (a job's keys may all come from the top level). */
function relaxed(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(relaxed);
  if (!s || typeof s !== "object") return s;
  const out: Json = {};
  for (const [k, v] of Object.entries(s as Json)) if (k !== "required") out[k] = relaxed(v);
  return out;
}

/** The whole schema, as the text written to archive.schema.json. */
export function jsonSchema(): string {
  const root = fieldSchema(configSchema as unknown as Field<unknown>) as Json & { properties: Json; required?: string[] };
  // jobs: (src/config/jobs.ts): each job is a partial config over the top-level defaults, without the per-run keys.
  const jobProps: Json = {};
  for (const [k, v] of Object.entries(root.properties)) {
    if ((PER_RUN_KEYS as readonly string[]).includes(k)) continue;
    jobProps[k] = k === "destination" ? { type: "object", description: (v as Json).description } : relaxed(v);
  }
  const job = (needsName: boolean) => ({
    type: "object",
    properties: jobProps,
    additionalProperties: false,
    ...(needsName ? { required: ["name"] } : {}),
  });
  root.properties = {
    ...root.properties,
    jobs: {
      description:
        "Several jobs in one file: a list of jobs (each with a name) or a mapping by name. Each job is the top-level keys deep-merged with its own (log, history and verify stay at the top level).",
      anyOf: [{ type: "array", minItems: 1, items: job(true) }, { type: "object", minProperties: 1, additionalProperties: job(false) }],
    },
  };
  const required = root.required ?? [];
  delete root.required;
  // One destination, or several, or jobs (whose keys are checked when archivist expands them).
  root.anyOf = [{ required: [...required, "destination"] }, { required: [...required, "destinations"] }, { required: ["jobs"] }];
  return JSON.stringify(
    {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "archive.schema.json",
      title: "archivist configuration (archive.yaml)",
      ...root,
    },
    null,
    2,
  ) + "\n";
}

/**
 * A JSON Schema (draft 2020-12) of the config, for editors (`"$schema"` in `config.json`,
 * taplo / Even Better TOML for `config.toml`).
 */
import { BLUEPRINT_SPEC, type Spec } from "./internal/spec.js";

const SIZE_PATTERN = "^\\s*\\d+(\\.\\d+)?\\s*(kB|KiB|MB|MiB|GB|GiB|TB|TiB)?\\s*$";

function toSchema(spec: Spec): Record<string, unknown> {
  const d = spec.description ? { description: spec.description } : {};
  switch (spec.kind) {
    case "string":
      return { type: "string", ...d };
    case "boolean":
      return { type: "boolean", ...d };
    case "integer":
      return { type: "integer", minimum: spec.min, maximum: spec.max, ...d };
    case "size":
      return {
        oneOf: [
          { type: "integer", minimum: 0 },
          { type: "string", pattern: SIZE_PATTERN },
        ],
        ...d,
      };
    case "owner":
      return { oneOf: [{ type: "integer", minimum: 0 }, { type: "string" }], ...d };
    case "any":
      return { ...d };
    case "array":
      return { type: "array", items: toSchema(spec.items), ...d };
    case "object": {
      const properties: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(spec.fields)) properties[k] = toSchema(v);
      return {
        type: "object",
        properties,
        additionalProperties: false,
        ...(spec.required && spec.required.length > 0 ? { required: [...spec.required] } : {}),
        ...d,
      };
    }
  }
}

/** The JSON Schema of `config.json` / `config.toml` (plain data; `JSON.stringify` it). */
export function blueprintJsonSchema(): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://imagemode.dev/schemas/blueprint.json",
    title: "bootc-image-builder config",
    ...toSchema(BLUEPRINT_SPEC),
  };
}

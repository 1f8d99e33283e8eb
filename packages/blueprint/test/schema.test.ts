import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { blueprintJsonSchema, formatForFile, parseBlueprint } from "../src/index.js";

const FIXTURES = join(import.meta.dirname, "fixtures");

describe("JSON Schema", () => {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  const validate = ajv.compile(blueprintJsonSchema());

  it("is a valid draft 2020-12 schema that accepts every documentation example", () => {
    for (const f of readdirSync(FIXTURES).filter(
      (n) => n.endsWith(".toml") || n.endsWith(".json"),
    )) {
      const value = parseBlueprint(readFileSync(join(FIXTURES, f), "utf8"), formatForFile(f));
      expect(validate(value) ? [] : validate.errors, f).toEqual([]);
    }
  });

  it("rejects unknown keys, wrong types and bad size strings like the validator does", () => {
    expect(validate({ nmae: "x" })).toBe(false);
    expect(validate({ customizations: { user: [{ name: "a", uid: "1" }] } })).toBe(false);
    expect(validate({ customizations: { user: [{ password: "x" }] } })).toBe(false);
    expect(
      validate({ customizations: { filesystem: [{ mountpoint: "/", minsize: "10 GB2" }] } }),
    ).toBe(false);
    expect(
      validate({ customizations: { filesystem: [{ mountpoint: "/", minsize: "10 GiB" }] } }),
    ).toBe(true);
  });
});

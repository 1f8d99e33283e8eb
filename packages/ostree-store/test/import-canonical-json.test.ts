import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../src/import/canonical-json.js";

describe("canonical JSON (OLPC, as ostree-ext stores manifests)", () => {
  it("sorts keys by bytes, drops whitespace, escapes only quote and backslash", () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x"y\\z\n'], Z: {} })).toBe(
      '{"Z":{},"a":[true,null,"x\\"y\\\\z\n"],"b":1}',
    );
    expect(canonicalJson({ é: 1, z: 2 })).toBe('{"z":2,"é":1}');
    expect(() => canonicalJson({ a: 1.5 })).toThrow(/integers/);
  });

  const json = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: "small" },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.string().filter((s) => !/[\u0000-\u001f]/.test(s)),
      fc.array(tie("v"), { maxLength: 4 }),
      fc.dictionary(
        fc.string().filter((s) => s !== "__proto__" && !/[\u0000-\u001f]/.test(s)),
        tie("v"),
        { maxKeys: 4 },
      ),
    ),
  })).v;
  test.prop([json])("parses back to the same value and is idempotent", (v) => {
    const s = canonicalJson(v);
    expect(JSON.parse(s)).toEqual(v);
    expect(canonicalJson(JSON.parse(s))).toBe(s);
  });
});

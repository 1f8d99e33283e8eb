/**
 * GVariant codec: property tests (random types and values round-trip; re-encoding parsed bytes is
 * byte-identical) and GLib as the oracle: random values are handed to `ostree commit
 * --add-metadata=K=<GVariant text>`, GLib serializes them, and we must decode exactly our values
 * and re-encode the whole commit byte for byte.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeCommit,
  decodeVariant,
  encodeCommit,
  encodeVariant,
  type GValue,
  objectPath,
  offsetWidth,
  parseType,
  Variant,
} from "../src/index.js";
import { ostree, requireOstree, tempDir } from "./ostree-cli.js";

type Gen = { type: string; value: fc.Arbitrary<GValue> };

const safeString = fc.string({
  unit: fc.constantFrom("a", "b", "Z", " ", "'", "\\", "é", "日", "\u{1F600}", "-", "_", "0"),
  maxLength: 12,
});

const leaf: fc.Arbitrary<Gen> = fc.constantFrom<Gen>(
  { type: "b", value: fc.boolean() },
  { type: "y", value: fc.integer({ min: 0, max: 255 }) },
  { type: "n", value: fc.integer({ min: -32768, max: 32767 }) },
  { type: "q", value: fc.integer({ min: 0, max: 65535 }) },
  { type: "i", value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) },
  { type: "u", value: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
  { type: "x", value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) },
  { type: "t", value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  {
    type: "d",
    // GLib's text parser refuses subnormals (ERANGE), so stay in the normal range
    value: fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .map((d) => (Object.is(d, -0) ? 0 : d))
      .filter((d) => d === 0 || Math.abs(d) > 1e-300),
  },
  { type: "s", value: safeString },
  { type: "ay", value: fc.uint8Array({ maxLength: 300 }) },
);

function container(depth: number): fc.Arbitrary<Gen> {
  if (depth <= 0) return leaf;
  const sub = container(depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    sub.map((g) => ({
      type: `a${g.type}`,
      // `ay` is always a Uint8Array in the JS mapping
      value: g.type === "y" ? fc.uint8Array({ maxLength: 4 }) : fc.array(g.value, { maxLength: 4 }),
    })),
    sub.map((g) => ({ type: `m${g.type}`, value: fc.option(g.value, { nil: null }) })),
    fc.array(sub, { minLength: 1, maxLength: 4 }).map((gs) => ({
      type: `(${gs.map((g) => g.type).join("")})`,
      value: fc.tuple(...gs.map((g) => g.value)) as fc.Arbitrary<GValue>,
    })),
    sub.map((g) => ({
      type: `a{s${g.type}}`,
      value: fc.array(fc.tuple(safeString, g.value), { maxLength: 3 }) as fc.Arbitrary<GValue>,
    })),
    sub.map((g) => ({ type: "v", value: g.value.map((v) => new Variant(g.type, v)) })),
  );
}

// `mmT` cannot distinguish Just(Nothing) from Nothing in the JS mapping; keep maybes un-nested.
const typed = container(3)
  .filter((g) => !/m[m]/.test(g.type))
  .chain((g) => g.value.map((value) => ({ type: g.type, value })));

describe("GVariant codec properties", () => {
  test.prop([typed], { numRuns: 400 })(
    "decode(encode(v)) = v and encode(decode(bytes)) = bytes",
    ({ type, value }) => {
      const bytes = encodeVariant(type, value);
      const back = decodeVariant(type, bytes);
      expect(back).toEqual(value);
      expect(encodeVariant(type, back)).toEqual(bytes);
    },
  );

  test.prop([fc.array(fc.tuple(safeString, typed), { maxLength: 6 })], { numRuns: 200 })(
    "a{sv} keeps insertion order",
    (entries) => {
      const v = entries.map(([k, t]) => [k, new Variant(t.type, t.value)]);
      const back = decodeVariant("a{sv}", encodeVariant("a{sv}", v)) as GValue[];
      expect(back.map((e) => (e as GValue[])[0])).toEqual(entries.map((e) => e[0]));
    },
  );

  it("offset widths: 1, 2 and 4 bytes chosen by size; nested containers choose independently", () => {
    const small = encodeVariant("as", ["a", "b"]);
    expect(small.length).toBe(6);
    const mid = encodeVariant("as", ["x".repeat(300)]);
    expect(mid.length).toBe(303); // 301 bytes + one 2-byte offset
    expect(offsetWidth(mid.length)).toBe(2);
    const big = encodeVariant("aay", [new Uint8Array(70000), new Uint8Array(1)]);
    expect(big.length).toBe(70001 + 8);
    expect(decodeVariant("aay", big)).toEqual([new Uint8Array(70000), new Uint8Array(1)]);
    const nested = encodeVariant("(asay)", [["a"], new Uint8Array(300)]);
    expect(decodeVariant("(asay)", nested)).toEqual([["a"], new Uint8Array(300)]);
    // tuple offsets are stored in reverse member order
    const t = encodeVariant("(ssss)", ["a", "bb", "ccc", "d"]);
    expect([...t.slice(-3)]).toEqual([9, 5, 2]);
  });

  it("rejects malformed input with PARSE errors", () => {
    expect(() => decodeVariant("s", Uint8Array.from([0x61]))).toThrow(/NUL-terminated/);
    expect(() => decodeVariant("u", Uint8Array.from([1, 2]))).toThrow(/size/);
    expect(() => decodeVariant("as", Uint8Array.from([0x61, 0x00, 0x09]))).toThrow();
    expect(() => parseType("(s")).toThrow();
    expect(() => parseType("{vs}")).toThrow();
    expect(() => encodeVariant("u", -1)).toThrow();
    expect(() => encodeVariant("s", "a\0b")).toThrow();
  });
});

/** GVariant text with a type annotation on every value, for GLib's parser. */
function gtext(type: string, v: GValue): string {
  const t = parseType(type);
  switch (t.kind) {
    case "basic":
      if (t.char === "b") return v ? "true" : "false";
      if (t.char === "d") return `@d ${(v as number).toExponential()}`;
      return `@${type} ${String(v)}`;
    case "string":
      return `'${String(v).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
    case "variant":
      return `<${gtext((v as Variant).type, (v as Variant).value)}>`;
    case "maybe":
      return v === null ? `@${type} nothing` : `@${type} just ${gtext(t.elem!.str, v)}`;
    case "array": {
      if (v instanceof Uint8Array) return `@ay [${[...v].join(", ")}]`;
      const arr = v as GValue[];
      if (t.elem!.str.startsWith("{")) {
        const [kt, vt] = t.elem!.members!;
        return `@${type} {${arr.map((e) => `${gtext(kt!.str, (e as GValue[])[0]!)}: ${gtext(vt!.str, (e as GValue[])[1]!)}`).join(", ")}}`;
      }
      return `@${type} [${arr.map((x) => gtext(t.elem!.str, x)).join(", ")}]`;
    }
    case "tuple": {
      const arr = v as GValue[];
      const parts = t.members!.map((m, i) => gtext(m.str, arr[i]!));
      return `@${type} (${parts.join(", ")}${parts.length === 1 ? "," : ""})`;
    }
  }
}

describe("GLib (via ostree commit --add-metadata) as the oracle", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    await requireOstree();
    dir = await tempDir("ostree-gv-");
    await ostree([`--repo=${join(dir.path, "repo")}`, "init", "--mode=archive"]);
    await import("node:fs/promises").then((f) => f.mkdir(join(dir.path, "tree")));
  });
  afterAll(async () => dir?.cleanup());

  test.prop([fc.array(typed, { minLength: 1, maxLength: 12 })], { numRuns: 25 })(
    "GLib's bytes decode to our values and re-encode identically",
    async (values) => {
      const repo = join(dir.path, "repo");
      const args = values.map((v, i) => `--add-metadata=k${i}=${gtext(v.type, v.value)}`);
      const csum = (
        await ostree([
          `--repo=${repo}`,
          "commit",
          "--no-bindings",
          "--orphan",
          "--timestamp=@1",
          ...args,
          `--tree=dir=${join(dir.path, "tree")}`,
        ])
      ).trim();
      const bytes = new Uint8Array(await readFile(join(repo, objectPath(csum, "commit"))));
      const c = decodeCommit(bytes);
      expect(c.metadata.map(([k]) => k)).toEqual(values.map((_, i) => `k${i}`));
      for (const [i, v] of values.entries())
        expect(c.metadata[i]![1]).toEqual(new Variant(v.type, v.value));
      expect(encodeCommit(c)).toEqual(bytes);
    },
  );
});

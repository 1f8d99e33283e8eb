/** Property tests of the small pure codecs and planners of deploy-manager. */
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  type DeploymentListItem,
  decodeOstreeStagedRecord,
  encodeOstreeStagedRecord,
  type OstreeStagedRecord,
  osNameFromRelease,
  parseDeploymentName,
  parseOsRelease,
  planWriteDeployments,
  type Sysroot,
} from "../src/index.js";

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const emptySysroot = (v: 0 | 1): Sysroot => ({
  root: "/s",
  bootversion: v,
  subbootversion: 0,
  subbootversions: [0, 0],
  loaderFiles: [],
  deployments: [],
  booted: null,
  staged: null,
  stateroots: [],
  runDir: "/s/run",
});

const stagedRef = fc.record({
  name: fc.tuple(hex64, fc.nat({ max: 99 })).map(([c, n]) => `${c}.${n}`),
  osname: fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/),
  bootcsum: hex64,
});
const stagedRecord: fc.Arbitrary<OstreeStagedRecord> = fc.record(
  {
    target: stagedRef,
    mergeDeployment: stagedRef,
    kargs: fc.array(fc.string({ unit: "grapheme-ascii", maxLength: 20 }), { maxLength: 6 }),
    overlayInitrds: fc.array(hex64, { maxLength: 2 }),
  },
  { requiredKeys: ["target"] },
);

describe("codecs", () => {
  test.prop([stagedRecord])("libostree staged-deployment records round-trip", (r) => {
    const bytes = encodeOstreeStagedRecord(r);
    expect(decodeOstreeStagedRecord(bytes)).toEqual(r);
    expect(encodeOstreeStagedRecord(decodeOstreeStagedRecord(bytes))).toEqual(bytes);
  });

  test.prop([fc.uint8Array({ maxLength: 64 })])(
    "staged-deployment garbage: a PARSE error or a record, never anything else",
    (b) => {
      try {
        expect(decodeOstreeStagedRecord(b).target.name).toBeTypeOf("string");
      } catch (e) {
        expect(e).toMatchObject({ code: "PARSE" });
      }
    },
  );

  test.prop([hex64, fc.nat()])("deployment names round-trip", (c, n) => {
    expect(parseDeploymentName(`${c}.${n}`)).toEqual({ checksum: c, serial: n });
  });
  test.prop([
    fc.oneof(
      fc.string(),
      hex64.map((c) => `${c}.x`),
      hex64.map((c) => `${c.slice(1)}.0`),
    ),
  ])("anything else is rejected (null), never thrown on", (s) => {
    expect(parseDeploymentName(s) === null).toBe(!/^[0-9a-f]{64}\.[0-9]+$/.test(s));
  });
  test.prop([fc.stringMatching(/^[A-Za-z0-9._()-][A-Za-z0-9 ._()-]{0,29}$/), fc.boolean()])(
    "os-release values, quoted or not",
    (name, quoted) => {
      const text = `ID=x\nPRETTY_NAME=${quoted ? `"${name}"` : name.replace(/ /g, "")}\n`;
      expect(osNameFromRelease(text)).toBe(quoted ? name : name.replace(/ /g, ""));
      expect(parseOsRelease(text).get("ID")).toBe("x");
    },
  );

  const item = fc.record({
    stateroot: fc.constantFrom("a", "b"),
    checksum: hex64,
    serial: fc.nat({ max: 3 }),
    bootcsum: fc.constantFrom("1".repeat(64), "2".repeat(64)),
    kver: fc.constant("6.1.0"),
    kargs: fc.constantFrom("rw", "rw quiet"),
    hasInitramfs: fc.constant(true),
    osName: fc.constant("Test OS"),
    version: fc.constantFrom(null, "1"),
  }) as fc.Arbitrary<DeploymentListItem>;

  test.prop([
    fc.array(item, { minLength: 1, maxLength: 6 }),
    fc.constantFrom(0 as const, 1 as const),
  ])(
    "a list write: entries K = n − index, boot serials count per bootcsum, refs per index",
    (list, v) => {
      const plan = planWriteDeployments(emptySysroot(v), list);
      expect(plan.bootconfigSwap).toBe(true);
      expect(plan.newBootversion).toBe(v === 0 ? 1 : 0);
      expect(plan.entries.map((e) => e.fileName)).toEqual(
        list.map((d, i) => `ostree-${list.length - i}-${d.stateroot}.conf`),
      );
      const seen = new Map<string, number>();
      plan.bootlinks.forEach((l, i) => {
        const d = list[i]!;
        const s = seen.get(d.bootcsum) ?? 0;
        seen.set(d.bootcsum, s + 1);
        expect(l.path.endsWith(`/${d.stateroot}/${d.bootcsum}/${s}`)).toBe(true);
        expect(plan.entries[i]!.text).toContain(
          `ostree=/ostree/boot.${plan.newBootversion}/${d.stateroot}/${d.bootcsum}/${s}`,
        );
        expect(l.target).toBe(`../../../deploy/${d.stateroot}/deploy/${d.checksum}.${d.serial}`);
      });
      expect(plan.refs.map((r) => r.name)).toEqual(
        list.map((_, i) => `ostree/${plan.newBootversion}/${plan.newSubbootversion}/${i}`),
      );
    },
  );
});

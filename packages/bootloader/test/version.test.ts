import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { compareVersions, strverscmp } from "../src/index.js";

describe("compareVersions (UAPI version format / systemd strverscmp_improved)", () => {
  // Increasing order, from systemd's test-string-util.c (test_strverscmp_improved).
  const ordered = [
    "~1",
    "",
    "ab",
    "abb",
    "abc",
    "0001",
    "002",
    "12",
    "122",
    "122.9",
    "123~rc1",
    "123",
    "123-a",
    "123-a.1",
    "123-a1",
    "123-a1.1",
    "123-3",
    "123-3.1",
    "123^patch1",
    "123^1",
    "123.a-1",
    "123.1-1",
    "123a-1",
    "124",
  ];
  it("orders the systemd test list", () => {
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        expect([ordered[i], ordered[j], compareVersions(ordered[i], ordered[j])]).toEqual([
          ordered[i],
          ordered[j],
          Math.sign(i - j),
        ]);
      }
    }
  });
  it("treats leading zeros and invalid characters like systemd", () => {
    expect(compareVersions("00123", "123")).toBe(0);
    expect(compareVersions("1_", "1")).toBe(0);
    expect(compareVersions("1.2", "1_2")).toBe(-1);
    expect(compareVersions(undefined, "1")).toBe(-1);
    expect(compareVersions(undefined, "~")).toBe(1);
  });
  const ver = fc.stringMatching(/^[0-9a-z.~^_-]{0,8}$/);
  test.prop([ver, ver])("antisymmetric", (a, b) => {
    expect(compareVersions(a, b)).toBe(-compareVersions(b, a) || 0);
  });
  test.prop([ver, ver, ver])("transitive", (a, b, c) => {
    const s = [a, b, c].sort(compareVersions);
    expect(compareVersions(s[0], s[2])).toBeLessThanOrEqual(0);
  });
});

describe("strverscmp (GNU, what ostree sorts by)", () => {
  it("follows the glibc manual's example order", () => {
    const ordered = ["000", "00", "01", "010", "09", "0", "1", "9", "10"];
    for (let i = 0; i + 1 < ordered.length; i++)
      expect(strverscmp(ordered[i] ?? "", ordered[i + 1] ?? "")).toBe(-1);
    expect(strverscmp("ostree-10", "ostree-9")).toBe(1);
    expect(strverscmp("a", "a")).toBe(0);
  });
  test.prop([fc.nat(100000), fc.nat(100000)])("compares decimal numbers by value", (a, b) => {
    expect(strverscmp(String(a), String(b))).toBe(Math.sign(a - b));
  });
});

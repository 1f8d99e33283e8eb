import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import {
  blessEntryFileName,
  compareBootEntries,
  countBootAttempt,
  createBlsEntry,
  getBlsOptions,
  getBlsValue,
  getBlsValues,
  parseBlsEntry,
  parseEntryFileName,
  serializeBlsEntry,
  setBlsValue,
  sortBootEntries,
} from "../src/index.js";
import { bootctlList, ostreeVectorEntries } from "./helpers.js";

describe("BLS entries written by ostree 2022.7 (sysroot sample vectors)", () => {
  const vectors = ostreeVectorEntries();
  it("has the vectors", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(10);
  });
  it.each(vectors.map((v, i) => [i, v.fileName, v] as const))(
    "#%i %s parses and re-serializes byte-identically",
    (_i, _n, v) => {
      const e = parseBlsEntry(v.text, v.fileName);
      expect(serializeBlsEntry(e)).toBe(v.text);
      expect(getBlsValue(e, "title")).toMatch(/\(ostree:\d+\)$/);
      expect(getBlsValue(e, "linux")).toMatch(/^\/ostree\/testos-[0-9a-f]{64}\/vmlinuz-/);
      expect(getBlsOptions(e)).toMatch(/ostree=\/ostree\/boot\.[01]\/testos\/[0-9a-f]{64}\/\d+/);
    },
  );
});

describe("parseBlsEntry / serializeBlsEntry", () => {
  it("keeps repeated keys, unknown keys, comments, odd spacing", () => {
    const text =
      "# comment\ntitle   Foo Bar\n\noptions a=1\noptions  b\tc\ninitrd /i1\ninitrd /i2\nx-custom  v  \n  linux /vmlinuz\r\n";
    const e = parseBlsEntry(text, "foo.conf");
    expect(serializeBlsEntry(e)).toBe(text);
    expect(getBlsValues(e, "initrd")).toEqual(["/i1", "/i2"]);
    expect(getBlsOptions(e)).toBe("a=1 b\tc");
    expect(getBlsValue(e, "x-custom")).toBe("v");
    expect(getBlsValue(e, "linux")).toBe("/vmlinuz");
    expect(serializeBlsEntry(setBlsValue(e, "title", "New"))).toBe(text.replace("Foo Bar", "New"));
    expect(getBlsValues(setBlsValue(e, "initrd", undefined), "initrd")).toEqual([]);
  });
  it("reports the line of a bad key", () => {
    try {
      parseBlsEntry("title a\nbad=key x\n", "x.conf");
      expect.unreachable();
    } catch (err) {
      expect(isImageModeError(err, "PARSE")).toBe(true);
      expect((err as { data: { line: number } }).data.line).toBe(2);
      expect((err as Error).message).toContain("x.conf:2");
    }
  });
  it("rejects names that are not NAME.conf", () => {
    expect(() => parseBlsEntry("", "foo.txt")).toThrow(/NAME.conf/);
    expect(() => parseBlsEntry("", "../x.conf")).toThrow();
  });
  test.prop([
    fc.array(
      fc.oneof(
        fc
          .tuple(
            fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/),
            fc.constantFrom(" ", "  ", "\t"),
            fc.stringMatching(/^[^\n\0]*$/),
          )
          .map(([k, s, v]) => `${k}${s}${v}`),
        fc.stringMatching(/^#[^\n\0]*$/),
        fc.constantFrom("", "   "),
      ),
    ),
    fc.boolean(),
  ])("round-trips any well-formed text", (lines, nl) => {
    const text = lines.join("\n") + (nl && lines.length > 0 ? "\n" : "");
    expect(serializeBlsEntry(parseBlsEntry(text, "p.conf"))).toBe(text);
  });
});

describe("file names and boot counting", () => {
  it("parses counters like systemd-boot", () => {
    expect(parseEntryFileName("ostree-1+3.conf")).toEqual({
      id: "ostree-1",
      counter: { left: 3, done: 0 },
    });
    expect(parseEntryFileName("ostree-1+2-1.conf")).toEqual({
      id: "ostree-1",
      counter: { left: 2, done: 1 },
    });
    expect(parseEntryFileName("a+b.conf")).toEqual({ id: "a+b", counter: null });
    expect(parseEntryFileName("x.conf")).toEqual({ id: "x", counter: null });
  });
  it("renames on attempts and blessing: +3 → +2-1 → +1-2 → +0-3 (stays), bless → plain", () => {
    let n = "ostree-1+3.conf";
    const seen = [n];
    for (let i = 0; i < 4; i++) {
      n = countBootAttempt(n);
      seen.push(n);
    }
    expect(seen).toEqual([
      "ostree-1+3.conf",
      "ostree-1+2-1.conf",
      "ostree-1+1-2.conf",
      "ostree-1+0-3.conf",
      "ostree-1+0-3.conf",
    ]);
    expect(blessEntryFileName("ostree-1+1-2.conf")).toBe("ostree-1.conf");
  });
});

describe("boot-counter file names agree with bootctl (systemd 252)", () => {
  it("parses the same id and tries", async () => {
    const names = [
      "a+3.conf",
      "b+2-1.conf",
      "c+0-3.conf",
      "d+x.conf",
      "e+1-.conf",
      "f+-1.conf",
      "g+01-002.conf",
      "h++4.conf",
      "i.conf",
      "j+4-0.conf",
    ];
    const dir = await mkdtemp(path.join(tmpdir(), "bls-tries-"));
    try {
      await mkdir(path.join(dir, "esp/loader/entries"), { recursive: true });
      await writeFile(path.join(dir, "esp/vmlinuz"), "");
      for (const n of names)
        await writeFile(
          path.join(dir, "esp/loader/entries", n),
          serializeBlsEntry(createBlsEntry(n, { title: n, linux: "/vmlinuz" })),
        );
      const listed = await bootctlList(path.join(dir, "esp"), path.join(dir, "none"));
      expect(listed.length).toBe(names.length);
      for (const l of listed) {
        const ours = parseEntryFileName(l.source);
        expect([l.source, l.id]).toEqual([l.source, `${ours.id}.conf`]);
        const m = /^(\d+) left(?:; (\d+) done)?$/.exec(l.tries);
        const theirs = m ? { left: Number(m[1]), done: Number(m[2] ?? "0") } : null;
        expect([l.source, theirs]).toEqual([l.source, ours.counter]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("sortBootEntries agrees with bootctl list (systemd 252)", () => {
  const entry = (fileName: string, extra: [string, string][] = []) =>
    createBlsEntry(fileName, { title: fileName, linux: "/vmlinuz", extra });
  const check = async (entries: ReturnType<typeof entry>[], opts: { ties?: boolean } = {}) => {
    const dir = await mkdtemp(path.join(tmpdir(), "bls-sort-"));
    try {
      await mkdir(path.join(dir, "esp/loader/entries"), { recursive: true });
      await mkdir(path.join(dir, "boot"), { recursive: true });
      await writeFile(path.join(dir, "esp/vmlinuz"), "");
      for (const e of entries)
        await writeFile(path.join(dir, "esp/loader/entries", e.fileName), serializeBlsEntry(e));
      const listed = await bootctlList(path.join(dir, "esp"), path.join(dir, "boot"));
      const ours = sortBootEntries(entries);
      const theirs = listed.map((l) => entries.find((e) => e.fileName === l.source));
      expect(theirs.map((e) => e?.fileName).sort()).toEqual(ours.map((e) => e.fileName).sort());
      // Same order up to ties (systemd keeps tied entries in directory order, which is not stable).
      for (let i = 0; i + 1 < theirs.length; i++) {
        const [x, y] = [theirs[i], theirs[i + 1]];
        if (x && y)
          expect([
            x.fileName,
            y.fileName,
            compareBootEntries(x, y, { tieBreak: false }) <= 0,
          ]).toEqual([x.fileName, y.fileName, true]);
      }
      if (!opts.ties) expect(listed.map((l) => l.source)).toEqual(ours.map((e) => e.fileName));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  it("sort-key, machine-id, version, ids, bad entries", async () => {
    await check([
      entry("a-10.conf", [
        ["version", "10"],
        ["machine-id", "dd235d00696545768f6f693bfd23b15f"],
      ]),
      entry("a-5.conf", [
        ["version", "5"],
        ["machine-id", "dd235d00696545768f6f693bfd23b15f"],
      ]),
      entry("b.conf", [["version", "3"]]),
      entry("c.conf", [
        ["sort-key", "xxxx"],
        ["version", "5"],
        ["machine-id", "309de666fd5044268a9a26541ac93176"],
      ]),
      entry("cx.conf", [
        ["sort-key", "xxxx"],
        ["version", "10"],
        ["machine-id", "309de666fd5044268a9a26541ac93176"],
      ]),
      entry("d.conf", [
        ["sort-key", "kkkk"],
        ["version", "100"],
        ["machine-id", "81c6e3147cf544c19006af023e22b292"],
      ]),
      entry("e+0-3.conf", [["sort-key", "aaaa"]]),
      entry("ostree-2-testos.conf", [["version", "2"]]),
      entry("ostree-10-testos+2-1.conf", [["version", "10"]]),
      entry("ostree-9-testos.conf", [["version", "9"]]),
      entry("f-1.2-rc1.conf"),
      entry("f-1.2.conf"),
      entry("f-1.2.p.conf"),
    ]);
  });
  test.prop(
    [
      fc.uniqueArray(
        fc.record({
          id: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/),
          sortKey: fc.option(fc.constantFrom("a", "b", "fedora"), { nil: undefined }),
          version: fc.option(fc.stringMatching(/^[0-9a-z.~^-]{1,6}$/), { nil: undefined }),
          machineId: fc.option(
            fc.constantFrom("11111111111111111111111111111111", "22222222222222222222222222222222"),
            { nil: undefined },
          ),
          counter: fc.option(fc.tuple(fc.nat(3), fc.nat(3)), { nil: undefined }),
        }),
        { selector: (r) => r.id, minLength: 2, maxLength: 8 },
      ),
    ],
    { numRuns: 40 },
  )("random entries: same order as bootctl (up to ties)", async (recs) => {
    await check(
      recs.map((r) => {
        const extra: [string, string][] = [];
        if (r.sortKey) extra.push(["sort-key", r.sortKey]);
        if (r.version) extra.push(["version", r.version]);
        if (r.machineId) extra.push(["machine-id", r.machineId]);
        return entry(
          r.counter ? `${r.id}+${r.counter[0]}-${r.counter[1]}.conf` : `${r.id}.conf`,
          extra,
        );
      }),
      { ties: true },
    );
  });
});

/** Property tests of the object codecs: every encode/decode pair round-trips byte-exactly. */
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  contentChecksum,
  decodeArchiveHeader,
  decodeCommit,
  decodeCommitMeta,
  decodeDirMeta,
  decodeDirTree,
  decodeFileHeader,
  decodeOstreeMeta,
  encodeArchiveHeader,
  encodeCommit,
  encodeCommitMeta,
  encodeDirMeta,
  encodeDirTree,
  encodeFileHeader,
  encodeOstreeMeta,
  Variant,
} from "../src/index.js";

const hex64 = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => Buffer.from(b).toString("hex"));
const name = fc
  .string({
    unit: fc.constantFrom("a", "Z", "é", "日", "\u{1F600}", ".", "-", "x"),
    minLength: 1,
    maxLength: 10,
  })
  .filter((n) => n !== "." && n !== "..");
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const xattrs = fc
  .uniqueArray(
    fc.tuple(
      fc.stringMatching(/^user\.[a-z]{1,8}$/),
      fc.uint8Array({ minLength: 1, maxLength: 20 }),
    ),
    { selector: (t) => t[0], maxLength: 4 },
  )
  .map((e) => new Map([...e].sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))));

describe("object codecs", () => {
  test.prop([u32, u32, fc.integer({ min: 0, max: 0o7777 }), xattrs])(
    "dirmeta",
    (uid, gid, mode, x) => {
      const m = { uid, gid, mode: 0o40000 | mode, xattrs: x };
      const b = encodeDirMeta(m);
      expect(decodeDirMeta(b)).toEqual(m);
      expect(encodeDirMeta(decodeDirMeta(b))).toEqual(b);
    },
  );

  test.prop([
    fc.uniqueArray(fc.tuple(name, hex64), { selector: (t) => t[0], maxLength: 8 }),
    fc.uniqueArray(fc.tuple(name, hex64, hex64), { selector: (t) => t[0], maxLength: 8 }),
  ])("dirtree (sorted byte-wise on encode)", (files, dirs) => {
    const names = new Set(files.map((f) => f[0]));
    const t = {
      files: files.map(([n, c]) => ({ name: n, checksum: c })),
      dirs: dirs
        .filter((d) => !names.has(d[0]))
        .map(([n, tree, meta]) => ({ name: n, tree, meta })),
    };
    const b = encodeDirTree(t);
    const back = decodeDirTree(b);
    const byName = (a: { name: string }, c: { name: string }) =>
      Buffer.compare(Buffer.from(a.name), Buffer.from(c.name));
    expect(back).toEqual({ files: [...t.files].sort(byName), dirs: [...t.dirs].sort(byName) });
    expect(encodeDirTree(back)).toEqual(b);
  });

  test.prop([
    u32,
    u32,
    fc.constantFrom(0o100644, 0o100755, 0o104755, 0o120777),
    fc.string({ maxLength: 40 }).filter((s) => !s.includes("\0")),
    xattrs,
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  ])("file headers, archive headers, user.ostreemeta", (uid, gid, mode, target, x, size) => {
    const h = { uid, gid, mode, rdev: 0, symlinkTarget: target, xattrs: x };
    expect(decodeFileHeader(encodeFileHeader(h))).toEqual(h);
    const a = encodeArchiveHeader(h, size);
    const d = decodeArchiveHeader(a);
    expect(d.header).toEqual(h);
    expect(d.size).toBe(size);
    expect(d.payloadOffset).toBe(a.length);
    expect(decodeOstreeMeta(encodeOstreeMeta(h))).toEqual({ uid, gid, mode, rdev: 0, xattrs: x });
    // the checksum does not depend on xattr insertion order
    expect(contentChecksum({ ...h, xattrs: new Map([...x].reverse()) })).toBe(contentChecksum(h));
  });

  test.prop([
    fc.array(
      fc.tuple(
        fc.string({ maxLength: 8 }),
        fc.oneof(
          fc.string().map((s) => new Variant("s", s.replaceAll("\0", ""))),
          u32.map((n) => new Variant("u", n)),
          fc.boolean().map((b) => new Variant("b", b)),
        ),
      ),
      { maxLength: 5 },
    ),
    fc.option(hex64, { nil: null }),
    fc.string({ maxLength: 30 }).map((s) => s.replaceAll("\0", "")),
    fc.string({ maxLength: 30 }).map((s) => s.replaceAll("\0", "")),
    fc.bigInt({ min: 0n, max: 2n ** 63n }),
    hex64,
    hex64,
  ])("commit and commitmeta", (md, parent, subject, body, timestamp, rootTree, rootMeta) => {
    const metadata = md.map(([k, v]): [string, Variant] => [k.replaceAll("\0", ""), v]);
    const c = { metadata, parent, related: [], subject, body, timestamp, rootTree, rootMeta };
    const b = encodeCommit(c);
    expect(decodeCommit(b)).toEqual(c);
    expect(encodeCommit(decodeCommit(b))).toEqual(b);
    expect(decodeCommitMeta(encodeCommitMeta(metadata))).toEqual(metadata);
  });
});

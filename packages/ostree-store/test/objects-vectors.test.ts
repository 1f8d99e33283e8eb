/**
 * Byte-level checks against objects written by the real ostree CLI (../shared/vectors, made by
 * ostree-vectors.sh): every dumped metadata object decodes and re-encodes to the same bytes
 * and hashes to its name; every .filez and user.ostreemeta yields the object's checksum.
 */
import { inflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  bytesToChecksum,
  contentChecksum,
  decodeArchiveHeader,
  decodeCommit,
  decodeCommitMeta,
  decodeDirMeta,
  decodeDirTree,
  decodeOstreeMeta,
  decodeVariant,
  dirMetaChecksum,
  EMPTY_DIRTREE_CHECKSUM,
  encodeArchiveHeader,
  encodeCommit,
  encodeCommitMeta,
  encodeDirMeta,
  encodeDirTree,
  encodeOstreeMeta,
  encodeVariant,
  OSTREE_TYPES,
  S_IFLNK,
  S_IFMT,
  sha256Hex,
  Variant,
} from "../src/index.js";
import { readDumps, readOstreeMetas } from "./vectors.js";

const dumps = readDumps();
const named = dumps
  .map((d) => {
    const m = /objects\/([0-9a-f]{2})\/([0-9a-f]{62})\.(\w+)/.exec(d.title);
    return m ? { checksum: m[1]! + m[2]!, ext: m[3]!, bytes: d.bytes, title: d.title } : null;
  })
  .filter((x) => x !== null);

describe("objects written by ostree 2022.7", () => {
  it("finds the dumps", () => {
    expect(named.filter((n) => n.ext === "dirtree").length).toBeGreaterThanOrEqual(3);
    expect(named.filter((n) => n.ext === "commit").length).toBeGreaterThanOrEqual(3);
    expect(named.filter((n) => n.ext === "filez").length).toBeGreaterThanOrEqual(5);
  });

  it("metadata objects: re-encoding is byte-identical and hashes to the name", () => {
    for (const n of named) {
      if (n.ext === "dirtree") expect(encodeDirTree(decodeDirTree(n.bytes))).toEqual(n.bytes);
      else if (n.ext === "dirmeta") expect(encodeDirMeta(decodeDirMeta(n.bytes))).toEqual(n.bytes);
      else if (n.ext === "commit") expect(encodeCommit(decodeCommit(n.bytes))).toEqual(n.bytes);
      else if (n.ext === "commitmeta")
        expect(encodeCommitMeta(decodeCommitMeta(n.bytes))).toEqual(n.bytes);
      else continue;
      if (n.ext !== "commitmeta") expect(sha256Hex(n.bytes)).toBe(n.checksum);
    }
  });

  it("archive .filez: parse header, inflate, checksum equals the name; header re-encodes", () => {
    for (const n of named.filter((x) => x.ext === "filez")) {
      const { header, size, payloadOffset } = decodeArchiveHeader(n.bytes);
      const isLink = (header.mode & S_IFMT) === S_IFLNK;
      const payload = isLink ? new Uint8Array(0) : inflateRawSync(n.bytes.subarray(payloadOffset));
      expect(BigInt(payload.length)).toBe(size);
      expect(contentChecksum(header, payload)).toBe(n.checksum);
      expect(encodeArchiveHeader(header, size)).toEqual(n.bytes.subarray(0, payloadOffset));
    }
  });

  it("bare-user user.ostreemeta: checksum of (meta, data) equals the object name", () => {
    const metas = readOstreeMetas();
    expect(metas.length).toBe(5);
    for (const m of metas) {
      const h = decodeOstreeMeta(m.meta);
      expect(encodeOstreeMeta(h)).toEqual(m.meta);
      const isLink = (h.mode & S_IFMT) === S_IFLNK;
      if (isLink) h.symlinkTarget = Buffer.from(m.data.subarray(0, m.data.length - 1)).toString();
      const csum = contentChecksum(h, isLink ? new Uint8Array(0) : m.data);
      expect(m.path.replace(/^objects\/(..)\/(.*)\.file$/, "$1$2")).toBe(csum);
    }
  });

  it("xattr-carrying .filez and dirmeta (treeX)", () => {
    const filez = dumps.find((d) => d.title.includes("archive .filez of x.txt"))!;
    const { header, payloadOffset } = decodeArchiveHeader(filez.bytes);
    expect([...header.xattrs!.keys()]).toEqual(["user.a", "user.b"]);
    expect(contentChecksum(header, inflateRawSync(filez.bytes.subarray(payloadOffset)))).toBe(
      "dc534ddb2fdef6e4a46b7e17d438d1586d80b564336bfb96feed6a7d6f54c4fb",
    );
    // reversed insertion order still sorts the same
    expect(
      contentChecksum(
        { ...header, xattrs: new Map([...header.xattrs!].reverse()) },
        Buffer.from("xattr\n"),
      ),
    ).toBe("dc534ddb2fdef6e4a46b7e17d438d1586d80b564336bfb96feed6a7d6f54c4fb");
    const dm = dumps.find((d) => d.title.includes("dirmeta of xdir"))!;
    expect(sha256Hex(dm.bytes)).toBe(
      "8fdeb13a6b2ddb89ca728da521ab8a02a291612b8c6d7af1561c29e1ae469217",
    );
    expect(
      dirMetaChecksum({
        uid: 0,
        gid: 0,
        mode: 0o40755,
        xattrs: new Map([["user.dir", Buffer.from("d")]]),
      }),
    ).toBe("8fdeb13a6b2ddb89ca728da521ab8a02a291612b8c6d7af1561c29e1ae469217");
  });

  it("the GVariant-coverage commit (maybe, tuple, dict, double, bool, int16, unit, aay)", () => {
    const c = named.find((n) => n.checksum.startsWith("1cf1806637"))!;
    const commit = decodeCommit(c.bytes);
    const md = new Map(commit.metadata.map(([k, v]) => [k, v]));
    expect(md.get("t.ms")).toEqual(new Variant("ms", "x"));
    expect(md.get("t.ms0")).toEqual(new Variant("ms", null));
    expect(md.get("t.mu")).toEqual(new Variant("mu", 5));
    expect(md.get("t.u")).toEqual(new Variant("u", 258));
    expect(md.get("t.t")).toEqual(new Variant("t", 1n));
    expect(md.get("t.b")).toEqual(new Variant("b", true));
    expect(md.get("t.d")).toEqual(new Variant("d", 1.5));
    expect(md.get("t.n")).toEqual(new Variant("n", -2));
    expect(md.get("t.tuple")).toEqual(new Variant("(isy)", [1, "a", 2]));
    // GLib bytestrings (b"ab") carry their NUL
    expect(md.get("t.aay")).toEqual(
      new Variant("aay", [Uint8Array.from([0x61, 0x62, 0]), Uint8Array.from([0])]),
    );
    expect(md.get("t.asv")).toEqual(new Variant("a{sv}", [["k", new Variant("i", 1)]]));
    expect(md.get("t.unit")).toEqual(new Variant("()", []));
    expect(md.get("t.mas")).toEqual(new Variant("mas", ["a", "b"]));
    expect(md.get("t.yu")).toEqual(new Variant("(yu)", [1, 2]));
    expect([...md.keys()][0]).toBe("t.ms");
    expect(encodeCommit(commit)).toEqual(c.bytes);
    expect(commit.timestamp).toBe(1700000000n);
  });

  it("well-known values", () => {
    expect(sha256Hex(encodeDirTree({ files: [], dirs: [] }))).toBe(EMPTY_DIRTREE_CHECKSUM);
    expect(dirMetaChecksum({ uid: 0, gid: 0, mode: 0o40755 })).toBe(
      "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488",
    );
    expect(dirMetaChecksum({ uid: 1000, gid: 1000, mode: 0o40755 })).toBe(
      "794f9b8b314d4d57193fca37dab9149b075b598dadb39d33f77d6a815fca584c",
    );
    expect(contentChecksum({ uid: 0, gid: 0, mode: 0o100644 }, Buffer.from("hello\n"))).toBe(
      "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b",
    );
    expect(contentChecksum({ uid: 0, gid: 0, mode: 0o120777, symlinkTarget: "hello.txt" })).toBe(
      "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35",
    );
    expect(contentChecksum({ uid: 0, gid: 0, mode: 0o100644 })).toBe(
      "cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e",
    );
    // empty xattr values are dropped, like libglnx does
    expect(
      contentChecksum({
        uid: 0,
        gid: 0,
        mode: 0o100644,
        xattrs: new Map([["user.x", new Uint8Array(0)]]),
      }),
    ).toBe("cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e");
    expect(Buffer.from(encodeVariant("(yu)", [1, 2])).toString("hex")).toBe("0100000002000000");
    expect(Buffer.from(encodeVariant("ms", "x")).toString("hex")).toBe("780000");
    expect(encodeVariant("ms", null)).toEqual(new Uint8Array(0));
    expect(Buffer.from(encodeVariant("v", new Variant("s", "2.0"))).toString("hex")).toBe(
      "322e30000073",
    );
    expect(
      decodeVariant(
        OSTREE_TYPES.commitmeta,
        Buffer.from("6e6f746500000000646574616368656400007305" + "14", "hex"),
      ),
    ).toEqual([["note", new Variant("s", "detached")]]);
    expect(bytesToChecksum(new Uint8Array(32))).toBe("0".repeat(64));
  });

  it("dirtree entries sort byte-wise (strcmp), not by UTF-16 code units", () => {
    const c = "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b";
    const names = ["a", "Z", "\u{1F600}", "\uFFFD", "é"];
    const t = decodeDirTree(
      encodeDirTree({ files: names.map((name) => ({ name, checksum: c })), dirs: [] }),
    );
    expect(t.files.map((f) => f.name)).toEqual(["Z", "a", "é", "\uFFFD", "\u{1F600}"]);
  });
});

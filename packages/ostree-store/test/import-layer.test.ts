import { createHash } from "node:crypto";
import { createReadStream, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { type Compression, type Digest, isImageModeError } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  filteredPathsMessage,
  LayerReader,
  normalizeHardlinkTarget,
  normalizeLayerPath,
  whiteoutOf,
} from "../src/import/layer.js";
import { haveTool, makeHostileTars, makeTemp, run } from "./helpers/tools.js";

async function readAllEntries(path: string, compression: Compression = "none", diffId?: Digest) {
  const reader = new LayerReader(createReadStream(path), {
    compression,
    ...(diffId ? { diffId } : {}),
  });
  const entries = [];
  for await (const e of reader) {
    let n = 0;
    for await (const c of e.content) n += c.byteLength;
    entries.push({ ...e, read: n });
  }
  return { reader, entries };
}

describe("bootc path rules", () => {
  it("normalizes like ostree-ext normalize_validate_path", () => {
    expect(normalizeLayerPath("./usr/bin/x")).toEqual({ kind: "keep", path: "usr/bin/x" });
    expect(normalizeLayerPath("/usr/bin/x")).toEqual({ kind: "keep", path: "usr/bin/x" });
    expect(normalizeLayerPath("usr/./bin/")).toEqual({ kind: "keep", path: "usr/bin" });
    expect(normalizeLayerPath("etc/passwd")).toEqual({ kind: "keep", path: "usr/etc/passwd" });
    expect(normalizeLayerPath("./etc")).toEqual({ kind: "keep", path: "usr/etc" });
    expect(normalizeLayerPath("var/lib/x")).toEqual({ kind: "keep", path: "var/lib/x" });
    expect(normalizeLayerPath("tmp")).toEqual({ kind: "keep", path: "tmp" });
    expect(normalizeLayerPath("tmp/foo/bar")).toEqual({ kind: "filtered", key: "foo" });
    expect(normalizeLayerPath("opt/app")).toEqual({ kind: "filtered", key: "opt" });
    expect(normalizeLayerPath("opt/app", { allowNonUsr: true })).toEqual({
      kind: "keep",
      path: "opt/app",
    });
    expect(normalizeLayerPath("./")).toEqual({ kind: "keep", path: "" });
    expect(normalizeLayerPath("etcc/x")).toEqual({ kind: "filtered", key: "etcc" });
    for (const bad of ["../x", "usr/../x", "usr//x", "/../etc/shadow"]) {
      expect(() => normalizeLayerPath(bad)).toThrow(/Invalid path/);
    }
    expect(normalizeHardlinkTarget("/etc/motd")).toBe("usr/etc/motd");
    expect(normalizeHardlinkTarget("./opt/x")).toBe("opt/x");
    expect(whiteoutOf("usr/.wh.foo")).toEqual({ kind: "file", name: "foo" });
    expect(whiteoutOf("usr/.wh..wh..opq")).toEqual({ kind: "opaque" });
    expect(() => whiteoutOf("usr/.wh.")).toThrow(/Invalid empty whiteout/);
    expect(
      filteredPathsMessage(
        new Map([
          ["opt", 2],
          ["home", 1],
        ]),
      ),
    ).toBe("Image contains non-ostree compatible file paths: home: 1 opt: 2");
  });
});

describe("LayerReader", () => {
  const tmp = makeTemp();
  beforeAll(() => makeHostileTars(tmp.path));
  afterAll(() => tmp.cleanup());

  it("normalizes a layer with every rule, counting dropped paths", async () => {
    const { reader, entries } = await readAllEntries(join(tmp.path, "rules-pax.tar"));
    const paths = entries.map((e) => e.path);
    expect(paths).toContain("");
    expect(paths).toContain("usr/etc/motd");
    expect(paths).toContain("usr/etc/hostname");
    expect(paths).toContain("tmp");
    expect(paths).toContain("run");
    expect(paths).toContain("var/lib/thing");
    expect(
      paths.some(
        (p) => p.startsWith("opt") || p.startsWith("home") || p === "bin" || p.startsWith("tmp/"),
      ),
    ).toBe(false);
    expect(Object.fromEntries(reader.filtered)).toEqual({
      junk: 1,
      junk2: 1,
      secrets: 1,
      opt: 2,
      home: 1,
      ".dockerenv": 1,
      bin: 1,
    });
    const link = entries.find((e) => e.path === "usr/etc/motd.link");
    expect(link?.hardlinkTarget).toBe("usr/etc/motd");
    expect(entries.find((e) => e.path === "usr/bin/tool2")?.hardlinkTarget).toBe("usr/bin/tool");
    expect(entries.find((e) => e.path === "usr/share/.wh.gone")?.whiteout).toEqual({
      kind: "file",
      name: "gone",
    });
    expect(entries.find((e) => e.path === "usr/share/opq/.wh..wh..opq")?.whiteout).toEqual({
      kind: "opaque",
    });
    expect(entries.every((e) => e.mtime === 0)).toBe(true);
    expect(entries.find((e) => e.path === "usr/bin/tool")?.mode).toBe(0o4755);
    expect(reader.diffId).toBe(
      `sha256:${createHash("sha256")
        .update(readFileSync(join(tmp.path, "rules-pax.tar")))
        .digest("hex")}`,
    );
  });

  it("verifies diff_id through gzip and zstd", async () => {
    const plain = join(tmp.path, "rules-gnu.tar");
    const bytes = readFileSync(plain);
    const diffId = `sha256:${createHash("sha256").update(bytes).digest("hex")}` as Digest;
    writeFileSync(`${plain}.gz`, gzipSync(bytes));
    const gz = await readAllEntries(`${plain}.gz`, "gzip", diffId);
    expect(gz.reader.diffId).toBe(diffId);
    expect(gz.reader.uncompressedSize).toBe(bytes.length);
    if (haveTool("zstd")) {
      run("zstd", ["-q", "-f", plain, "-o", `${plain}.zst`]);
      const zs = await readAllEntries(`${plain}.zst`, "zstd", diffId);
      expect(zs.entries.length).toBe(gz.entries.length);
    }
    const wrong = `sha256:${"0".repeat(64)}` as Digest;
    const err = await readAllEntries(`${plain}.gz`, "gzip", wrong).catch((e) => e);
    expect(isImageModeError(err, "DIGEST_MISMATCH")).toBe(true);
  });

  const hostile: Record<string, RegExp> = {
    "dotdot.tar": /Invalid path/,
    "dotdot-mid.tar": /Invalid path/,
    "abs-dotdot.tar": /Invalid path/,
    "link-dotdot.tar": /Invalid path/,
    "empty-component.tar": /Invalid path/,
    "nonutf8.tar": /non-UTF-8/,
    "nonutf8-pax.tar": /non-UTF-8/,
    "huge-pax.tar": /exceeds the limit/,
    "empty-whiteout.tar": /Invalid empty whiteout/,
  };
  for (const [name, re] of Object.entries(hostile)) {
    it(`rejects ${name} with a typed error`, async () => {
      const err = await readAllEntries(join(tmp.path, name)).catch((e) => e);
      expect(isImageModeError(err), String(err)).toBe(true);
      expect(err.message).toMatch(re);
    });
  }

  it("re-roots absolute paths instead of rejecting them", async () => {
    const { entries } = await readAllEntries(join(tmp.path, "absolute.tar"));
    expect(entries.map((e) => e.path)).toEqual(["usr/bin/ok"]);
  });
});

import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import {
  classifyObjectLayerPath,
  encapsulatedLayout,
  LABEL_FINAL_DIFFID,
  xattrsLinkTarget,
} from "../src/import/encapsulated-format.js";

const C = "b8627e3ef0f255a322d2bd9610cfaaacc8f122b7f8d17c0e7e3caafa160f9fc7";
const obj = (ext: string, c = C) =>
  `sysroot/ostree/repo/objects/${c.slice(0, 2)}/${c.slice(2)}.${ext}`;

describe("encapsulated layout (ostree-ext parse_manifest_layout)", () => {
  const ids = ["a", "b", "c", "d", "e"].map((x) => `sha256:${x.repeat(64)}`);

  it("generic images (no ostree.final-diffid) are not encapsulated", () => {
    expect(encapsulatedLayout(ids, { "containers.bootc": "1" })).toBeNull();
  });

  it("layer 0 holds the commit, layers up to the final diff_id are chunks, the rest derived", () => {
    const l = encapsulatedLayout(ids, {
      [LABEL_FINAL_DIFFID]: ids[2] as string,
      "ostree.commit": C,
    });
    expect(l).toEqual({
      finalDiffId: ids[2],
      commitLabel: C,
      commitLayer: 0,
      chunkLayers: [1, 2],
      derivedLayers: [3, 4],
    });
    // a single-layer encapsulation: the final diff_id is the commit layer itself
    expect(encapsulatedLayout(ids, { [LABEL_FINAL_DIFFID]: ids[0] as string })).toMatchObject({
      chunkLayers: [],
      derivedLayers: [1, 2, 3, 4],
      commitLabel: null,
    });
    // the manifest annotations are a fallback for the config labels
    expect(encapsulatedLayout(ids, {}, { [LABEL_FINAL_DIFFID]: ids[4] as string })).toMatchObject({
      chunkLayers: [1, 2, 3, 4],
      derivedLayers: [],
    });
  });

  it("a final diff_id the image does not have, or has twice → PARSE", () => {
    for (const list of [ids, [ids[0] as string, ids[1] as string, ids[1] as string]]) {
      let err: unknown;
      try {
        encapsulatedLayout(list, {
          [LABEL_FINAL_DIFFID]:
            ids[1] === list[2] ? (ids[1] as string) : `sha256:${"f".repeat(64)}`,
        });
      } catch (e) {
        err = e;
      }
      expect(isImageModeError(err, "PARSE")).toBe(true);
    }
  });

  test.prop([fc.integer({ min: 1, max: 40 }), fc.nat()])(
    "commit, chunk and derived layers partition the layers in order",
    (n, k0) => {
      const list = Array.from(
        { length: n },
        (_, i) => `sha256:${i.toString(16).padStart(64, "0")}`,
      );
      const k = k0 % n;
      const l = encapsulatedLayout(list, { [LABEL_FINAL_DIFFID]: list[k] as string });
      expect(l).not.toBeNull();
      const all = [l?.commitLayer, ...(l?.chunkLayers ?? []), ...(l?.derivedLayers ?? [])];
      expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(l?.chunkLayers.length).toBe(k);
    },
  );
});

describe("object layer paths (ostree-ext tar import rules)", () => {
  it("classifies objects, xattrs (v0 and v1) and ignores the rest", () => {
    expect(classifyObjectLayerPath(obj("commit"))).toEqual({
      kind: "object",
      checksum: C,
      type: "commit",
    });
    expect(classifyObjectLayerPath(`./${obj("dirtree")}`)).toEqual({
      kind: "object",
      checksum: C,
      type: "dirtree",
    });
    expect(classifyObjectLayerPath(obj("file"))).toEqual({
      kind: "object",
      checksum: C,
      type: "file",
    });
    expect(classifyObjectLayerPath(obj("file-xattrs"))).toEqual({ kind: "xattrs", checksum: C });
    expect(classifyObjectLayerPath(obj("file-xattrs-link"))).toEqual({
      kind: "xattrs-link",
      checksum: C,
    });
    expect(classifyObjectLayerPath(obj("file.xattrs"))).toEqual({
      kind: "xattrs-ref",
      checksum: C,
    });
    expect(classifyObjectLayerPath(`sysroot/ostree/repo/xattrs/${C}`)).toEqual({
      kind: "xattrs-v0",
      checksum: C,
    });
    for (const p of [
      "usr/bin/bash",
      "./",
      "sysroot/ostree/repo/config",
      "sysroot/ostree/repo/refs/heads/x",
      "sysroot/ostree/repo/tmp/cache/x",
      "var/tmp",
      "etc/sysroot/ostree/repo/objects/zz",
    ])
      expect(classifyObjectLayerPath(p)).toEqual({ kind: "ignored" });
  });

  it("refuses hostile paths (INVALID_ARGUMENT) and malformed object names (PARSE)", () => {
    const code = (p: string) => {
      try {
        classifyObjectLayerPath(p);
        return "ok";
      } catch (e) {
        return isImageModeError(e) ? e.code : "other";
      }
    };
    expect(code("sysroot/ostree/repo/objects/../../../../etc/passwd")).toBe("INVALID_ARGUMENT");
    expect(code("usr/../../x")).toBe("INVALID_ARGUMENT");
    expect(code(`/${obj("file")}`)).toBe("INVALID_ARGUMENT");
    expect(code(obj("blah"))).toBe("PARSE");
    expect(code(obj("file", C.toUpperCase()))).toBe("PARSE");
    expect(code(`sysroot/ostree/repo/objects/b8/${C.slice(2, 40)}.file`)).toBe("PARSE");
    expect(code(`sysroot/ostree/repo/objects/b8/x/${C.slice(2)}.file`)).toBe("PARSE");
    expect(code("sysroot/ostree/repo/xattrs/abc")).toBe("PARSE");
  });

  it("resolves xattrs link targets (v1 `.file-xattrs`, v0 `xattrs/`)", () => {
    expect(xattrsLinkTarget(obj("file-xattrs"))).toBe(C);
    expect(xattrsLinkTarget(`../${C.slice(0, 2)}/${C.slice(2)}.file-xattrs`)).toBe(C);
    expect(xattrsLinkTarget(`sysroot/ostree/repo/xattrs/${C}`)).toBe(C);
    expect(() => xattrsLinkTarget(obj("file"))).toThrow(/not an xattrs object/);
    expect(() => xattrsLinkTarget(`${C}.file-xattrs`)).toThrow();
  });

  test.prop([fc.string()])("never accepts a path with a `..` component", (s) => {
    const p = `sysroot/ostree/repo/objects/${s}/../x`;
    expect(() => classifyObjectLayerPath(p)).toThrow();
  });
});

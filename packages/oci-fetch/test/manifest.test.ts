import { fc, test } from "@fast-check/vitest";
import { digestOf, MediaType } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import {
  formatPlatform,
  hostPlatform,
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  platformMatches,
  selectPlatform,
} from "../src/index.js";

const blob = (s: string) => ({ digest: digestOf(s), size: s.length });

describe("parseManifest", () => {
  const manifest = {
    schemaVersion: 2,
    config: { mediaType: MediaType.OciConfig, ...blob("c") },
    layers: [{ mediaType: MediaType.OciLayerGzip, ...blob("l") }],
  };
  it("takes the type from the Content-Type when the document has none (umoci)", () => {
    const m = parseManifest(JSON.stringify(manifest), `${MediaType.OciManifest}; charset=utf-8`);
    expect(m.kind).toBe("manifest");
    expect(m.mediaType).toBe(MediaType.OciManifest);
  });
  it("falls back to the shape", () => {
    expect(parseManifest(JSON.stringify(manifest)).mediaType).toBe(MediaType.OciManifest);
    expect(parseManifest(JSON.stringify({ schemaVersion: 2, manifests: [] })).kind).toBe("index");
  });
  it("reads a Docker manifest list with platforms", () => {
    const m = parseManifest(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifestList,
        manifests: [
          {
            mediaType: MediaType.DockerManifest,
            ...blob("a"),
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: MediaType.DockerManifest,
            ...blob("b"),
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
          },
        ],
      }),
    );
    if (m.kind !== "index") throw new Error("index expected");
    expect(selectPlatform(m, parsePlatform("linux/arm64")).digest).toBe(digestOf("b"));
    expect(selectPlatform(m, { os: "linux", architecture: "amd64" }).digest).toBe(digestOf("a"));
    expect(() => selectPlatform(m, parsePlatform("linux/s390x"))).toThrow(
      /available: linux\/amd64, linux\/arm64\/v8/,
    );
  });
  it.each([
    ["not json", "{", "PARSE"],
    ["schema1", JSON.stringify({ schemaVersion: 1, fsLayers: [] }), "UNSUPPORTED"],
    [
      "bad digest",
      JSON.stringify({ ...manifest, layers: [{ mediaType: "x", digest: "sha256:zz", size: 1 }] }),
      "PARSE",
    ],
    [
      "negative size",
      JSON.stringify({ ...manifest, config: { ...manifest.config, size: -1 } }),
      "PARSE",
    ],
    ["no config", JSON.stringify({ schemaVersion: 2, layers: [] }), "PARSE"],
    [
      "unknown type",
      JSON.stringify({ ...manifest, mediaType: "application/x-foo" }),
      "UNSUPPORTED",
    ],
    ["too big", `{"schemaVersion":2,"x":"${"a".repeat(MAX_MANIFEST_BYTES)}"}`, "SIZE_MISMATCH"],
  ])("%s → %s", (_n, text, code) => {
    expect(() => parseManifest(text)).toThrow(expect.objectContaining({ code }));
  });
});

describe("platforms", () => {
  test.prop([
    fc.constantFrom("linux", "windows"),
    fc.constantFrom("amd64", "arm64", "arm", "s390x"),
    fc.option(fc.constantFrom("v5", "v6", "v7", "v8"), { nil: undefined }),
  ])("parse(format(p)) round-trips", (os, architecture, variant) => {
    const p = { os, architecture, ...(variant ? { variant } : {}) };
    expect(parsePlatform(formatPlatform(p))).toEqual(p);
    expect(platformMatches(p, p)).toBe(true);
  });
  it("normalizes variants like containerd", () => {
    expect(
      platformMatches(parsePlatform("linux/arm64"), {
        os: "linux",
        architecture: "arm64",
        variant: "v8",
      }),
    ).toBe(true);
    expect(
      platformMatches(parsePlatform("linux/arm"), {
        os: "linux",
        architecture: "arm",
        variant: "v6",
      }),
    ).toBe(false);
    expect(hostPlatform("linux", "x64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(hostPlatform("linux", "arm64")).toEqual({
      os: "linux",
      architecture: "arm64",
      variant: "v8",
    });
  });
  it("refuses bad platform strings", () => {
    expect(() => parsePlatform("linux")).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});

describe("parseImageConfig", () => {
  it("reads diff_ids and refuses bad ones", () => {
    const c = parseImageConfig(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [digestOf("x")] },
      }),
    );
    expect(c.rootfs.diff_ids).toEqual([digestOf("x")]);
    expect(() =>
      parseImageConfig(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          rootfs: { type: "layers", diff_ids: ["nope"] },
        }),
      ),
    ).toThrow(expect.objectContaining({ code: "PARSE" }));
  });
});

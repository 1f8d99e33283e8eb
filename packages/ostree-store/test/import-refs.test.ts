import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import {
  escapeRef,
  imageRef,
  layerRef,
  prefixEscapeRef,
  unescapeRef,
  unprefixUnescapeRef,
} from "../src/import/refs.js";

// The examples and corner cases are the ones ostree-ext's own refescape tests use
// (bootc-dev/bootc crates/ostree-ext/src/refescape.rs).
describe("ref escaping (ostree-ext refescape)", () => {
  it("leaves plain refs unchanged", () => {
    for (const v of ["foo", "foo/bar/baz-blah/foo"]) expect(escapeRef(v)).toBe(v);
  });

  it("matches ostree-ext's documented examples", () => {
    expect(escapeRef("localhost:5000/foo:latest")).toBe("localhost_3A_5000/foo_3A_latest");
    expect(prefixEscapeRef("container", "registry:quay.io/coreos/fedora:latest")).toBe(
      "container/registry_3A_quay_2E_io/coreos/fedora_3A_latest",
    );
    expect(layerRef("sha256:abc")).toBe("ostree/container/blob/sha256_3A_abc");
    expect(imageRef("docker://quay.io/exampleos/blah:latest")).toBe(
      "ostree/container/image/docker_3A__2F__2F_quay_2E_io/exampleos/blah_3A_latest",
    );
  });

  it("escapes slashes that would make empty components, and underscores", () => {
    expect(escapeRef("/")).toBe("_2F_");
    expect(escapeRef("blah/")).toBe("blah_2F_");
    expect(escapeRef("/foo/")).toBe("_2F_foo_2F_");
    expect(escapeRef("a//b")).toBe("a/_2F_b");
    expect(escapeRef("a_b")).toBe("a__b");
    expect(escapeRef("é")).toBe("_E9_");
    expect(escapeRef("😀")).toBe("_1F600_");
  });

  it("round-trips ostree-ext's round-trip and corner cases", () => {
    for (const v of [
      "localhost:5000/foo:latest",
      "fedora/x86_64/coreos",
      "/foo/bar/foo.oci-archive",
      "docker://quay.io/exampleos/blah:latest",
      "oci-archive:/path/to/foo.ociarchive",
      "/",
      "blah/",
      "/foo/",
    ]) {
      expect(unprefixUnescapeRef("testprefix/blah", prefixEscapeRef("testprefix/blah", v))).toBe(v);
    }
  });

  it("rejects empty strings and NUL with typed errors", () => {
    for (const bad of ["", "a\0b"]) {
      let err: unknown;
      try {
        escapeRef(bad);
      } catch (e) {
        err = e;
      }
      expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
    }
    expect(() => unescapeRef("a:b")).toThrow(/Invalid character/);
    expect(() => unprefixUnescapeRef("x", "y/abc")).toThrow(/prefix/);
  });

  test.prop([fc.string({ unit: "grapheme", minLength: 1 }).filter((s) => !s.includes("\0"))])(
    "escape/unescape round trip",
    (s) => {
      const escaped = escapeRef(s);
      expect(escaped).toMatch(/^[-_/A-Za-z0-9]+$/);
      expect(escaped).not.toMatch(/\/\/|\/$|^\//);
      expect(unescapeRef(escaped)).toBe(s);
    },
  );
});

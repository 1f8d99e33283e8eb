import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import {
  formatReference,
  formatTransportReference,
  parseReference,
  parseTransportReference,
} from "../src/index.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference (containers/image normalization)", () => {
  it.each([
    ["fedora", "docker.io/library/fedora:latest"],
    ["fedora:39", "docker.io/library/fedora:39"],
    ["user/app", "docker.io/user/app:latest"],
    ["docker.io/fedora", "docker.io/library/fedora:latest"],
    ["index.docker.io/library/fedora:1", "docker.io/library/fedora:1"],
    ["localhost:5000/a/b:tag", "localhost:5000/a/b:tag"],
    ["localhost/a", "localhost/a:latest"],
    ["quay.io/fedora/fedora-bootc:42", "quay.io/fedora/fedora-bootc:42"],
    ["127.0.0.1:5000/os", "127.0.0.1:5000/os:latest"],
    [`fedora@${D}`, `docker.io/library/fedora@${D}`],
    [`quay.io/a/b:tag@${D}`, `quay.io/a/b:tag@${D}`],
    ["[::1]:5000/os:v1", "[::1]:5000/os:v1"],
  ])("%s → %s", (input, want) => {
    expect(formatReference(parseReference(input))).toBe(want);
  });

  it("digest wins over the tag", () => {
    const r = parseReference(`quay.io/a/b:tag@${D}`);
    expect(r.tag).toBe("tag");
    expect(r.digest).toBe(D);
  });

  it.each([
    "",
    "Fedora",
    "docker.io/Library/fedora",
    "a//b",
    "a/b:",
    "a:bad tag",
    "a@sha256:abc",
    `a@md5:${"a".repeat(32)}`,
    "-a",
    "a/-b",
    " a",
    "host:port:x/a",
    `${"a".repeat(300)}`,
    ":tag",
  ])("refuses %j with INVALID_ARGUMENT", (input) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
  });

  const component = fc.stringMatching(/^[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}$/);
  test.prop([
    fc.constantFrom(
      "docker.io",
      "quay.io",
      "localhost:5000",
      "127.0.0.1:8080",
      "registry.example.com",
    ),
    fc.array(component, { minLength: 1, maxLength: 3 }),
    fc.option(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/), { nil: undefined }),
    fc.option(fc.stringMatching(/^[0-9a-f]{64}$/), { nil: undefined }),
  ])("format(parse(x)) is a fixed point", (registry, parts, tag, hex) => {
    const input = `${registry}/${parts.join("/")}${tag ? `:${tag}` : ""}${hex ? `@sha256:${hex}` : ""}`;
    const once = formatReference(parseReference(input));
    expect(formatReference(parseReference(once))).toBe(once);
    const r = parseReference(input);
    expect(r.registry).toBe(registry);
    if (hex) expect(r.digest).toBe(`sha256:${hex}`);
    if (tag) expect(r.tag).toBe(tag);
  });
});

describe("parseTransportReference", () => {
  it("docker://", () => {
    const r = parseTransportReference("docker://127.0.0.1:5000/os:v1");
    expect(r).toEqual({
      transport: "docker",
      image: { registry: "127.0.0.1:5000", repository: "os", tag: "v1" },
    });
  });
  it("oci:DIR[:TAG] splits at the first colon, like containers/image", () => {
    expect(parseTransportReference("oci:/tmp/os:v1")).toEqual({
      transport: "oci",
      path: "/tmp/os",
      tag: "v1",
    });
    expect(parseTransportReference("oci:/tmp/os")).toEqual({ transport: "oci", path: "/tmp/os" });
    expect(parseTransportReference("oci-archive:/tmp/os.tar:latest")).toEqual({
      transport: "oci-archive",
      path: "/tmp/os.tar",
      tag: "latest",
    });
    expect(formatTransportReference(parseTransportReference("oci:/x:t"))).toBe("oci:/x:t");
  });
  it.each(["docker:/a", "dir:/x", "fedora", "oci:", "oci::t", "docker://Bad"])(
    "refuses %j",
    (s) => {
      expect(() => parseTransportReference(s)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    },
  );
});

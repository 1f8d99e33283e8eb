import { describe, expect, it } from "vitest";
import { parse as yamlParse } from "yaml";
import {
  buildHostStatus,
  formatOstreeImageReference,
  hostStatusToJson,
  hostStatusToYaml,
  type ImageStatus,
  imageReferenceFromUser,
  newOrigin,
  parseOrigin,
  parseOstreeImageReference,
  renderHostStatus,
  type StatusDeployment,
  serializeOrigin,
} from "../src/index.js";

// Origin files exactly as `ostree admin` wrote them (../shared/vectors/ostree-sysroot-sample.txt).
const REFSPEC = "[origin]\nrefspec=testos/stable\n";
const PINNED = "[origin]\nrefspec=testos/stable\n\n[libostree-transient]\npinned=true\n";
const CONTAINER =
  "[origin]\ncontainer-image-reference=ostree-unverified-registry:quay.io/example/testos:latest\n";

describe("origin files", () => {
  it.each([REFSPEC, PINNED, CONTAINER])("round-trips %j byte for byte", (text) => {
    expect(serializeOrigin(parseOrigin(text))).toBe(text);
  });

  it("reads refspec, pin and image", () => {
    expect(parseOrigin(PINNED)).toMatchObject({ refspec: "testos/stable", pinned: true });
    expect(parseOrigin(CONTAINER).image).toEqual({
      image: "quay.io/example/testos:latest",
      transport: "registry",
      signature: "insecure",
    });
  });

  it("pins and unpins the way ostree admin pin writes it", () => {
    const o = parseOrigin(REFSPEC);
    expect(serializeOrigin({ ...o, pinned: true })).toBe(PINNED);
    expect(serializeOrigin({ ...parseOrigin(PINNED), pinned: false })).toBe(REFSPEC);
  });

  it("writes a new container origin as bootc does", () => {
    expect(
      serializeOrigin(
        newOrigin({ image: imageReferenceFromUser("quay.io/example/testos:latest") }),
      ),
    ).toBe(CONTAINER);
    expect(serializeOrigin(newOrigin({ refspec: "testos/stable" }))).toBe(REFSPEC);
  });

  it("rejects malformed origin files with the line number", () => {
    expect(() => parseOrigin("[origin]\nno equals sign\n")).toThrow(/line 2/);
    expect(() => parseOrigin("refspec=x\n")).toThrow(/outside of any group/);
  });
});

describe("ostree image references", () => {
  it.each([
    [
      "ostree-unverified-registry:quay.io/a/b:1",
      { image: "quay.io/a/b:1", transport: "registry", signature: "insecure" },
    ],
    [
      "ostree-unverified-image:oci:/var/lib/os:v2",
      { image: "/var/lib/os:v2", transport: "oci", signature: "insecure" },
    ],
    [
      "ostree-unverified-image:docker://quay.io/a/b",
      { image: "quay.io/a/b", transport: "registry", signature: "insecure" },
    ],
    [
      "ostree-image-signed:docker://quay.io/a/b:2",
      { image: "quay.io/a/b:2", transport: "registry", signature: "containerPolicy" },
    ],
    [
      "ostree-remote-registry:fedora:quay.io/a/b",
      { image: "quay.io/a/b", transport: "registry", signature: { ostreeRemote: "fedora" } },
    ],
    [
      "ostree-remote-image:fedora:oci-archive:/x.tar",
      { image: "/x.tar", transport: "oci-archive", signature: { ostreeRemote: "fedora" } },
    ],
  ] as const)("parses %s", (s, want) => {
    expect(parseOstreeImageReference(s)).toEqual(want);
  });

  it("formats registry images in the short unverified form and others with their transport", () => {
    expect(
      formatOstreeImageReference(
        parseOstreeImageReference("ostree-unverified-image:docker://quay.io/a/b"),
      ),
    ).toBe("ostree-unverified-registry:quay.io/a/b");
    expect(formatOstreeImageReference(imageReferenceFromUser("oci:/mnt/job/os:v2"))).toBe(
      "ostree-unverified-image:oci:/mnt/job/os:v2",
    );
  });

  it.each([
    "",
    "quay.io/a/b",
    "ostree-unverified-registry:",
    "ostree-unverified-image:ftp://x",
    "ostree-remote-registry:nocolon",
  ])("rejects %j", (s) => {
    expect(() => parseOstreeImageReference(s)).toThrow();
  });
});

const img = (v: string): ImageStatus => ({
  image: { image: "127.0.0.1:5000/os:latest", transport: "registry", signature: "insecure" },
  version: v,
  timestamp: "2026-11-25T00:00:00Z",
  imageDigest: `sha256:${v.repeat(64).slice(0, 64)}`,
  architecture: "amd64",
});
const dep = (over: Partial<StatusDeployment>): StatusDeployment => ({
  stateroot: "default",
  checksum: "c".repeat(64),
  serial: 0,
  pinned: false,
  staged: false,
  booted: false,
  image: img("1"),
  ...over,
});

describe("bootc status document", () => {
  it("names staged, booted and rollback like bootc", () => {
    const host = buildHostStatus([
      dep({ checksum: "a".repeat(64), staged: true, image: img("3") }),
      dep({ checksum: "b".repeat(64), booted: true, image: img("2") }),
      dep({ checksum: "c".repeat(64), image: img("1"), pinned: true }),
      dep({ checksum: "d".repeat(64), image: img("0") }),
    ]);
    expect(host.apiVersion).toBe("org.containers.bootc/v1");
    expect(host.kind).toBe("BootcHost");
    expect(host.status.staged?.image?.version).toBe("3");
    expect(host.status.booted?.image?.version).toBe("2");
    expect(host.status.rollback?.image?.version).toBe("1");
    expect(host.status.rollback?.pinned).toBe(true);
    expect(host.status.otherDeployments.map((d) => d.image?.version)).toEqual(["0"]);
    expect(host.spec).toEqual({ image: img("3").image, bootOrder: "default" });
    expect(host.status.rollbackQueued).toBe(false);
    expect(host.status.type).toBe("bootcHost");
    expect(host.status.booted?.ostree).toEqual({
      stateroot: "default",
      checksum: "b".repeat(64),
      deploySerial: 0,
    });
  });

  it("marks a queued rollback when the rollback is ordered first", () => {
    const host = buildHostStatus([
      dep({ image: img("1") }),
      dep({ booted: true, image: img("2"), checksum: "e".repeat(64) }),
    ]);
    expect(host.status.rollbackQueued).toBe(true);
    expect(host.spec.bootOrder).toBe("rollback");
    expect(renderHostStatus(host)).toContain("Rollback queued");
  });

  it("prints JSON with sorted keys and YAML that parse back to the same document", () => {
    const host = buildHostStatus([dep({ booted: true })]);
    const json = hostStatusToJson(host);
    expect(JSON.parse(json)).toEqual(host);
    const keys = Object.keys(JSON.parse(json).status);
    expect(keys).toEqual([...keys].sort());
    expect(yamlParse(hostStatusToYaml(host))).toEqual(host);
    const human = renderHostStatus(host);
    expect(human).toMatch(/^● Booted: {2}ostree-unverified-registry:127\.0\.0\.1:5000\/os:latest/);
    expect(human).toContain("Digest: sha256:1111");
    expect(human).toContain("Version: 1 (2026-11-25T00:00:00Z)");
  });

  it("has a null booted entry on a system that is not booted into a deployment", () => {
    const host = buildHostStatus([dep({})]);
    expect(host.status.booted).toBeNull();
    expect(host.status.type).toBeNull();
  });
});

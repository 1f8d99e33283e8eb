import { describe, expect, it } from "vitest";
import { isInsecureRegistry, parseRegistriesConf, pullSources } from "../src/index.js";

const CONF = `
unqualified-search-registries = ["registry.fedoraproject.org", "quay.io"]

[[registry]]
prefix = "quay.io/fedora"
location = "quay.io/fedora"
[[registry.mirror]]
location = "mirror.example:5000/fedora-mirror"
insecure = true
[[registry.mirror]]
location = "digest.example/f"
pull-from-mirror = "digest-only"

[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
prefix = "blocked.example"
blocked = true
`;

describe("registries.conf v2", () => {
  const conf = parseRegistriesConf(CONF);
  it("parses tables, mirrors and flags", () => {
    expect(conf.unqualifiedSearchRegistries).toEqual(["registry.fedoraproject.org", "quay.io"]);
    expect(conf.registries).toHaveLength(3);
    expect(conf.registries[0]?.mirrors).toEqual([
      { location: "mirror.example:5000/fedora-mirror", insecure: true },
      { location: "digest.example/f", insecure: false, pullFromMirror: "digest-only" },
    ]);
  });
  it("rewrites through mirrors, respecting pull-from-mirror", () => {
    expect(pullSources(conf, "quay.io", "fedora/fedora-bootc", false)).toEqual([
      {
        registry: "mirror.example:5000",
        repository: "fedora-mirror/fedora-bootc",
        insecure: true,
        mirror: true,
      },
      { registry: "quay.io", repository: "fedora/fedora-bootc", insecure: false, mirror: false },
    ]);
    expect(pullSources(conf, "quay.io", "fedora/x", true).map((s) => s.registry)).toEqual([
      "mirror.example:5000",
      "digest.example",
      "quay.io",
    ]);
    expect(pullSources(conf, "quay.io", "other/x", false)).toEqual([
      { registry: "quay.io", repository: "other/x", insecure: false, mirror: false },
    ]);
  });
  it("insecure and blocked", () => {
    expect(isInsecureRegistry(conf, "127.0.0.1:5000")).toBe(true);
    expect(isInsecureRegistry(conf, "quay.io")).toBe(false);
    expect(() => pullSources(conf, "blocked.example", "a", false)).toThrow(
      expect.objectContaining({ code: "DENIED" }),
    );
  });
  it("refuses v1 and broken TOML", () => {
    expect(() => parseRegistriesConf('[registries.search]\nregistries = ["a"]')).toThrow(
      expect.objectContaining({ code: "UNSUPPORTED" }),
    );
    expect(() => parseRegistriesConf("[[registry]\n")).toThrow(
      expect.objectContaining({ code: "PARSE" }),
    );
  });
});

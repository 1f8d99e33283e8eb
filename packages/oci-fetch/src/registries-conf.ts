/**
 * `registries.conf` (containers-registries.conf(5), v2 TOML): per-registry location rewrites,
 * mirrors, `insecure` and `blocked` flags. Parsing is pure; reading the files is the caller's.
 */
import { ImageModeError } from "@imagemode/core";
import { parse } from "smol-toml";

/** A mirror of a registry. */
export interface RegistryMirror {
  location: string;
  insecure: boolean;
  /** Use this mirror only for by-digest pulls. */
  pullFromMirror?: "all" | "digest-only" | "tag-only";
}

/** One `[[registry]]` table. */
export interface RegistryEntry {
  /** The prefix it applies to (`example.com`, `example.com/ns`, `*.example.com`). */
  prefix: string;
  /** Where the prefix really lives (defaults to the prefix). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: RegistryMirror[];
}

/** Parsed `registries.conf`. */
export interface RegistriesConf {
  registries: RegistryEntry[];
  unqualifiedSearchRegistries: string[];
}

/** An empty configuration. */
export const EMPTY_REGISTRIES_CONF: RegistriesConf = {
  registries: [],
  unqualifiedSearchRegistries: [],
};

/** Parses `registries.conf` v2 TOML. Throws `PARSE`; v1 (`[registries.search]`) is refused. */
export function parseRegistriesConf(text: string): RegistriesConf {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ImageModeError("PARSE", `registries.conf: ${(e as Error).message}`, { cause: e });
  }
  if (doc.registries !== undefined && !Array.isArray(doc.registries)) {
    throw new ImageModeError(
      "UNSUPPORTED",
      "registries.conf: the v1 format ([registries.search]) is not supported; use [[registry]] tables",
    );
  }
  const list = Array.isArray(doc.registry) ? (doc.registry as Record<string, unknown>[]) : [];
  const registries = list.map((r, i): RegistryEntry => {
    const location = typeof r.location === "string" ? r.location : "";
    const prefix = typeof r.prefix === "string" && r.prefix ? r.prefix : location;
    if (!prefix)
      throw new ImageModeError(
        "PARSE",
        `registries.conf: [[registry]] #${i + 1} needs a prefix or a location`,
      );
    const mirrors = Array.isArray(r.mirror)
      ? (r.mirror as Record<string, unknown>[]).map((m): RegistryMirror => {
          if (typeof m.location !== "string" || !m.location)
            throw new ImageModeError(
              "PARSE",
              `registries.conf: a mirror of ${prefix} has no location`,
            );
          const pfm = m["pull-from-mirror"];
          return {
            location: m.location,
            insecure: m.insecure === true,
            ...(pfm === "all" || pfm === "digest-only" || pfm === "tag-only"
              ? { pullFromMirror: pfm }
              : {}),
          };
        })
      : [];
    return {
      prefix,
      location: location || prefix,
      insecure: r.insecure === true,
      blocked: r.blocked === true,
      mirrors,
    };
  });
  const usr = doc["unqualified-search-registries"];
  return {
    registries,
    unqualifiedSearchRegistries: Array.isArray(usr)
      ? usr.filter((s): s is string => typeof s === "string")
      : [],
  };
}

function prefixMatches(prefix: string, name: string): boolean {
  if (prefix.startsWith("*.")) {
    const host = name.split("/")[0] ?? "";
    return host.endsWith(prefix.slice(1));
  }
  return (
    name === prefix ||
    name.startsWith(`${prefix}/`) ||
    name.startsWith(`${prefix}:`) ||
    name.startsWith(`${prefix}@`)
  );
}

/** The `[[registry]]` entry with the longest prefix matching `registry/repository`, if any. */
export function findRegistryEntry(conf: RegistriesConf, name: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  for (const r of conf.registries) {
    if (prefixMatches(r.prefix, name) && (!best || r.prefix.length > best.prefix.length)) best = r;
  }
  return best;
}

/** One place an image may be pulled from. */
export interface PullSource {
  /** `host[:port]/repository` */
  registry: string;
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

/**
 * The places to pull `registry/repository` from, in order: mirrors first (respecting
 * `pull-from-mirror`), then the (possibly rewritten) location. Throws `DENIED` for blocked
 * registries.
 */
export function pullSources(
  conf: RegistriesConf,
  registry: string,
  repository: string,
  byDigest: boolean,
): PullSource[] {
  const name = `${registry}/${repository}`;
  const entry = findRegistryEntry(conf, name);
  if (!entry) return [{ registry, repository, insecure: false, mirror: false }];
  if (entry.blocked)
    throw new ImageModeError("DENIED", `registry ${name} is blocked in registries.conf`, {
      data: { name },
    });
  const rewrite = (location: string): { registry: string; repository: string } => {
    const full = entry.prefix.startsWith("*.")
      ? `${location}/${repository}`
      : location + name.slice(entry.prefix.length);
    const i = full.indexOf("/");
    return { registry: full.slice(0, i), repository: full.slice(i + 1) };
  };
  const out: PullSource[] = [];
  for (const m of entry.mirrors) {
    const mode = m.pullFromMirror ?? "all";
    if ((mode === "digest-only" && !byDigest) || (mode === "tag-only" && byDigest)) continue;
    out.push({ ...rewrite(m.location), insecure: m.insecure, mirror: true });
  }
  out.push({ ...rewrite(entry.location), insecure: entry.insecure, mirror: false });
  return out;
}

/** True when registries.conf marks `registry` (host[:port]) insecure. */
export function isInsecureRegistry(conf: RegistriesConf, registry: string): boolean {
  const e = findRegistryEntry(conf, registry);
  return e?.insecure === true && (e.prefix === registry || e.prefix.startsWith("*."));
}

/**
 * bootc status from a sysroot: each deployment's image facts come from its commit's metadata
 * (`ostree.manifest-digest`, `ostree.container.image-config`), the tracked reference from its
 * origin, the cached update from the detached metadata `--check` wrote.
 */
import { metadataValue, type OstreeRepo, Variant } from "@imagemode/ostree-store";
import type { ImageReference } from "./image-reference.js";
import {
  type BootcHost,
  buildHostStatus,
  type ImageStatus,
  type StatusDeployment,
} from "./status.js";
import type { Deployment, Sysroot } from "./sysroot.js";

/** Detached-metadata keys under which `upgrade --check` records an available update. */
export const CACHED_UPDATE_DIGEST = "imagemode.cached-update.manifest-digest";
/** The cached update's image config (canonical JSON). */
export const CACHED_UPDATE_CONFIG = "imagemode.cached-update.config";

/** Node's `process.arch` → OCI architecture. */
export function ociArch(arch: string): string {
  return ({ x64: "amd64", ia32: "386" } as Record<string, string>)[arch] ?? arch;
}

/** The image facts bootc shows, from an image config and manifest digest. */
export function imageStatusOf(
  image: ImageReference,
  manifestDigest: string,
  config: Record<string, unknown>,
): ImageStatus {
  const labels = ((config.config as { Labels?: Record<string, unknown> } | undefined)?.Labels ??
    {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    image,
    version: str(labels["org.opencontainers.image.version"]) ?? str(labels.version),
    timestamp: str(labels["org.opencontainers.image.created"]) ?? str(config.created),
    imageDigest: manifestDigest,
    architecture: str(config.architecture) ?? "amd64",
  };
}

/** Reads the manifest digest and config stored in an imported image's merge commit. */
export async function commitImageFacts(
  repo: OstreeRepo,
  checksum: string,
): Promise<{ manifestDigest: string; config: Record<string, unknown> } | null> {
  if (!(await repo.hasObject(checksum, "commit").catch(() => false))) return null;
  const c = await repo.readCommit(checksum);
  const d = metadataValue(c.metadata, "ostree.manifest-digest");
  const cfg = metadataValue(c.metadata, "ostree.container.image-config");
  if (!d || typeof d.value !== "string") return null;
  let config: Record<string, unknown> = {};
  if (cfg && typeof cfg.value === "string") {
    try {
      config = JSON.parse(cfg.value) as Record<string, unknown>;
    } catch {
      config = {};
    }
  }
  return { manifestDigest: d.value, config };
}

/** The update `--check` recorded for a commit (detached metadata), if any. */
export async function readCachedUpdate(
  repo: OstreeRepo,
  checksum: string,
): Promise<{ manifestDigest: string; config: Record<string, unknown> } | null> {
  const meta = await repo.readCommitMeta(checksum).catch(() => null);
  if (!meta) return null;
  const d = meta.find(([k]) => k === CACHED_UPDATE_DIGEST)?.[1];
  const c = meta.find(([k]) => k === CACHED_UPDATE_CONFIG)?.[1];
  if (!d || typeof d.value !== "string") return null;
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(typeof c?.value === "string" ? c.value : "{}") as Record<string, unknown>;
  } catch {
    config = {};
  }
  return { manifestDigest: d.value, config };
}

/** Records an available update on a commit (replacing the cached-update keys only). */
export async function writeCachedUpdate(
  repo: OstreeRepo,
  checksum: string,
  update: { manifestDigest: string; configJson: string },
): Promise<void> {
  const meta = ((await repo.readCommitMeta(checksum).catch(() => null)) ?? []).filter(
    ([k]) => k !== CACHED_UPDATE_DIGEST && k !== CACHED_UPDATE_CONFIG,
  );
  meta.push([CACHED_UPDATE_DIGEST, new Variant("s", update.manifestDigest)]);
  meta.push([CACHED_UPDATE_CONFIG, new Variant("s", update.configJson)]);
  await repo.writeCommitMeta(checksum, meta);
}

/** A deployment's {@link StatusDeployment} (image facts from its commit). */
export async function statusDeploymentOf(
  repo: OstreeRepo,
  d: Deployment,
): Promise<StatusDeployment> {
  const facts = d.origin?.image ? await commitImageFacts(repo, d.checksum) : null;
  const image =
    facts && d.origin?.image
      ? imageStatusOf(d.origin.image, facts.manifestDigest, facts.config)
      : null;
  const cached = d.origin?.image ? await readCachedUpdate(repo, d.checksum) : null;
  return {
    stateroot: d.stateroot,
    checksum: d.checksum,
    serial: d.serial,
    pinned: d.pinned,
    staged: d.staged,
    booted: d.booted,
    image,
    cachedUpdate:
      cached && d.origin?.image && cached.manifestDigest !== facts?.manifestDigest
        ? imageStatusOf(d.origin.image, cached.manifestDigest, cached.config)
        : null,
  };
}

/**
 * The `BootcHost` document of a sysroot. Offline (nothing booted), the first deployment stands
 * in for the booted one, as the machine would boot it.
 */
export async function sysrootHostStatus(
  sysroot: Sysroot,
  repo: OstreeRepo,
  options: { readOnly?: boolean } = {},
): Promise<BootcHost> {
  const list: StatusDeployment[] = [];
  const anyBooted = sysroot.deployments.some((d) => d.booted);
  for (const d of sysroot.deployments) {
    const s = await statusDeploymentOf(repo, d);
    if (!anyBooted && d === sysroot.deployments.find((x) => !x.staged)) s.booted = true;
    list.push(s);
  }
  return buildHostStatus(list, options);
}

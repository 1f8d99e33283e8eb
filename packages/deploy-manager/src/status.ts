import { stringify as yamlStringify } from "yaml";
import { formatOstreeImageReference, type ImageReference } from "./image-reference.js";

/** bootc's `ImageStatus`: what image a deployment runs. */
export interface ImageStatus {
  image: ImageReference;
  /** Config label `org.opencontainers.image.version` (legacy `version`). */
  version: string | null;
  /** RFC 3339: label `org.opencontainers.image.created`, else config `created`. */
  timestamp: string | null;
  /** The manifest digest. */
  imageDigest: string;
  /** OCI architecture name (`amd64`, `arm64`). */
  architecture: string;
}

/** bootc's `BootEntry`: one deployment in the status document. */
export interface BootEntry {
  image: ImageStatus | null;
  cachedUpdate: ImageStatus | null;
  incompatible: boolean;
  pinned: boolean;
  softRebootCapable: boolean;
  downloadOnly: boolean;
  store: "ostreeContainer" | null;
  ostree: { stateroot: string; checksum: string; deploySerial: number } | null;
}

/** bootc's `org.containers.bootc/v1` `BootcHost` document (`bootc status --format json`). */
export interface BootcHost {
  apiVersion: "org.containers.bootc/v1";
  kind: "BootcHost";
  metadata: { name: "host" };
  spec: { image: ImageReference | null; bootOrder: "default" | "rollback" };
  status: {
    staged: BootEntry | null;
    booted: BootEntry | null;
    rollback: BootEntry | null;
    otherDeployments: BootEntry[];
    rollbackQueued: boolean;
    type: "bootcHost" | null;
    usrOverlay: null;
    readOnly: boolean;
  };
}

/** A deployment as the status builder needs it (plain data read from a sysroot). */
export interface StatusDeployment {
  stateroot: string;
  checksum: string;
  serial: number;
  pinned: boolean;
  staged: boolean;
  booted: boolean;
  /** From the commit's container metadata; null for a deployment not made from an image. */
  image: ImageStatus | null;
  cachedUpdate?: ImageStatus | null;
}

/**
 * Builds the `BootcHost` document from a sysroot's deployments, in boot order (index 0 boots
 * next). `staged` is the staged deployment; `rollback` the first non-booted, non-staged
 * deployment of the booted stateroot; the rest go to `otherDeployments`.
 */
export function buildHostStatus(
  deployments: readonly StatusDeployment[],
  options: { readOnly?: boolean } = {},
): BootcHost {
  const entry = (d: StatusDeployment): BootEntry => ({
    image: d.image,
    cachedUpdate: d.cachedUpdate ?? null,
    incompatible: false,
    pinned: d.pinned,
    softRebootCapable: false,
    downloadOnly: false,
    store: d.image ? "ostreeContainer" : null,
    ostree: { stateroot: d.stateroot, checksum: d.checksum, deploySerial: d.serial },
  });
  const staged = deployments.find((d) => d.staged) ?? null;
  const bootedIndex = deployments.findIndex((d) => d.booted);
  const booted = bootedIndex >= 0 ? deployments[bootedIndex]! : null;
  const rollbackIndex = booted
    ? deployments.findIndex((d) => !d.booted && !d.staged && d.stateroot === booted.stateroot)
    : -1;
  const rollback = rollbackIndex >= 0 ? deployments[rollbackIndex]! : null;
  const rollbackQueued = rollbackIndex >= 0 && rollbackIndex < bootedIndex;
  const others = deployments.filter((d) => d !== staged && d !== booted && d !== rollback);
  const specSource = staged ?? booted;
  return {
    apiVersion: "org.containers.bootc/v1",
    kind: "BootcHost",
    metadata: { name: "host" },
    spec: {
      image: specSource?.image?.image ?? null,
      bootOrder: rollbackQueued ? "rollback" : "default",
    },
    status: {
      staged: staged ? entry(staged) : null,
      booted: booted ? entry(booted) : null,
      rollback: rollback ? entry(rollback) : null,
      otherDeployments: others.map(entry),
      rollbackQueued,
      type: booted?.image ? "bootcHost" : null,
      usrOverlay: null,
      readOnly: options.readOnly ?? false,
    },
  };
}

/** JSON with keys sorted at every level, as `bootc status --format json` prints it. */
export function hostStatusToJson(host: BootcHost): string {
  return `${JSON.stringify(sortKeys(host), null, 2)}\n`;
}

/** YAML, as `bootc status` prints when not on a terminal. */
export function hostStatusToYaml(host: BootcHost): string {
  return yamlStringify(sortKeys(host));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * A human rendering in the style of `rpm-ostree status`: `●` marks the booted deployment,
 * each with its image, digest, version and date. Not a stable format.
 */
export function renderHostStatus(host: BootcHost): string {
  const lines: string[] = [];
  const s = host.status;
  const rows: [string, BootEntry | null][] = [
    ["Staged", s.staged],
    ["Booted", s.booted],
    ["Rollback", s.rollback],
  ];
  const block = (label: string, e: BootEntry, mark: string) => {
    const name = e.image
      ? formatOstreeImageReference(e.image.image)
      : `${e.ostree?.checksum ?? "?"}.${e.ostree?.deploySerial ?? 0}`;
    lines.push(`${mark} ${label.padEnd(9)}${name}${e.pinned ? " (pinned)" : ""}`);
    if (e.image) {
      lines.push(`${" ".repeat(13)}Digest: ${e.image.imageDigest}`);
      const ver = e.image.version ?? "<none>";
      lines.push(
        `${" ".repeat(12)}Version: ${ver}${e.image.timestamp ? ` (${e.image.timestamp})` : ""}`,
      );
    }
    if (e.ostree)
      lines.push(
        `${" ".repeat(13)}Commit: ${e.ostree.checksum}.${e.ostree.deploySerial} (${e.ostree.stateroot})`,
      );
    if (e.cachedUpdate)
      lines.push(
        `${" ".repeat(7)}Update available: ${e.cachedUpdate.imageDigest} (${e.cachedUpdate.version ?? "no version"})`,
      );
  };
  for (const [label, e] of rows) {
    if (!e) continue;
    if (lines.length) lines.push("");
    block(`${label}:`, e, label === "Booted" ? "●" : " ");
  }
  for (const e of s.otherDeployments) {
    if (lines.length) lines.push("");
    block("Other:", e, " ");
  }
  if (s.rollbackQueued) lines.push("", "Rollback queued: the rollback deployment boots next.");
  if (!lines.length) lines.push("No deployments.");
  return `${lines.join("\n")}\n`;
}

/**
 * The staged-deployment record of libostree, `/run/ostree/staged-deployment`: a GVariant `a{sv}`
 * written by `ostree admin deploy --stage` (and by this package when it stages) and read by
 * `ostree admin status` / `ostree admin finalize-staged` when the system is booted. Keys, in the
 * order libostree writes them:
 *
 * - `target` (`a{sv}`): the staged deployment — `name` (`<checksum>.<serial>`), `osname`, `bootcsum`;
 * - `merge-deployment` (`a{sv}`, optional): the same three keys for the merge deployment;
 * - `kargs` (`as`, optional): the kernel arguments; without them finalization takes the merge
 *   deployment's;
 * - `overlay-initrds` (`as`, optional): checksums of overlay initramfs images.
 *
 * Pure codec (bytes in, values out); other keys are kept in `extra`, in order.
 */
import { join } from "node:path";
import { parseError } from "@imagemode/core";
import {
  asvEntries,
  decodeVariant,
  encodeVariant,
  type GValue,
  Variant,
} from "@imagemode/ostree-store";

/** A deployment as the record names it. */
export interface StagedDeploymentRef {
  /** `<checksum>.<serial>`. */
  name: string;
  /** The stateroot. */
  osname: string;
  bootcsum: string;
}

/** The decoded `/run/ostree/staged-deployment`. */
export interface OstreeStagedRecord {
  target: StagedDeploymentRef;
  mergeDeployment?: StagedDeploymentRef;
  kargs?: string[];
  overlayInitrds?: string[];
  /** Keys this codec does not interpret (e.g. newer libostree's finalization lock), in order. */
  extra?: [string, Variant][];
}

/** Where libostree keeps the record under a run directory (`/run` on a booted system). */
export function ostreeStagedRecordPath(runDir: string): string {
  return join(runDir, "ostree", "staged-deployment");
}

/** The file a booted system has (`/run/ostree-booted`); libostree reads the record only with it. */
export function ostreeBootedPath(runDir: string): string {
  return join(runDir, "ostree-booted");
}

function refVariant(r: StagedDeploymentRef): Variant {
  return new Variant("a{sv}", [
    ["name", new Variant("s", r.name)],
    ["osname", new Variant("s", r.osname)],
    ["bootcsum", new Variant("s", r.bootcsum)],
  ]);
}

/** Encodes a record as libostree writes it (normal-form GVariant `a{sv}`). */
export function encodeOstreeStagedRecord(record: OstreeStagedRecord): Uint8Array {
  const entries: GValue[] = [["target", refVariant(record.target)]];
  if (record.mergeDeployment)
    entries.push(["merge-deployment", refVariant(record.mergeDeployment)]);
  if (record.kargs) entries.push(["kargs", new Variant("as", [...record.kargs])]);
  if (record.overlayInitrds)
    entries.push(["overlay-initrds", new Variant("as", [...record.overlayInitrds])]);
  for (const [k, v] of record.extra ?? []) entries.push([k, v]);
  return encodeVariant("a{sv}", entries);
}

function stringOf(v: Variant | undefined, key: string): string {
  if (v?.type !== "s" || typeof v.value !== "string")
    throw parseError(`staged deployment: missing key ${key}`, { op: "deploy.stagedRecord" });
  return v.value;
}

function refOf(v: Variant, key: string): StagedDeploymentRef {
  if (v.type !== "a{sv}")
    throw parseError(`staged deployment: ${key} is ${v.type}, not a{sv}`, {
      op: "deploy.stagedRecord",
    });
  const m = new Map(asvEntries(v.value));
  return {
    name: stringOf(m.get("name"), `${key}.name`),
    osname: stringOf(m.get("osname"), `${key}.osname`),
    bootcsum: stringOf(m.get("bootcsum"), `${key}.bootcsum`),
  };
}

function strvOf(v: Variant, key: string): string[] {
  if (v.type !== "as" || !Array.isArray(v.value) || v.value.some((s) => typeof s !== "string"))
    throw parseError(`staged deployment: ${key} is ${v.type}, not as`, {
      op: "deploy.stagedRecord",
    });
  return v.value as string[];
}

/**
 * Decodes `/run/ostree/staged-deployment`.
 *
 * @throws ImageModeError `PARSE` for bytes that are not such a record (no `target`, wrong types).
 */
export function decodeOstreeStagedRecord(bytes: Uint8Array): OstreeStagedRecord {
  let target: StagedDeploymentRef | undefined;
  const out: Omit<OstreeStagedRecord, "target"> = {};
  const extra: [string, Variant][] = [];
  for (const [k, v] of asvEntries(decodeVariant("a{sv}", bytes))) {
    if (k === "target") target = refOf(v, k);
    else if (k === "merge-deployment") out.mergeDeployment = refOf(v, k);
    else if (k === "kargs") out.kargs = strvOf(v, k);
    else if (k === "overlay-initrds") out.overlayInitrds = strvOf(v, k);
    else extra.push([k, v]);
  }
  if (!target)
    throw parseError("staged deployment: missing key target", { op: "deploy.stagedRecord" });
  return { target, ...out, ...(extra.length ? { extra } : {}) };
}

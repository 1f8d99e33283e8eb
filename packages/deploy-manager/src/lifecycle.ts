/**
 * Pin, unpin, undeploy and rollback: each re-reads nothing itself — it takes an opened
 * {@link Sysroot} and returns or applies a plan.
 */
import { KernelArgs } from "@imagemode/bootloader";
import { ImageModeError, invalidArgument, invalidState, type OpOptions } from "@imagemode/core";
import type { OstreeRepo } from "@imagemode/ostree-store";
import { cleanupSysroot } from "./cleanup.js";
import { serializeOrigin } from "./origin.js";
import {
  type Deployment,
  deploymentDir,
  removeStagedRecords,
  rollbackDeploymentOf,
  type Sysroot,
} from "./sysroot.js";
import { nodeSysrootFs, type SysrootFs, writeFileAtomic } from "./sysroot-fs.js";
import {
  applyWritePlan,
  listItemOf,
  planWriteDeployments,
  type WritePlan,
} from "./write-deployments.js";

/** Options of the lifecycle operations. */
export interface LifecycleOptions extends OpOptions {
  fs?: SysrootFs;
  repo: OstreeRepo;
  /** Run cleanup afterwards (default true). */
  cleanup?: boolean;
  clearImmutable?: (path: string) => Promise<void>;
}

function byIndex(sysroot: Sysroot, index: number, op: string): Deployment {
  const d = sysroot.deployments[index];
  if (!Number.isInteger(index) || !d)
    throw invalidArgument(`Out of range deployment index ${index}`, {
      op,
      data: { index, count: sysroot.deployments.length },
    });
  return d;
}

/**
 * `ostree admin pin [--unpin] INDEX`: rewrites the origin with `[libostree-transient] pinned=true`
 * (or without it). Returns ostree's message (`Deployment 1 is now pinned`).
 */
export async function setPinned(
  sysroot: Sysroot,
  index: number,
  pinned: boolean,
  options: { fs?: SysrootFs } = {},
): Promise<string> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.pin";
  const d = byIndex(sysroot, index, op);
  if (d.staged) throw invalidState("Cannot pin staged deployment", { op, data: { index } });
  if (d.pinned === pinned)
    return `Deployment ${index} is already ${pinned ? "pinned" : "unpinned"}`;
  const origin = d.origin ?? { pinned: false, keyFile: { groups: [] } };
  const text = serializeOrigin({ ...origin, pinned });
  await writeFileAtomic(fs, `${deploymentDir(sysroot.root, d)}.origin`, text);
  return `Deployment ${index} is now ${pinned ? "pinned" : "unpinned"}`;
}

/** Plans `ostree admin undeploy INDEX`: the list without it (never the booted one). */
export function planUndeploy(sysroot: Sysroot, index: number): WritePlan | "staged" {
  const op = "deploy.undeploy";
  const d = byIndex(sysroot, index, op);
  if (d.booted)
    throw invalidState(`Cannot undeploy currently booted deployment ${index}`, {
      op,
      data: { index },
    });
  if (d.staged) return "staged";
  return planWriteDeployments(
    sysroot,
    sysroot.deployments.filter((x) => !x.staged && x !== d).map(listItemOf),
  );
}

/** `ostree admin undeploy INDEX` (a staged deployment: its record is dropped). */
export async function undeploy(
  sysroot: Sysroot,
  index: number,
  options: LifecycleOptions,
): Promise<string[]> {
  const fs = options.fs ?? nodeSysrootFs;
  const plan = planUndeploy(sysroot, index);
  const d = sysroot.deployments[index] as Deployment;
  const messages: string[] = [];
  if (plan === "staged") {
    await removeStagedRecords(fs, sysroot.runDir);
  } else {
    await applyWritePlan(plan, { ...options, fs });
    messages.push(plan.summary);
  }
  if (options.cleanup !== false) {
    const r = await cleanupSysroot(sysroot.root, { ...options, fs, runDir: sysroot.runDir });
    if (r.prunedBytes) messages.push(`Freed objects: ${r.prunedBytes} bytes`);
  }
  messages.push(`Deleted deployment ${d.name}`);
  return messages;
}

/**
 * Plans bootc's rollback: the same list with the rollback deployment first (when it is queued
 * already — the rollback is first — the booted one goes back to the front: "again to revert").
 *
 * @throws ImageModeError `INVALID_STATE` without a rollback deployment, `CONFLICT` with a staged one.
 */
export function planRollback(sysroot: Sysroot): WritePlan {
  const op = "deploy.rollback";
  if (sysroot.staged)
    throw new ImageModeError(
      "CONFLICT",
      "A staged deployment is present; finalize or undeploy it before rolling back",
      { op },
    );
  const list = sysroot.deployments;
  const b = sysroot.booted;
  let first: Deployment | null;
  if (b) {
    const r = rollbackDeploymentOf(sysroot);
    if (!r) throw invalidState("No rollback deployment found", { op });
    // rollback queued (r before b): revert by putting the booted one first
    first = list.indexOf(r) < list.indexOf(b) ? b : r;
  } else {
    first = list[1] ?? null;
    if (!first) throw invalidState("No rollback deployment found", { op });
  }
  const f = first;
  return planWriteDeployments(sysroot, [f, ...list.filter((d) => d !== f)].map(listItemOf));
}

/** Applies {@link planRollback}. Returns bootc-like messages. */
export async function rollback(sysroot: Sysroot, options: LifecycleOptions): Promise<string[]> {
  const fs = options.fs ?? nodeSysrootFs;
  const plan = planRollback(sysroot);
  await applyWritePlan(plan, { ...options, fs });
  const first = plan.list[0];
  const msgs = [plan.summary];
  if (first)
    msgs.push(
      sysroot.booted &&
        first.checksum === sysroot.booted.checksum &&
        first.serial === sysroot.booted.serial
        ? "Next boot: current deployment"
        : "Next boot: rollback deployment",
    );
  return msgs;
}

/**
 * Plans changing the kernel arguments of the default deployment (like
 * `ostree admin instutil set-kargs --append/--delete`): the same list, the first deployment's
 * arguments edited — a new bootversion.
 */
export function planSetKernelArgs(
  sysroot: Sysroot,
  change: { append?: string[]; delete?: string[] },
): WritePlan {
  const list = sysroot.deployments.filter((d) => !d.staged);
  const first = list[0];
  if (!first) throw invalidState("No deployments", { op: "deploy.kargs" });
  const kargs = KernelArgs.parse(first.kargs);
  for (const a of change.delete ?? []) kargs.delete(a);
  for (const a of change.append ?? []) kargs.append(a);
  return planWriteDeployments(sysroot, [
    { ...listItemOf(first), kargs: kargs.toString() },
    ...list.slice(1).map(listItemOf),
  ]);
}

/** The kernel arguments of a deployment without `ostree=` (what `kargs` prints). */
export function userKernelArgs(d: Deployment): string[] {
  return KernelArgs.parse(d.kargs).delete("ostree").toArray();
}

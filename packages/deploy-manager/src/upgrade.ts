/**
 * bootc's upgrade and switch over an injected image source (`ReadOnlyTarget`: a registry, an OCI
 * layout, an unpacked archive): compare manifest digests first, `--check` records the update,
 * import only the missing layers, stage (or deploy) the new commit. Returns bootc's lines as data.
 */
import {
  formatBytes,
  ImageModeError,
  invalidState,
  type OpOptions,
  type ReadOnlyTarget,
} from "@imagemode/core";
import {
  applyImport,
  canonicalJson,
  type OstreeRepo,
  prepareImport,
} from "@imagemode/ostree-store";
import { applyDeployPlan, checkFreeSpace, planDeploy } from "./deploy.js";
import { commitImageFacts, ociArch, writeCachedUpdate } from "./host-status.js";
import { type ImageReference, transportString } from "./image-reference.js";
import { newOrigin } from "./origin.js";
import { checkRepoLock, withRepoLock } from "./repo-lock.js";
import type { Deployment, Sysroot } from "./sysroot.js";
import { nodeSysrootFs, type SysrootFs } from "./sysroot-fs.js";

/** Options of {@link upgrade} and {@link switchImage}. */
export interface UpgradeOptions extends OpOptions {
  fs?: SysrootFs;
  repo: OstreeRepo;
  /** Where the image is read from. */
  source: ReadOnlyTarget;
  /** The tag or digest to resolve in `source`. */
  sourceRef: string;
  /** Only check: record the update for `status` (`cachedUpdate`), change nothing else. */
  check?: boolean;
  /** Stage (default true; finalize with `finalizeStaged`); false deploys at once. */
  stage?: boolean;
  /** OCI architecture the host runs (default from `process.arch`). */
  architecture?: string;
  /** Keep every existing deployment. */
  retain?: boolean;
  /** Keep top-level paths other than usr/etc/var when importing (see `InstallOptions`). */
  allowNonUsr?: boolean;
  /** `chattr +i` / `-i` hooks (see `ApplyDeployOptions`). */
  setImmutable?: (path: string) => Promise<void>;
  clearImmutable?: (path: string) => Promise<void>;
}

/** What an upgrade or switch did. */
export interface UpgradeResult {
  outcome: "no-update" | "staged-unchanged" | "update-available" | "queued" | "deployed";
  /** bootc's lines (`No update available.`, `layers already present: …`, `Queued for next boot: …`). */
  messages: string[];
  manifestDigest: string;
  version: string | null;
  layersPresent: number;
  layersNeeded: number;
  bytesNeeded: number;
  /** The new deployment `<checksum>.<serial>`. */
  deployment?: string;
}

/** The deployment an upgrade starts from: the booted one, else (offline) the first. */
export function upgradeBase(sysroot: Sysroot): Deployment | null {
  return sysroot.booted ?? sysroot.deployments.find((d) => !d.staged) ?? null;
}

/** `bootc upgrade`: the image the base deployment's origin tracks. */
export async function upgrade(sysroot: Sysroot, options: UpgradeOptions): Promise<UpgradeResult> {
  const base = upgradeBase(sysroot);
  const image = base?.origin?.image;
  if (!base || !image)
    throw invalidState("No image in the booted deployment's origin; use switch", {
      op: "deploy.upgrade",
    });
  return update(sysroot, base, image, false, options);
}

/** `bootc switch REF`: deploy another image and track it from now on. */
export async function switchImage(
  sysroot: Sysroot,
  image: ImageReference,
  options: UpgradeOptions,
): Promise<UpgradeResult> {
  const base = upgradeBase(sysroot);
  if (!base)
    throw invalidState("No deployment to switch from; use install", { op: "deploy.switch" });
  return update(sysroot, base, image, true, options);
}

function display(image: ImageReference): string {
  return image.transport === "registry" ? image.image : transportString(image);
}

async function update(
  sysroot: Sysroot,
  base: Deployment,
  image: ImageReference,
  isSwitch: boolean,
  options: UpgradeOptions,
): Promise<UpgradeResult> {
  const op = isSwitch ? "deploy.switch" : "deploy.upgrade";
  const fs = options.fs ?? nodeSysrootFs;
  const { repo } = options;
  const plan = await prepareImport(repo, options.source, options.sourceRef, {
    imageReference: transportString(image),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const labels = ((plan.config.config as { Labels?: Record<string, unknown> } | undefined)
    ?.Labels ?? {}) as Record<string, unknown>;
  const version =
    (labels["org.opencontainers.image.version"] as string | undefined) ??
    (labels.version as string | undefined) ??
    null;
  const present = plan.layers.filter((l) => l.present).length;
  const result = (outcome: UpgradeResult["outcome"], messages: string[]): UpgradeResult => ({
    outcome,
    messages,
    manifestDigest: plan.manifestDigest,
    version,
    layersPresent: present,
    layersNeeded: plan.needed,
    bytesNeeded: plan.bytesNeeded,
  });
  const sameImage = (d: Deployment) =>
    d.origin?.image?.image === image.image && d.origin.image.transport === image.transport;
  const baseFacts = await commitImageFacts(repo, base.checksum);
  if (baseFacts?.manifestDigest === plan.manifestDigest && (!isSwitch || sameImage(base))) {
    return result("no-update", [`No changes in: ${display(image)}`, "No update available."]);
  }
  const staged = sysroot.staged;
  if (staged) {
    const f = await commitImageFacts(repo, staged.checksum);
    if (f?.manifestDigest === plan.manifestDigest && sameImage(staged))
      return result("staged-unchanged", ["Staged update present, not changed."]);
  }
  if (!("containers.bootc" in labels) && !("ostree.bootable" in labels))
    throw new ImageModeError(
      "UNSUPPORTED",
      "Image is not bootable: its config has neither the containers.bootc nor the ostree.bootable label",
      { op, data: { manifestDigest: plan.manifestDigest } },
    );
  const arch = options.architecture ?? ociArch(process.arch);
  const imgArch = plan.config.architecture;
  if (typeof imgArch === "string" && imgArch !== arch)
    throw new ImageModeError(
      "UNSUPPORTED",
      `Image architecture ${imgArch} does not match ${arch}`,
      {
        op,
      },
    );
  const header = [
    `${isSwitch ? "Switching to" : "Update available for"}: ${display(image)}`,
    ...(version ? [`  Version: ${version}`] : []),
    `  Digest: ${plan.manifestDigest}`,
  ];
  if (options.check) {
    if (!isSwitch)
      await writeCachedUpdate(repo, base.checksum, {
        manifestDigest: plan.manifestDigest,
        configJson: canonicalJson(plan.config),
      });
    return result("update-available", header);
  }
  const messages = [
    `layers already present: ${present}; layers needed: ${plan.needed} (${formatBytes(plan.bytesNeeded)})`,
  ];
  options.onProgress?.({
    type: "step",
    task: op,
    step: 1,
    steps: 3,
    description: messages[0] as string,
  });
  // compressed bytes, plus as much again unpacked (a conservative estimate), before fetching
  await checkFreeSpace(fs, sysroot.root, plan.bytesNeeded * 3);
  // a crashed earlier run may have left the repository lock behind (see repo-lock.ts)
  await checkRepoLock(repo.path, {
    fs,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const imported = await withRepoLock(repo.path, () =>
    applyImport(repo, options.source, plan, {
      imageReference: transportString(image),
      ...(options.allowNonUsr ? { allowNonUsr: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    }),
  );
  options.onProgress?.({
    type: "step",
    task: op,
    step: 2,
    steps: 3,
    description: "importing done",
  });
  const stage = options.stage ?? true;
  const origin = base.origin?.image && !isSwitch ? base.origin : newOrigin({ image });
  const dplan = await planDeploy(sysroot, {
    repo,
    fs,
    commit: imported.commit,
    stateroot: base.stateroot,
    origin,
    stage,
    ...(options.retain ? { retain: true } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const applied = await applyDeployPlan(dplan, {
    repo,
    fs,
    ...(options.setImmutable ? { setImmutable: options.setImmutable } : {}),
    ...(options.clearImmutable ? { clearImmutable: options.clearImmutable } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  options.onProgress?.({ type: "step", task: op, step: 3, steps: 3, description: "staged" });
  const newLayers = imported.layers.filter((l) => l.imported).length;
  messages.push(
    `${stage ? "Queued for next boot" : "Deployed"}: ${display(image)}`,
    ...(version ? [`  Version: ${version}`] : []),
    `  Digest: ${plan.manifestDigest}`,
    `Total new layers: ${newLayers}  Size: ${formatBytes(plan.bytesNeeded)}`,
    ...applied.messages.filter((m) => !m.startsWith("Staged deployment")),
  );
  return { ...result(stage ? "queued" : "deployed", messages), deployment: applied.name };
}

/**
 * `bootc install to-filesystem` onto an empty sysroot directory: `init-fs`, the stateroot, the
 * image imported into `ostree/repo`, and the first deployment (kernel arguments: the caller's,
 * then the image's kargs.d).
 */
import { join } from "node:path";
import { type OpOptions, type ReadOnlyTarget, toImageModeError } from "@imagemode/core";
import { importImage, OstreeRepo } from "@imagemode/ostree-store";
import { applyDeployPlan, planDeploy } from "./deploy.js";
import { type ImageReference, transportString } from "./image-reference.js";
import { newOrigin } from "./origin.js";
import { checkRepoLock, withRepoLock } from "./repo-lock.js";
import { initStateroot, initSysroot, openSysroot } from "./sysroot.js";
import { exists, nodeSysrootFs, type SysrootFs } from "./sysroot-fs.js";

/** Options of {@link installToSysroot}. */
export interface InstallOptions extends OpOptions {
  fs?: SysrootFs;
  source: ReadOnlyTarget;
  /** The tag or digest to resolve in `source`. */
  sourceRef: string;
  /** What the deployment tracks (its origin). */
  image: ImageReference;
  /** Default `default` (bootc's stateroot name). */
  stateroot?: string;
  /** Kernel arguments before the image's kargs.d (`root=…`, `rw`, `--karg`). */
  kargs?: string[];
  /**
   * Keep top-level paths other than usr/etc/var (`bin -> usr/bin`, …) when importing; bootc's
   * default (false) drops them, so an image needs them in a chunked base.
   */
  allowNonUsr?: boolean;
  /** Makes the deployment root immutable (see `ApplyDeployOptions.setImmutable`). */
  setImmutable?: (path: string) => Promise<void>;
}

/** The result of {@link installToSysroot}. */
export interface InstallResult {
  commit: string;
  manifestDigest: string;
  deployment: string;
  messages: string[];
}

/** Installs an image into an empty directory as a fresh sysroot. */
export async function installToSysroot(
  root: string,
  options: InstallOptions,
): Promise<InstallResult> {
  const fs = options.fs ?? nodeSysrootFs;
  const stateroot = options.stateroot ?? "default";
  const op = "deploy.install";
  try {
    if (!(await exists(fs, join(root, "ostree/repo/config")))) await initSysroot(root, { fs });
    if (!(await exists(fs, join(root, "ostree/deploy", stateroot))))
      await initStateroot(root, stateroot, { fs });
  } catch (e) {
    throw toImageModeError(e, op, { root });
  }
  const repo = await OstreeRepo.open(join(root, "ostree/repo"), { fs });
  await checkRepoLock(repo.path, {
    fs,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const imported = await withRepoLock(repo.path, () =>
    importImage(repo, options.source, options.sourceRef, {
      imageReference: transportString(options.image),
      ...(options.allowNonUsr ? { allowNonUsr: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    }),
  );
  const sysroot = await openSysroot(root, { fs });
  const plan = await planDeploy(sysroot, {
    repo,
    fs,
    commit: imported.commit,
    stateroot,
    origin: newOrigin({ image: options.image }),
    kargs: options.kargs ?? [],
    mergeDeployment: null,
  });
  const r = await applyDeployPlan(plan, {
    repo,
    fs,
    ...(options.setImmutable ? { setImmutable: options.setImmutable } : {}),
  });
  return {
    commit: imported.commit,
    manifestDigest: imported.manifestDigest,
    deployment: r.name,
    messages: [
      `Installed: ${transportString(options.image)}`,
      `  Digest: ${imported.manifestDigest}`,
      ...r.messages,
    ],
  };
}

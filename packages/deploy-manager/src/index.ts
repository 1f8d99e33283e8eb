/**
 * `@imagemode/deploy-manager`: bootc and `ostree admin` as a library — sysroots, deployments,
 * the `/etc` merge, upgrade/switch/rollback, and bootc-compatible status.
 *
 * @packageDocumentation
 */

export {
  type CleanupOptions,
  type CleanupResult,
  cleanupSysroot,
} from "./cleanup.js";
export {
  type CommitInfo,
  type CommitKernel,
  commitKargsD,
  findCommitKernel,
  readCommitInfo,
  rustArch,
} from "./commit-info.js";
export {
  type ApplyDeployOptions,
  applyDeployPlan,
  checkFreeSpace,
  type DeployOptions,
  type DeployPlan,
  type DeployResult,
  type FinalizeOptions,
  finalizeStaged,
  nextDeploySerial,
  planDeploy,
  retainedDeployments,
} from "./deploy.js";
export {
  describeEtcMerge,
  type EtcChange,
  type EtcEntry,
  type EtcMergePlan,
  formatConfigDiff,
  planEtcMerge,
} from "./etc-merge.js";
export { applyEtcMergeToDirectory, type EtcTreeOptions, listEtcDirectory } from "./etc-tree.js";
export {
  CACHED_UPDATE_CONFIG,
  CACHED_UPDATE_DIGEST,
  commitImageFacts,
  imageStatusOf,
  ociArch,
  readCachedUpdate,
  statusDeploymentOf,
  sysrootHostStatus,
  writeCachedUpdate,
} from "./host-status.js";
export {
  formatOstreeImageReference,
  type ImageReference,
  type ImageSignature,
  imageReferenceFromUser,
  parseOstreeImageReference,
  transportString,
} from "./image-reference.js";
export { type InstallOptions, type InstallResult, installToSysroot } from "./install.js";
export {
  getKey,
  type KeyFile,
  type KeyFileGroup,
  parseKeyFile,
  removeKey,
  serializeKeyFile,
  setKey,
} from "./keyfile.js";
export {
  type LifecycleOptions,
  planRollback,
  planSetKernelArgs,
  planUndeploy,
  rollback,
  setPinned,
  undeploy,
  userKernelArgs,
} from "./lifecycle.js";
export { newOrigin, type Origin, parseOrigin, serializeOrigin } from "./origin.js";
export {
  checkRepoLock,
  REPO_LOCK_DIR,
  type RepoLockOptions,
  type RepoLockState,
  repoLockedError,
  withRepoLock,
} from "./repo-lock.js";
export {
  commitFileContexts,
  type DeploySelinuxOptions,
  deploymentFileContexts,
  type LabelDirectoryOptions,
  labelDirectory,
  type SetXattr,
  sysrootSelinuxPaths,
} from "./selinux.js";
export {
  decodeOstreeStagedRecord,
  encodeOstreeStagedRecord,
  type OstreeStagedRecord,
  ostreeBootedPath,
  ostreeStagedRecordPath,
  type StagedDeploymentRef,
} from "./staged-deployment.js";
export {
  type BootcHost,
  type BootEntry,
  buildHostStatus,
  hostStatusToJson,
  hostStatusToYaml,
  type ImageStatus,
  renderHostStatus,
  type StatusDeployment,
} from "./status.js";
export {
  type BootedSpec,
  type Deployment,
  deploymentDir,
  ensureStaterootVar,
  initStateroot,
  initSysroot,
  mergeDeploymentOf,
  type OpenSysrootOptions,
  openSysroot,
  openSysrootRepo,
  osNameFromRelease,
  parseDeploymentName,
  parseOsRelease,
  removeStagedRecords,
  rollbackDeploymentOf,
  type StagedRecord,
  type Sysroot,
  stagedRecordPath,
} from "./sysroot.js";
export {
  bootFsOf,
  nodeSysrootFs,
  type SysrootFs,
} from "./sysroot-fs.js";
export { compareTreePaths, planFreshSysroot, sysrootTree } from "./sysroot-tree.js";
export {
  switchImage,
  type UpgradeOptions,
  type UpgradeResult,
  upgrade,
  upgradeBase,
} from "./upgrade.js";
export {
  type ApplyOptions,
  applyWritePlan,
  type DeploymentListItem,
  installKernel,
  type KernelInstall,
  listItemOf,
  planWriteDeployments,
  type WritePlan,
  writeDeploymentRefs,
} from "./write-deployments.js";

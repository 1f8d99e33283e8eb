/**
 * `@imagemode/blueprint`: the bootc-image-builder config (`config.toml` / `config.json`) —
 * parse, validate (every problem at once), plan (pure), apply (to a tree or as tree edits).
 *
 * @packageDocumentation
 */
export {
  type ApplyOptions,
  type ApplyResult,
  applyPlan,
  planToTreeEdits,
  type TreeEdit,
} from "./apply.js";
export { DATA_SIZE_UNITS, parseDataSize } from "./data-size.js";
export { type ReadEtcFilesOptions, readEtcFiles } from "./etc-files.js";
export {
  DISK_CUSTOMIZATIONS,
  IMAGE_TYPES,
  ISO_CUSTOMIZATIONS,
  isImageType,
  PXE_CUSTOMIZATIONS,
} from "./image-types.js";
export { splitKernelArgs } from "./kernel-args.js";
export {
  type IdRanges,
  idRanges,
  type LoginDefs,
  type LoginDefsLine,
  loginDef,
  loginDefNumber,
  parseLoginDefs,
  serializeLoginDefs,
} from "./login-defs.js";
export type {
  Blueprint,
  BtrfsSubvolumeCustomization,
  ContainerSpec,
  Customizations,
  DirectoryCustomization,
  DiskCustomization,
  EnabledModuleSpec,
  FileCustomization,
  FilesystemCustomization,
  GroupCustomization,
  IgnitionCustomization,
  IssueCode,
  KernelCustomization,
  LogicalVolumeCustomization,
  PackageGroupSpec,
  PackageSpec,
  PartitionCustomization,
  SshdCustomization,
  SshKeyCustomization,
  UserCustomization,
  ValidationIssue,
  ValidationResult,
} from "./model.js";
export {
  type ConfigFormat,
  formatForFile,
  type ParseOptions,
  parseBlueprint,
  parseConfigFiles,
  serializeBlueprint,
} from "./parse.js";
export {
  appendEntry,
  type ColonFile,
  type ColonLine,
  entries,
  findEntry,
  type GroupEntry,
  type PasswdEntry,
  parseColonFile,
  passwdFields,
  serializeColonFile,
  splitMembers,
  toGroupEntry,
  toPasswdEntry,
} from "./passwd.js";
export { hashPassword, isPasswordHash, makeSalt } from "./password.js";
export {
  type CustomizationPlan,
  type EtcFile,
  type EtcFiles,
  homeOnDisk,
  type PlanEdit,
  type PlannedGroup,
  type PlannedUser,
  type PlanOptions,
  planCustomizations,
  type StoragePlan,
} from "./plan.js";
export { formatPlan } from "./plan-text.js";
export { blueprintJsonSchema } from "./schema.js";
export { keyLines, publicKeyProblem, SSH_KEY_TYPES } from "./ssh-key.js";
export {
  ACCOUNT_NAME,
  cleanPath,
  DENIED_VAR_MOUNTPOINTS,
  mountpointProblem,
  type ValidateOptions,
  validateBlueprint,
} from "./validate.js";

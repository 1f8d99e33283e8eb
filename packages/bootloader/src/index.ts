/**
 * `@imagemode/bootloader`: Boot Loader Spec entries, kernel arguments, ostree's boot directory and
 * its atomic switch, GRUB (BIOS + UEFI) and systemd-boot.
 *
 * @packageDocumentation
 */
export {
  type BackendOptions,
  type BootloaderBackend,
  type BootloaderInstall,
  type BootloaderPlan,
  type BootloaderTargets,
  type GrubBackendOptions,
  grubBackend,
  type SystemdBootBackendOptions,
  systemdBootBackend,
} from "./backend.js";
export { BIOS_MESSAGE_CODE, biosMessageBootCode } from "./bios-message.js";
export {
  type BlsEntry,
  type BlsEntryFields,
  type BlsKeyLine,
  type BlsLine,
  type BlsTextLine,
  type BootCounter,
  blessEntryFileName,
  compareBootEntries,
  countBootAttempt,
  createBlsEntry,
  type EntryFileName,
  formatEntryFileName,
  getBlsOptions,
  getBlsValue,
  getBlsValues,
  parseBlsEntry,
  parseEntryFileName,
  renameBlsEntry,
  serializeBlsEntry,
  setBlsValue,
  sortBootEntries,
} from "./bls.js";
export {
  applyBootSwap,
  type BootDirOptions,
  type BootSwapPlan,
  type BootVersion,
  bootSwapFiles,
  entryOstreeBootPath,
  type OstreeBootArg,
  type OstreeBootDeployment,
  type OstreeEntriesOptions,
  ostreeBootPath,
  parseOstreeBootPath,
  planBootSwap,
  planOstreeEntries,
  readBootVersion,
  readOstreeEntries,
  sortOstreeEntries,
} from "./boot-dir.js";
export { type ExecFn, nodeExec } from "./exec.js";
export { type BootFs, nodeBootFs } from "./fs.js";
export {
  type BiosBootPartition,
  type BiosGrubInput,
  BOOT_IMG,
  DEFAULT_GRUB_MODULES,
  DISKBOOT_BLOCKLIST,
  findImageGrub,
  type ImageGrubFiles,
  type MakeGrubImageOptions,
  makeGrubImage,
  planBiosGrubInstall,
} from "./grub-bios.js";
export { type GrubConfigOptions, grubEntryId, grubQuote, renderGrubConfig } from "./grub-config.js";
export {
  findImageEfiBinaries,
  type GrubEfiInput,
  type ImageEfiBinaries,
  planGrubEfiFiles,
  readGrubEfiPrefix,
} from "./grub-efi.js";
export {
  GRUBENV_SIGNATURE,
  GRUBENV_SIZE,
  GRUBENV_WARNING,
  parseGrubenv,
  type SerializeGrubenvOptions,
  serializeGrubenv,
} from "./grubenv.js";
export {
  KARGS_D_DIR,
  type KargsConfig,
  kargsForArchitecture,
  type LoadKargsOptions,
  loadKargsD,
  parseKargsToml,
} from "./kargs-d.js";
export { type KernelArg, KernelArgs } from "./kernel-args.js";
export {
  applyRawWrites,
  checkRelativePath,
  type PartitionRole,
  type PlacedFile,
  type PlaceFilesOptions,
  placeFiles,
  type RawWrite,
} from "./placement.js";
export {
  defaultPatternFor,
  encodeLoaderEfiVariable,
  LOADER_VENDOR_GUID,
  type LoaderConf,
  loaderEfiVariablePath,
  parseLoaderConf,
  planSystemdBoot,
  renderLoaderConf,
  SYSTEMD_BOOT_EFI,
  type SystemdBootInput,
  withBootCounting,
} from "./systemd-boot.js";
export { compareVersions, strverscmp } from "./version.js";

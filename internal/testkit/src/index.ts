/**
 * `@imagemode/testkit`: the real test harness of imagemode — a private registry, a tiny
 * bootable fixture OS image, QEMU boots, the `ostree` CLI as an oracle and conformance
 * suites. Internal to the monorepo; tests import it, libraries never do.
 *
 * @packageDocumentation
 */

export { type BlobStoreFactory, blobStoreConformance } from "./conformance.js";
export { extractRange } from "./disk-range.js";
export { buildFixtureImage, type FixtureImage, pushFixture } from "./fixture.js";
export { buildNodeFixtureImage, JOB_SH, type NodeFixtureImage } from "./fixture-node.js";
export { type FixtureKernel, fixtureKernel } from "./kernel.js";
export {
  type OstreeCli,
  type OstreeCliOptions,
  type OstreeCliResult,
  ostreeCli,
} from "./ostree.js";
export {
  type BootCommonOptions,
  type BootDiskOptions,
  type BootKernelOptions,
  type BootResult,
  bootDisk,
  bootKernel,
} from "./qemu.js";
export { type Registry, type RegistryOptions, skopeoFlags, startRegistry } from "./registry.js";
export { type SelinuxPolicy, selinuxPolicy } from "./selinux-policy.js";
export { type TempDir, tempDir } from "./temp-dir.js";
export { findTool, requireTool } from "./tools.js";

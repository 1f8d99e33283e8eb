/**
 * `@imagemode/testkit`: the real test harness of imagemode — a private registry, a tiny
 * bootable fixture OS image, QEMU boots, the `ostree` CLI as an oracle and conformance
 * suites. Internal to the monorepo; tests import it, libraries never do.
 *
 * @packageDocumentation
 */
export { type Registry, type RegistryOptions, skopeoFlags, startRegistry } from "./registry.js";
export { type TempDir, tempDir } from "./temp-dir.js";
export { findTool, requireTool } from "./tools.js";

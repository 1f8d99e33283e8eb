/**
 * `@imagemode/deploy-manager`: bootc and `ostree admin` as a library — sysroots, deployments,
 * the `/etc` merge, upgrade/switch/rollback, and bootc-compatible status.
 *
 * @packageDocumentation
 */
export {
  describeEtcMerge,
  type EtcChange,
  type EtcEntry,
  type EtcMergePlan,
  formatConfigDiff,
  planEtcMerge,
} from "./etc-merge.js";
export { applyEtcMergeToDirectory, listEtcDirectory } from "./etc-tree.js";
export {
  formatOstreeImageReference,
  type ImageReference,
  type ImageSignature,
  imageReferenceFromUser,
  parseOstreeImageReference,
  transportString,
} from "./image-reference.js";
export {
  getKey,
  type KeyFile,
  type KeyFileGroup,
  parseKeyFile,
  removeKey,
  serializeKeyFile,
  setKey,
} from "./keyfile.js";
export { newOrigin, type Origin, parseOrigin, serializeOrigin } from "./origin.js";
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

/**
 * Which customizations each bootc-image-builder image type accepts (after osbuild/images'
 * bootc image type definitions and bootc-image-builder's documentation).
 */

/** Customizations of disk images (`customizations.<name>`; `kernel.append` is the only kernel key). */
export const DISK_CUSTOMIZATIONS: readonly string[] = [
  "user",
  "group",
  "kernel.append",
  "filesystem",
  "disk",
  "directories",
  "files",
  "sshd",
  "ignition",
];

/** Customizations of installer ISOs. */
export const ISO_CUSTOMIZATIONS: readonly string[] = [
  "user",
  "group",
  "kernel.append",
  "installer",
  "fips",
];

/** Customizations of PXE tarballs. */
export const PXE_CUSTOMIZATIONS: readonly string[] = [
  "user",
  "group",
  "kernel.append",
  "directories",
  "files",
];

/** Image types and the customizations each allows. */
export const IMAGE_TYPES: Readonly<Record<string, readonly string[]>> = {
  qcow2: DISK_CUSTOMIZATIONS,
  raw: DISK_CUSTOMIZATIONS,
  ami: DISK_CUSTOMIZATIONS,
  vmdk: DISK_CUSTOMIZATIONS,
  vhd: DISK_CUSTOMIZATIONS,
  gce: DISK_CUSTOMIZATIONS,
  ova: DISK_CUSTOMIZATIONS,
  "anaconda-iso": ISO_CUSTOMIZATIONS,
  iso: ISO_CUSTOMIZATIONS,
  "bootc-installer": ISO_CUSTOMIZATIONS,
  "pxe-tar-xz": PXE_CUSTOMIZATIONS,
};

/** True when `imageType` is one of {@link IMAGE_TYPES}. */
export function isImageType(imageType: string): boolean {
  return Object.hasOwn(IMAGE_TYPES, imageType);
}

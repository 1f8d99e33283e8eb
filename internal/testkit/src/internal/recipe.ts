/**
 * The fixture OS, as text: the initramfs `/init`, the OS's `/sbin/init` and the account
 * databases. Everything here is hashed into the cache key, so editing it rebuilds.
 */

/** Bumped when the build steps (not the text below) change. */
export const RECIPE_VERSION = "5";

/** Layer mtimes and umoci `created` stamps: 2024-01-01T00:00:00Z. */
export const SOURCE_DATE_EPOCH = 1704067200;

/** The modules the initramfs loads, in dependency order (paths below `kernel/`). */
export const INITRAMFS_MODULES = [
  "drivers/virtio/virtio_ring",
  "drivers/virtio/virtio",
  "drivers/virtio/virtio_pci_modern_dev",
  "drivers/virtio/virtio_pci_legacy_dev",
  "drivers/virtio/virtio_pci",
  "drivers/block/virtio_blk",
  "lib/libcrc32c",
  "fs/xfs/xfs",
] as const;

export function initramfsInit(): string {
  const mods = INITRAMFS_MODULES.map((m) => m.slice(m.lastIndexOf("/") + 1)).join(" ");
  return `#!/bin/sh
# imagemode fixture initramfs: load virtio + xfs, find root=, resolve ostree=, switch_root.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Only errors from the kernel on the console, so they do not split the marker lines.
echo 3 > /proc/sys/kernel/printk
kver=$(uname -r)
echo "IMAGEMODE-INITRAMFS-OK kernel=$kver"
for m in ${mods}; do
  insmod "/lib/modules/$kver/$m.ko" || echo "IMAGEMODE-INITRAMFS-WARN insmod $m failed"
done
fail() { echo "IMAGEMODE-INITRAMFS-FAIL $*"; ls /dev; poweroff -f; sleep 10; }
root=""; ostree=""; fstype=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root=\${arg#root=} ;;
    ostree=*) ostree=\${arg#ostree=} ;;
    rootfstype=*) fstype=\${arg#rootfstype=} ;;
  esac
done
if [ -z "$root" ]; then
  echo "IMAGEMODE-INITRAMFS-NOROOT"
  poweroff -f
  sleep 10
fi
dev=""; i=0
while [ $i -lt 100 ]; do
  case "$root" in
    UUID=*|LABEL=*) dev=$(findfs "$root" 2>/dev/null) ;;
    /dev/*) [ -b "$root" ] && dev=$root ;;
    *) fail "unsupported root=$root" ;;
  esac
  [ -n "$dev" ] && break
  sleep 0.1; i=$((i + 1))
done
[ -n "$dev" ] || fail "root=$root not found"
if [ -n "$fstype" ]; then mount -t "$fstype" -o rw "$dev" /sysroot || fail "cannot mount $dev"
else mount -o rw "$dev" /sysroot || fail "cannot mount $dev"; fi
echo "IMAGEMODE-ROOT dev=$dev"
if [ -n "$ostree" ]; then
  [ -e "/sysroot$ostree" ] || fail "ostree=$ostree not found"
  dep=$(readlink -f "/sysroot$ostree")
  [ -d "$dep/usr" ] || fail "ostree=$ostree -> $dep is not a deployment"
  echo "IMAGEMODE-OSTREE deployment=\${dep#/sysroot}"
  mount --bind "$dep" /newroot || fail "bind $dep"
  mount --bind /newroot/usr /newroot/usr && mount -o remount,bind,ro /newroot/usr || fail "usr read-only"
  var=$(readlink -f "$dep/../../var")
  [ -d "$var" ] || fail "stateroot var $var missing"
  mount --bind "$var" /newroot/var || fail "bind $var"
  mkdir -p /newroot/sysroot 2>/dev/null
  mount --bind /sysroot /newroot/sysroot || fail "bind /sysroot"
else
  mount --move /sysroot /newroot || fail "move /sysroot"
fi
[ -x /newroot/sbin/init ] || fail "no /sbin/init in the root"
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /sbin/init
fail "switch_root failed"
`;
}

export const OS_INIT = `#!/bin/sh
# imagemode fixture /sbin/init: report what a test wants to know, run the job hook, power off.
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
[ -e /proc/cmdline ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
echo 1 > /proc/sys/kernel/printk  # kernel messages must not interleave with the markers
echo "IMAGEMODE-INIT-OK"
echo "IMAGEMODE-VERSION_ID=$(. /usr/lib/os-release; echo "$VERSION_ID")"
echo "IMAGEMODE-CMDLINE=$(cat /proc/cmdline)"
while IFS=: read -r name _pw uid _gid _gecos home _shell; do
  [ -n "$name" ] || continue
  h=$(awk -F: -v n="$name" '$1 == n { print $2; exit }' /etc/shadow 2>/dev/null)
  case "$h" in
    "") hash=none ;;
    "!"*|"*"*) hash=locked ;;
    *) hash=$(printf '%s' "$h" | cut -c1-16) ;;
  esac
  keys=0
  f="$home/.ssh/authorized_keys"
  [ -f "$f" ] && keys=$(grep -c -v -e '^#' -e '^[[:space:]]*$' "$f")
  echo "IMAGEMODE-USER name=$name uid=$uid hash=$hash keys=$keys"
done < /etc/passwd
rw() { if touch "$1/.imagemode-rw" 2>/dev/null; then rm -f "$1/.imagemode-rw"; echo yes; else echo no; fi; }
if [ "$(rw /usr)" = yes ]; then echo "IMAGEMODE-USR-RO=no"; else echo "IMAGEMODE-USR-RO=yes"; fi
echo "IMAGEMODE-ETC-RW=$(rw /etc)"
echo "IMAGEMODE-VAR-RW=$(rw /var)"
if [ -f /usr/lib/imagemode/job.sh ]; then
  echo "IMAGEMODE-JOB-START"
  sh /usr/lib/imagemode/job.sh
  echo "IMAGEMODE-JOB-EXIT=$?"
fi
echo "IMAGEMODE-DONE"
sync
poweroff -f
`;

export function osRelease(version: "1" | "2"): string {
  return [
    'NAME="imagemode fixture"',
    "ID=imagemode-fixture",
    `VERSION_ID=${version}`,
    `VERSION="${version}"`,
    `PRETTY_NAME="imagemode fixture ${version}"`,
    "",
  ].join("\n");
}

const SYSTEM_USERS: ReadonlyArray<
  [name: string, uid: number, gid: number, home: string, shell: string]
> = [
  ["root", 0, 0, "/root", "/bin/sh"],
  ["daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin"],
  ["bin", 2, 2, "/bin", "/usr/sbin/nologin"],
  ["sys", 3, 3, "/dev", "/usr/sbin/nologin"],
  ["sync", 4, 65534, "/bin", "/bin/sync"],
  ["man", 6, 12, "/var/cache/man", "/usr/sbin/nologin"],
  ["mail", 8, 8, "/var/mail", "/usr/sbin/nologin"],
  ["nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin"],
];

const GROUPS: ReadonlyArray<[name: string, gid: number]> = [
  ["root", 0],
  ["daemon", 1],
  ["bin", 2],
  ["sys", 3],
  ["adm", 4],
  ["tty", 5],
  ["disk", 6],
  ["lp", 7],
  ["mail", 8],
  ["man", 12],
  ["kmem", 15],
  ["dialout", 20],
  ["cdrom", 24],
  ["sudo", 27],
  ["audio", 29],
  ["video", 44],
  ["shadow", 42],
  ["utmp", 43],
  ["plugdev", 46],
  ["staff", 50],
  ["users", 100],
  ["nogroup", 65534],
];

/** Days since the epoch of SOURCE_DATE_EPOCH (shadow's "last change"). */
const LAST_CHANGE = Math.floor(SOURCE_DATE_EPOCH / 86400);

export const ETC_FILES: Readonly<Record<string, { text: string; mode: number; gid?: number }>> = {
  passwd: {
    text: SYSTEM_USERS.map(([n, u, g, h, s]) => `${n}:x:${u}:${g}:${n}:${h}:${s}\n`).join(""),
    mode: 0o644,
  },
  group: { text: GROUPS.map(([n, g]) => `${n}:x:${g}:\n`).join(""), mode: 0o644 },
  shadow: {
    text: SYSTEM_USERS.map(([n]) => `${n}:*:${LAST_CHANGE}:0:99999:7:::\n`).join(""),
    mode: 0o640,
    gid: 42,
  },
  gshadow: { text: GROUPS.map(([n]) => `${n}:*::\n`).join(""), mode: 0o640, gid: 42 },
  "login.defs": {
    text: [
      "# imagemode fixture (Debian defaults)",
      "MAIL_DIR        /var/mail",
      "UMASK           022",
      "HOME_MODE       0700",
      "PASS_MAX_DAYS   99999",
      "PASS_MIN_DAYS   0",
      "PASS_WARN_AGE   7",
      "UID_MIN         1000",
      "UID_MAX         60000",
      "SYS_UID_MIN     100",
      "SYS_UID_MAX     999",
      "GID_MIN         1000",
      "GID_MAX         60000",
      "SYS_GID_MIN     100",
      "SYS_GID_MAX     999",
      "USERGROUPS_ENAB yes",
      "ENCRYPT_METHOD  SHA512",
      "",
    ].join("\n"),
    mode: 0o644,
  },
  hostname: { text: "imagemode-fixture\n", mode: 0o644 },
};

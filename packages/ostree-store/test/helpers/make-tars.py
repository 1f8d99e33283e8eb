# Writes hostile and edge-case layer tars with Python's tarfile (raw bytes where needed).
import io, sys, tarfile, os

out = sys.argv[1]

def add(t, name, data=b"", type=tarfile.REGTYPE, linkname="", mode=0o644, pax=None, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode
    ti.uid = uid
    ti.gid = gid
    ti.linkname = linkname
    ti.mtime = 1700000000
    if pax:
        ti.pax_headers = pax
    if type == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)

def write(name, fmt, fn):
    with tarfile.open(os.path.join(out, name), "w", format=fmt, encoding="utf-8", errors="surrogateescape") as t:
        fn(t)

P = tarfile.PAX_FORMAT
G = tarfile.GNU_FORMAT
write("dotdot.tar", G, lambda t: (add(t, "usr/"+"", type=tarfile.DIRTYPE, mode=0o755), add(t, "usr/../../evil", b"x")))
write("dotdot-mid.tar", G, lambda t: add(t, "usr/lib/../../../etc/passwd", b"x"))
write("absolute.tar", G, lambda t: add(t, "/usr/bin/ok", b"ok"))
write("abs-dotdot.tar", G, lambda t: add(t, "/../etc/shadow", b"x"))
write("link-missing.tar", G, lambda t: (add(t, "usr", type=tarfile.DIRTYPE, mode=0o755), add(t, "usr/l", type=tarfile.LNKTYPE, linkname="usr/nothere")))
write("link-filtered.tar", G, lambda t: (add(t, "opt/x", b"data"), add(t, "usr/l", type=tarfile.LNKTYPE, linkname="opt/x")))
write("link-dotdot.tar", G, lambda t: (add(t, "usr/a", b"data"), add(t, "usr/l", type=tarfile.LNKTYPE, linkname="../usr/a")))
write("nonutf8.tar", G, lambda t: add(t, "usr/bad-\udcff-name", b"x"))
write("nonutf8-pax.tar", P, lambda t: add(t, "usr/" + "p" * 120 + "-\udcfe", b"x"))
write("huge-pax.tar", P, lambda t: add(t, "usr/a", b"x", pax={"comment": "y" * (2 * 1024 * 1024)}))
write("empty-whiteout.tar", G, lambda t: add(t, "usr/.wh.", b""))
write("chardev.tar", G, lambda t: add(t, "usr/null", type=tarfile.CHRTYPE))
write("through-symlink.tar", G, lambda t: (add(t, "usr", type=tarfile.DIRTYPE, mode=0o755), add(t, "usr/lnk", type=tarfile.SYMTYPE, linkname=sys.argv[2] if len(sys.argv) > 2 else "/tmp"), add(t, "usr/lnk/pwned", b"pwned")))
write("symlink-escape.tar", G, lambda t: (add(t, "usr/up", type=tarfile.SYMTYPE, linkname="../../../../../../etc"), add(t, "usr/abs", type=tarfile.SYMTYPE, linkname="/etc/shadow")))
write("empty-component.tar", G, lambda t: add(t, "usr//lib/x", b"x"))
# A well-formed layer exercising every rule.
def rules(t):
    add(t, "./", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "etc", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "etc/hostname", b"")
    add(t, "etc/resolv.conf", b"")
    add(t, "etc/motd", b"hello\n", uid=0, gid=0)
    add(t, "etc/motd.link", type=tarfile.LNKTYPE, linkname="etc/motd")
    add(t, "usr", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "usr/bin", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "usr/bin/tool", b"#!/bin/sh\necho hi\n", mode=0o4755)
    add(t, "usr/bin/tool2", type=tarfile.LNKTYPE, linkname="/usr/bin/tool")
    add(t, "usr/lib/deep/auto/parent/file", b"autocreated parents\n", uid=12, gid=34)
    add(t, "usr/share/caps", b"cap", pax={"SCHILY.xattr.user.test": "v1", "SCHILY.xattr.user.bin": "\udcff\udcfe\udc80"})
    add(t, "usr/share/sym", type=tarfile.SYMTYPE, linkname="../bin/tool")
    add(t, "usr/share/.wh.gone", b"")
    add(t, "usr/share/opq", type=tarfile.DIRTYPE, mode=0o700)
    add(t, "usr/share/opq/.wh..wh..opq", b"")
    add(t, "var", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "var/lib/thing", b"state")
    add(t, "tmp", type=tarfile.DIRTYPE, mode=0o1777)
    add(t, "tmp/junk", b"junk")
    add(t, "tmp/junk2/x", b"junk")
    add(t, "run", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "run/secrets", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "opt", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "opt/app/bin", b"app")
    add(t, "home/user/.bashrc", b"x")
    add(t, ".dockerenv", b"")
    add(t, "bin", type=tarfile.SYMTYPE, linkname="usr/bin")
    add(t, "usr/" + "long" * 40 + "/name-" + "é" * 30, b"long utf8\n")
    add(t, "usr/big-uid", b"b", uid=3000000, gid=3000001)
write("rules-gnu.tar", G, rules)
write("rules-pax.tar", P, rules)

# Writes the layers of a small multi-layer test image (whiteouts, opaque dirs, replacements).
import io, sys, tarfile, os

out = sys.argv[1]

def add(t, name, data=b"", type=tarfile.REGTYPE, linkname="", mode=None):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode if mode is not None else (0o755 if type == tarfile.DIRTYPE else 0o644)
    ti.linkname = linkname
    ti.mtime = 1700000000
    if type == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)

D = tarfile.DIRTYPE
def layer(name, fn):
    with tarfile.open(os.path.join(out, name), "w", format=tarfile.PAX_FORMAT) as t:
        fn(t)

def l1(t):
    add(t, "./", type=D)
    for d in ["usr", "usr/bin", "usr/lib", "usr/lib/keep", "usr/lib/gone", "usr/lib/opq", "usr/share", "etc", "var", "var/lib", "tmp"]:
        add(t, d, type=D, mode=0o1777 if d == "tmp" else 0o755)
    add(t, "usr/bin/a", b"A1\n", mode=0o755)
    add(t, "usr/bin/b", type=tarfile.SYMTYPE, linkname="a", mode=0o777)
    add(t, "usr/lib/keep/k1", b"k1\n")
    add(t, "usr/lib/hl", type=tarfile.LNKTYPE, linkname="usr/lib/keep/k1")
    add(t, "usr/lib/gone/g1", b"g1\n")
    add(t, "usr/lib/opq/o1", b"o1\n")
    add(t, "usr/share/f", b"F1\n")
    add(t, "etc/motd", b"motd\n")
    add(t, "etc/hostname", b"")
    add(t, "etc/resolv.conf", b"")
    add(t, "opt/x", b"x\n")
    add(t, "tmp/junk", b"junk\n")
    add(t, "var/lib/v", b"v\n")

def l2(t):
    add(t, "usr/lib/.wh.gone")
    add(t, "usr/lib/opq", type=D, mode=0o700)
    add(t, "usr/lib/opq/.wh..wh..opq")
    add(t, "usr/lib/opq/o2", b"o2\n")
    add(t, "usr/share/f", b"F2\n")
    add(t, "usr/bin/b", b"B2\n", mode=0o755)
    add(t, "usr/lib/keep/k2", b"k2\n")
    add(t, "etc/motd.d/x", b"x\n")
    add(t, "home/user/x", b"x\n")
    add(t, "usr/bin/.wh.nonexistent")

def l3(t):
    add(t, "usr/bin/.wh.a")
    add(t, "usr/lib/keep", type=D, mode=0o700)
    add(t, "usr/lib/keep/k3", b"k3\n")
    add(t, "etc/resolv.conf", b"nameserver 192.0.2.1\n")
    add(t, "usr/lib/new/deep/file", b"deep\n")

def l4(t):
    # a file replaced by a directory (OCI semantics; libostree's union checkout refuses this)
    add(t, "usr/share/f", type=D)
    add(t, "usr/share/f/inner", b"inner\n")

layer("l1.tar", l1)
layer("l2.tar", l2)
layer("l3.tar", l3)
layer("l4.tar", l4)

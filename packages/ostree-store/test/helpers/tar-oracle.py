# Lists a tar archive with Python's tarfile module (an implementation independent of ours):
# one JSON object per member, names and xattr values as hex of their raw bytes.
import hashlib, json, sys, tarfile

def raw(s):
    return s.encode("utf-8", "surrogateescape").hex()

TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.LNKTYPE: "hardlink",
         tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "chardev", tarfile.BLKTYPE: "blockdev", tarfile.DIRTYPE: "dir",
         tarfile.FIFOTYPE: "fifo"}
out = []
with tarfile.open(sys.argv[1], "r:*", encoding="utf-8", errors="surrogateescape") as t:
    for m in t:
        e = {"path": raw(m.name + ("/" if m.isdir() and sys.argv[2:] == ["keep-slash"] else "")), "type": TYPES[m.type],
             "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid, "size": m.size if m.isreg() else 0}
        if m.issym() or m.islnk():
            e["link"] = raw(m.linkname)
        x = [[k[len("SCHILY.xattr."):], v.encode("utf-8", "surrogateescape").hex()] for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")]
        e["xattrs"] = x
        if m.isreg():
            f = t.extractfile(m)
            e["sha256"] = hashlib.sha256(f.read()).hexdigest()
        out.append(e)
print(json.dumps(out))

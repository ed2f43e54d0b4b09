"""A file watcher that runs on a remote host (sent there and run by python3): it prints the
path, relative to ROOT, of every file or folder that changes under ROOT, one per line, as the
kernel reports it (inotify), and ends when its standard input closes (the ssh session that
started it is gone). Only the standard library: it runs on any Linux host with python3.

    python3 -u watch_remote.py ROOT [PATTERN ...]

A name matching a PATTERN (fnmatch, as `*.pyc`) is not watched or reported, unless it matches a
`!PATTERN` too (a name the user asked to sync).
"""

import ctypes
import ctypes.util
import fnmatch
import os
import struct
import sys
import threading

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_ISDIR, IN_Q_OVERFLOW = 0x400, 0x40000000, 0x4000
MASK = IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MODIFY


def main():
    root = os.path.abspath(sys.argv[1])
    pats = sys.argv[2:]
    skipped = [p for p in pats if not p.startswith("!")]
    kept = [p[1:] for p in pats if p.startswith("!")]

    def ignored(name):
        return name.startswith(".unison") or (any(fnmatch.fnmatchcase(name, p) for p in skipped)
                                              and not any(fnmatch.fnmatchcase(name, p) for p in kept))

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        sys.exit("inotify unavailable")
    dirs = {}

    def add(path):
        for top, subdirs, _ in os.walk(path):
            subdirs[:] = [d for d in subdirs if not ignored(d)]
            wd = libc.inotify_add_watch(fd, top.encode(), MASK)
            if wd >= 0:
                dirs[wd] = top

    add(root)
    # The ssh session ends -> stdin closes -> this process ends (nothing is left polling).
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        data = os.read(fd, 65536)
        i, seen = 0, []
        while i < len(data):
            wd, mask, _cookie, size = struct.unpack_from("iIII", data, i)
            name = data[i + 16:i + 16 + size].rstrip(b"\0").decode(errors="surrogateescape")
            i += 16 + size
            if mask & IN_Q_OVERFLOW:
                seen.append(".")
                continue
            base = dirs.get(wd)
            if base is None or ignored(name):
                continue
            path = os.path.join(base, name) if name else base
            if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                add(path)
            rel = os.path.relpath(path, root)
            if rel != ".":
                seen.append(rel)
        if seen:
            try:
                out.write("".join(p + "\n" for p in dict.fromkeys(seen)))
                out.flush()
            except BrokenPipeError:
                os._exit(0)


if __name__ == "__main__":
    main()

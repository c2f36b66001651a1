"""inotify beyond the case program (tests/cases/inotify.c):

  - events already queued cannot be saved: the dump warns, naming the process and the fd,
    and does not consume them (after dump -R the program still reads them);
  - a Python program blocked reading an inotify instance (through ctypes) goes on reporting
    events after restore, under the same watch descriptor (one above a removed watch);
  - fanotify is not supported: the dump fails with one line naming the process, the fd and
    the kind, and leaves the tree as it was.
"""

import os
import signal
import time

import pytest

from casehelpers import PYTHON, dump_restore, kill_tree, numbers, read_text, refused_dump, wait_lines
from crestlib import WAIT

# argv: outfile, directory. Watches the directory after a removed watch (so its wd is 2), then
# prints every event as "WD MASK NAME". With "queue", it queues one event, says "ready" and on
# SIGTERM prints how many bytes its queue held.
WATCHER = r"""
import ctypes, os, signal, struct, sys, time
IN_CREATE, IN_NONBLOCK = 0x100, 0o4000
out = open(sys.argv[1], "a", buffering=1)
d = sys.argv[2].encode()
libc = ctypes.CDLL(None, use_errno=True)
queue = len(sys.argv) > 3
fd = libc.inotify_init1(IN_NONBLOCK if queue else 0)
libc.inotify_rm_watch(fd, libc.inotify_add_watch(fd, d, IN_CREATE))
wd = libc.inotify_add_watch(fd, d, IN_CREATE)
try:
    os.read(fd, 4096)        # the IN_IGNORED of the removed watch
except BlockingIOError:
    pass
out.write("fd %d wd %d pid %d\n" % (fd, wd, os.getpid()))
if queue:
    open(os.path.join(sys.argv[2], "queued"), "w").close()
    def on_term(sig, frame):
        try:
            out.write("queued %d\n" % len(os.read(fd, 4096)))
        except BlockingIOError:
            out.write("queued 0\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    out.write("ready\n")
    while True:
        time.sleep(1)
while True:
    buf = os.read(fd, 4096)
    off = 0
    while off < len(buf):
        w, mask, cookie, n = struct.unpack_from("iIII", buf, off)
        name = buf[off + 16:off + 16 + n].rstrip(b"\0").decode()
        out.write("%d %#x %s\n" % (w, mask, name))
        off += 16 + n
"""


def start_watcher(tree, *extra):
    out, d = tree.workdir / "events.txt", tree.workdir / "watched"
    d.mkdir()
    tree.start([PYTHON, "-c", WATCHER, str(out), str(d), *extra], tree.workdir / "python.log")
    wait_lines(out, 1, "the watcher before the dump")
    return out, d


def test_queued_events_warned_and_kept(tree):
    out, _ = start_watcher(tree, "queue")
    lines = wait_lines(out, 2, "the watcher with a queued event")
    fd = lines[0].split()[1]
    tree.dump(tree.workdir / "img", "-R")
    log = tree.calls[-1].log.read_text()
    assert f"pid {tree.root} fd {fd}: inotify has" in log and "queued events" in log, \
        f"the dump did not warn about the queued event:\n{log}"
    os.kill(tree.root, signal.SIGTERM)
    lines = wait_lines(out, 3, "the watcher after dump -R")
    assert lines[2] != "queued 0", "the dump consumed the queued event"
    tree.popen.wait(timeout=WAIT)


def test_python_inotify_watcher(tree):
    out, d = start_watcher(tree)
    (d / "a").touch()
    wait_lines(out, 2, "the watcher before the dump")
    snap, at_dump = dump_restore(tree, out)
    (d / "b").touch()
    lines = wait_lines(out, at_dump + 1, "the watcher after restore")
    time.sleep(0.1)
    kill_tree(tree, snap)
    assert lines[0].split()[3] == "2", f"the watch has wd {lines[0]}, want 2"
    assert lines[1:] == ["2 0x100 a", "2 0x100 b"], f"events: {lines}"


# argv: outfile. A fanotify instance with a mark on /tmp, then sleeps.
FANOTIFY = r"""
import ctypes, os, sys, time
FAN_CLASS_NOTIF, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD = 0, 1, 0x8, -100
libc = ctypes.CDLL(None, use_errno=True)
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                               ctypes.c_char_p]
fd = libc.fanotify_init(FAN_CLASS_NOTIF, os.O_RDONLY)
if fd < 0 or libc.fanotify_mark(fd, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD, b"/tmp"):
    print("fanotify: errno %d" % ctypes.get_errno(), flush=True)
    sys.exit(1)
open(sys.argv[1], "a").write("fd %d\n" % fd)
while True:
    time.sleep(1)
"""


def test_fanotify_refused(tree):
    out = tree.workdir / "fanotify.txt"
    log = tree.workdir / "python.log"
    tree.start([PYTHON, "-c", FANOTIFY, str(out)], log)
    deadline = time.monotonic() + WAIT
    while not numbers(out) and "fanotify: errno" not in read_text(log):
        assert time.monotonic() < deadline, f"the fanotify program said nothing:\n{read_text(log)}"
        time.sleep(0.02)
    if not numbers(out):  # a kernel without CONFIG_FANOTIFY, or a container that forbids it
        pytest.skip(f"no fanotify here ({read_text(log).strip()})")
    fd = numbers(out)[0].split()[1]
    snap = tree.snapshot()
    line = refused_dump(tree, "a fanotify instance", tree.root, f"fd {fd}")
    assert "fanotify" in line, f"the error does not name fanotify: {line}"
    kill_tree(tree, snap)

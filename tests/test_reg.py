"""Files reopened by path ("reg"), at the edges the case programs cannot show, since there crest
must fail:

  - a regular file that changed on disk after the dump (size, modification time, or another
    file put at its path) is refused at restore, naming the file, and nothing is left running;
    put back as it was (the same inode, size and mtime), the same image restores;
  - a deleted name of a file whose other names are all in other directories is refused at
    dump, naming the process and fd, and the tree runs on untouched;
  - a /proc file of a thread other than its group's leader is refused at dump likewise.
"""

import os
import re
import signal
import sys
import time

import pytest

from crestlib import WAIT, proc_stat, tree_changes, tree_details

HOLD = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
if len(sys.argv) > 2:
    os.unlink(sys.argv[1])
print("ready", flush=True)
while True:
    time.sleep(1)
"""

THREAD_FILE = r"""
import os, threading, time
fds = []
def run():
    fds.append(os.open("/proc/thread-self/status", os.O_RDONLY))
    while True:
        time.sleep(1)
threading.Thread(target=run, daemon=True).start()
while not fds:
    time.sleep(0.01)
print("ready fd", fds[0], flush=True)
while True:
    time.sleep(1)
"""


def start(tree, script, *args):
    """Runs a python script in the tree; returns its log once it printed "ready"."""
    log = tree.workdir / "prog.log"
    tree.start([sys.executable, "-c", script] + [str(a) for a in args], log)
    deadline = time.monotonic() + WAIT
    while "ready" not in log.read_text():
        assert tree.popen.poll() is None, f"the program exited: {log.read_text()}"
        assert time.monotonic() < deadline, "the program did not get ready"
        time.sleep(0.01)
    return log


def fd_of(pid, path):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(path)):
                return int(fd)
        except OSError:
            pass
    pytest.fail(f"pid {pid} has no fd on {path}")


def refused_restore(tree, img, snap, *words):
    call = tree.crest("restore", "-D", img, log=False)
    assert call.rc not in (0, None), "crest restored a tree whose file changed"
    for word in words:
        assert word in call.stderr, f"the error does not say {word!r}:\n{call.stderr}"
    tree.wait_gone(snap)


def test_changed_file_refused(tree):
    data = tree.workdir / "data"
    data.write_bytes(b"x" * 1000)
    start(tree, HOLD, data)
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    st = os.stat(data)

    with open(data, "ab") as f:
        f.write(b"more")
    refused_restore(tree, img, snap, str(data), "changed since the dump", "size is 1004, was 1000")

    data.write_bytes(b"y" * 1000)  # same inode and size, new contents
    refused_restore(tree, img, snap, str(data), "changed since the dump", "modified")

    other = tree.workdir / "other"
    other.write_bytes(b"x" * 1000)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(other, data)
    refused_restore(tree, img, snap, str(data), "not the file that was dumped")


def test_unchanged_file_restores(tree):
    data = tree.workdir / "data"
    data.write_bytes(b"x" * 1000)
    start(tree, HOLD, data)
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    st = os.stat(data)
    data.write_bytes(b"x" * 1000)  # rewritten the same, then its time put back
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    pidfile = tree.workdir / "pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    tree.wait_restored(snap, pidfile=pidfile)
    os.kill(tree.root, signal.SIGKILL)
    tree.wait_adopted(tree.root)


def refused_dump(tree, *names):
    snap = tree.snapshot()
    before = tree_details(snap)
    call = tree.crest("dump", "-t", tree.root, "-D", tree.workdir / "img", log=False)
    assert call.rc not in (0, None), "crest dumped what it cannot restore"
    changed = tree_changes(before)
    assert not changed, "the failed dump changed the tree:\n" + "\n".join(changed)
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one line of error, got:\n{call.stderr}"
    for name in names:
        assert re.search(r"(?<![\w.-])" + re.escape(str(name)) + r"(?![\w-])", lines[0]), \
            f"the error does not name {name}: {lines[0]}"
    return lines[0]


def test_deleted_link_elsewhere_refused(tree):
    (tree.workdir / "a").mkdir()
    (tree.workdir / "b").mkdir()
    name = tree.workdir / "a" / "x"
    name.write_bytes(b"data")
    os.link(name, tree.workdir / "b" / "y")
    start(tree, HOLD, name, "unlink")
    fd = fd_of(tree.root, name)
    line = refused_dump(tree, tree.root, fd)
    assert "other name" in line, line


def test_deleted_link_nearby_restores(tree):
    name = tree.workdir / "x"
    name.write_bytes(b"data")
    os.link(name, tree.workdir / "y")
    start(tree, HOLD, name, "unlink")
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    pidfile = tree.workdir / "pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    tree.wait_restored(snap, pidfile=pidfile)
    fd = fd_of(tree.root, name)
    assert os.readlink(f"/proc/{tree.root}/fd/{fd}") == f"{name} (deleted)"
    assert os.stat(f"/proc/{tree.root}/fd/{fd}").st_ino == os.stat(tree.workdir / "y").st_ino
    assert not name.exists(), "the name linked back for the reopen was left behind"
    os.kill(tree.root, signal.SIGKILL)
    tree.wait_adopted(tree.root)


def test_thread_proc_file_refused(tree):
    log = start(tree, THREAD_FILE)
    fd = int(re.search(r"ready fd (\d+)", log.read_text()).group(1))
    line = refused_dump(tree, tree.root, fd)
    assert "thread" in line, line

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
import signal

import pytest

from casehelpers import ready_fd, refused_dump, start_ready

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


def fd_of(pid, path):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(path)):
                return int(fd)
        except OSError:
            pass
    pytest.fail(f"pid {pid} has no fd on {path}")


def dump_holder(tree, *args):
    """Runs HOLD (args: its file, and "unlink" to delete it) and dumps it, which kills it;
    returns the snapshot taken at the dump and the image."""
    start_ready(tree, HOLD, *args)
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    return snap, img


def dump_held_file(tree):
    """dump_holder of a new file of 1000 bytes: (the file, the snapshot, the image, its stat)."""
    data = tree.workdir / "data"
    data.write_bytes(b"x" * 1000)
    snap, img = dump_holder(tree, data)
    return data, snap, img, os.stat(data)


def restore_detached(tree, img, snap):
    """Restores img with -d; the restored tree runs, its root a child of ours."""
    pidfile = tree.workdir / "pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    tree.wait_restored(snap, pidfile=pidfile)


def refused_restore(tree, img, snap, *words):
    call = tree.crest("restore", "-D", img, log=False)
    assert call.rc not in (0, None), "crest restored a tree whose file changed"
    for word in words:
        assert word in call.stderr, f"the error does not say {word!r}:\n{call.stderr}"
    tree.wait_gone(snap)


def test_changed_file_refused(tree):
    data, snap, img, st = dump_held_file(tree)
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
    data, snap, img, st = dump_held_file(tree)
    data.write_bytes(b"x" * 1000)  # rewritten the same, then its time put back
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    restore_detached(tree, img, snap)
    os.kill(tree.root, signal.SIGKILL)
    tree.wait_adopted(tree.root)


def test_deleted_link_elsewhere_refused(tree):
    (tree.workdir / "a").mkdir()
    (tree.workdir / "b").mkdir()
    name = tree.workdir / "a" / "x"
    name.write_bytes(b"data")
    os.link(name, tree.workdir / "b" / "y")
    start_ready(tree, HOLD, name, "unlink")
    fd = fd_of(tree.root, name)
    line = refused_dump(tree, "a deleted name whose file has its other names elsewhere",
                        tree.root, fd)
    assert "other name" in line, line


def test_deleted_link_nearby_restores(tree):
    name = tree.workdir / "x"
    name.write_bytes(b"data")
    os.link(name, tree.workdir / "y")
    snap, img = dump_holder(tree, name, "unlink")
    restore_detached(tree, img, snap)
    fd = fd_of(tree.root, name)
    assert os.readlink(f"/proc/{tree.root}/fd/{fd}") == f"{name} (deleted)"
    assert os.stat(f"/proc/{tree.root}/fd/{fd}").st_ino == os.stat(tree.workdir / "y").st_ino
    assert not name.exists(), "the name linked back for the reopen was left behind"
    os.kill(tree.root, signal.SIGKILL)
    tree.wait_adopted(tree.root)


def test_thread_proc_file_refused(tree):
    fd = ready_fd(start_ready(tree, THREAD_FILE))
    line = refused_dump(tree, "a /proc file of a thread", tree.root, fd)
    assert "thread" in line, line

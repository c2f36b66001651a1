"""pidfds crest refuses to dump, and that refusing harms nothing.

- A pidfd of a process outside the dumped tree: nothing says that pid would name the same
  process at restore.
- A pidfd of a thread that is not a thread group leader (PIDFD_THREAD, 6.9): those threads are
  created only after the descriptors at restore.

Each time: one error line naming the pid, the fd and why, the process runs on, and the image
directory has no inventory.
"""
import os
import subprocess
import time

import pytest

from casehelpers import PYTHON, run_crest
from crestlib import proc_stat


# Holds a pidfd (at fd 50) of its parent, outside the tree it roots, then waits.
OUTSIDE = r"""
import os, sys, time
fd = os.pidfd_open(os.getppid())
os.dup2(fd, 50)
os.close(fd)
print("ready", flush=True)
time.sleep(60)
"""

# Holds a PIDFD_THREAD pidfd (at fd 51) of one of its own non-leader threads, then waits.
THREAD = r"""
import os, sys, threading, time
tids = []
t = threading.Thread(target=lambda: (tids.append(threading.get_native_id()), time.sleep(60)),
                     daemon=True)
t.start()
while not tids:
    time.sleep(0.01)
try:
    fd = os.pidfd_open(tids[0], os.O_EXCL)
    os.dup2(fd, 51)
    os.close(fd)
except OSError as e:
    print("unsupported", e, flush=True)
    time.sleep(60)
print("ready", tids[0], flush=True)
time.sleep(60)
"""


def start(script):
    proc = subprocess.Popen([PYTHON, "-c", script], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        proc.wait()
        if line and line[0] == "unsupported":
            pytest.skip("this kernel has no PIDFD_THREAD")
        pytest.fail(f"the program did not get ready: {line}")
    return proc, line[1:]


def refused(tmp_path, proc, *words):
    """The dump of proc is refused as the module says, its error line saying each of words;
    then proc is killed, whatever happened."""
    try:
        res = run_crest("dump", "-t", proc.pid, "-D", tmp_path / "img", timeout=30)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0, "crest dump succeeded, it should refuse"
        assert len(lines) == 1, f"want one error line, got: {res.stderr!r}"
        for w in (f"pid {proc.pid}",) + words:
            assert w in lines[0], f"the error does not say {w!r}: {lines[0]}"
        time.sleep(0.05)
        assert proc.poll() is None and proc_stat(proc.pid)[0] in "SR", \
            "the refused process does not run on"
        assert not (tmp_path / "img" / "inventory.img").exists()
    finally:
        proc.kill()
        proc.wait()


def test_pidfd_outside_tree(tmp_path):
    proc, _ = start(OUTSIDE)
    refused(tmp_path, proc, "fd 50", f"process {os.getpid()}", "outside the dumped tree")


def test_pidfd_of_thread(tmp_path):
    proc, rest = start(THREAD)
    refused(tmp_path, proc, "fd 51", f"thread {rest[0]}", "not a thread group leader")

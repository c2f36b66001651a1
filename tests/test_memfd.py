"""A memfd both open as a descriptor and mapped cannot be restored as one object yet: the dump is
refused with one line naming the process and the fd, and the tree runs on untouched.
"""

import re
import sys
import time

from crestlib import WAIT, tree_changes, tree_details

MAPPED = r"""
import mmap, os, time
fd = os.memfd_create("crest mapped")
os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096)
m[0:5] = b"hello"
print("ready fd", fd, flush=True)
while True:
    time.sleep(1)
"""


def test_mapped_memfd_refused(tree):
    log = tree.workdir / "prog.log"
    tree.start([sys.executable, "-c", MAPPED], log)
    deadline = time.monotonic() + WAIT
    while "ready" not in log.read_text():
        assert tree.popen.poll() is None, f"the program exited: {log.read_text()}"
        assert time.monotonic() < deadline, "the program did not get ready"
        time.sleep(0.01)
    fd = int(re.search(r"ready fd (\d+)", log.read_text()).group(1))
    snap = tree.snapshot()
    before = tree_details(snap)
    call = tree.crest("dump", "-t", tree.root, "-D", tree.workdir / "img", log=False)
    assert call.rc not in (0, None), "crest dumped a memfd that is also mapped"
    changed = tree_changes(before)
    assert not changed, "the failed dump changed the tree:\n" + "\n".join(changed)
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one line of error, got:\n{call.stderr}"
    assert "mapped" in lines[0], lines[0]
    assert re.search(rf"pid {tree.root} fd \d+", lines[0]), lines[0]

"""Deleted-but-open files ("ghost") at their size limit (--ghost-limit, 1 MiB by default as
CRIU's): one of exactly the limit is dumped; one byte more and the dump is refused with one line
naming the process, the fd, the file and its size, and the tree runs on untouched; a higher
--ghost-limit lets it through.
"""

import re
import sys
import time

from crestlib import WAIT, tree_changes, tree_details

LIMIT = 1 << 20

GHOST = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, int(sys.argv[2]))
os.pwrite(fd, b"end", int(sys.argv[2]) - 3)
os.unlink(sys.argv[1])
print("ready fd", fd, flush=True)
while True:
    time.sleep(1)
"""


def start_ghost(tree, size):
    log = tree.workdir / "prog.log"
    path = tree.workdir / "big"
    tree.start([sys.executable, "-c", GHOST, str(path), str(size)], log)
    deadline = time.monotonic() + WAIT
    while "ready" not in log.read_text():
        assert tree.popen.poll() is None, f"the program exited: {log.read_text()}"
        assert time.monotonic() < deadline, "the program did not get ready"
        time.sleep(0.01)
    return path, int(re.search(r"ready fd (\d+)", log.read_text()).group(1))


def test_ghost_at_limit(tree):
    start_ghost(tree, LIMIT)
    tree.dump(tree.workdir / "img", "-R")
    assert any(p.name.startswith("pages-ghost-") and p.stat().st_size == LIMIT
               for p in (tree.workdir / "img").iterdir()), "no ghost contents in the image"


def test_ghost_over_limit_refused(tree):
    path, fd = start_ghost(tree, LIMIT + 1)
    snap = tree.snapshot()
    before = tree_details(snap)
    call = tree.crest("dump", "-t", tree.root, "-D", tree.workdir / "img", log=False)
    assert call.rc not in (0, None), "crest dumped a ghost file over the limit"
    changed = tree_changes(before)
    assert not changed, "the failed dump changed the tree:\n" + "\n".join(changed)
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one line of error, got:\n{call.stderr}"
    for name in (tree.root, fd, path, LIMIT + 1):
        assert re.search(r"(?<![\w.-])" + re.escape(str(name)) + r"(?![\w-])", lines[0]), \
            f"the error does not name {name}: {lines[0]}"


def test_ghost_limit_option(tree):
    start_ghost(tree, LIMIT + 1)
    tree.dump(tree.workdir / "img", "-R", "--ghost-limit", "2M")
    assert any(p.name.startswith("pages-ghost-") and p.stat().st_size == LIMIT + 1
               for p in (tree.workdir / "img").iterdir()), "no ghost contents in the image"

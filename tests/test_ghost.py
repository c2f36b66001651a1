"""Deleted-but-open files ("ghost") at their size limit (--ghost-limit, 1 MiB by default as
CRIU's): one of exactly the limit is dumped; one byte more and the dump is refused with one line
naming the process, the fd, the file and its size, and the tree runs on untouched; a higher
--ghost-limit lets it through.
"""

from casehelpers import ready_fd, refused_dump, start_ready

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
    path = tree.workdir / "big"
    return path, ready_fd(start_ready(tree, GHOST, path, size))


def test_ghost_at_limit(tree):
    start_ghost(tree, LIMIT)
    tree.dump(tree.workdir / "img", "-R")
    assert any(p.name.startswith("pages-ghost-") and p.stat().st_size == LIMIT
               for p in (tree.workdir / "img").iterdir()), "no ghost contents in the image"


def test_ghost_over_limit_refused(tree):
    path, fd = start_ghost(tree, LIMIT + 1)
    refused_dump(tree, "a ghost file over the limit", tree.root, fd, path, LIMIT + 1)


def test_ghost_limit_option(tree):
    start_ghost(tree, LIMIT + 1)
    tree.dump(tree.workdir / "img", "-R", "--ghost-limit", "2M")
    assert any(p.name.startswith("pages-ghost-") and p.stat().st_size == LIMIT + 1
               for p in (tree.workdir / "img").iterdir()), "no ghost contents in the image"

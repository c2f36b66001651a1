"""A memfd both open as a descriptor and mapped is saved once, as the shared memory object, and
restored as one object: a python program that writes through its mapping and reads back
through the descriptor goes on seeing its own writes after restore. (The case program
tests/cases/memfd_mapped.c checks name, seals and sharing between processes.) A memfd that
a process outside the tree maps is refused: that mapping would no longer share it.
"""

import mmap
import os
import re

from casehelpers import python_loop_across_restore, ready_fd, refused_dump, start_ready

# argv: the file it writes "N SEEN" to each round: N written through the mapping, SEEN read
# through the descriptor.
MAPPED = r"""
import mmap, os, sys, time
out = open(sys.argv[1], "a", buffering=1)
fd = os.memfd_create("crest mapped")
os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096)
n = 0
while True:
    n += 1
    m[0:8] = n.to_bytes(8, "little")
    print(n, int.from_bytes(os.pread(fd, 8, 0), "little"), file=out)
    time.sleep(0.02)
"""


def test_mapped_memfd_is_one_object(tree):
    lines, at_dump = python_loop_across_restore(tree, MAPPED)
    want = [f"{n} {n}" for n in range(1, at_dump + 11)]
    assert lines[:at_dump + 10] == want, \
        f"writes through the mapping are not seen through the fd after restore: {lines}"
    img = tree.workdir / "img"
    assert not list(img.glob("pages-memfd-*.img")), "the memfd's contents were saved twice"
    assert len(list(img.glob("pagemap-shmem-*.img"))) == 1, sorted(p.name for p in img.iterdir())


HELD = r"""
import os, time
fd = os.memfd_create("crest held")
os.ftruncate(fd, 4096)
print("ready fd", fd, flush=True)
while True:
    time.sleep(1)
"""


def test_memfd_mapped_outside_refused(tree):
    fd = ready_fd(start_ready(tree, HELD))
    with open(f"/proc/{tree.root}/fd/{fd}", "r+b") as f, mmap.mmap(f.fileno(), 4096):
        line = refused_dump(tree, "a memfd mapped outside the tree")
    assert re.search(rf"pid {tree.root} fd {fd}:", line), line
    assert f"pid {os.getpid()}" in line and "outside the tree" in line, line

"""A memfd both open as a descriptor and mapped is saved once, as the shared memory object, and
restored as one object: a python program that writes through its mapping and reads back
through the descriptor goes on seeing its own writes after restore. (The case program
tests/cases/memfd_mapped.c checks name, seals and sharing between processes.)
"""

from casehelpers import python_loop_across_restore

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

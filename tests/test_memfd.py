"""A memfd both open as a descriptor and mapped cannot be restored as one object yet: the dump is
refused with one line naming the process and the fd, and the tree runs on untouched.
"""

import re

from casehelpers import refused_dump, start_ready

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
    start_ready(tree, MAPPED)
    line = refused_dump(tree, "a memfd that is also mapped")
    assert "mapped" in line, line
    assert re.search(rf"pid {tree.root} fd \d+", line), line

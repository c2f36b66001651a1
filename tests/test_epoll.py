"""epoll beyond the case program (tests/cases/epoll.c):

  - an epoll whose target fd number was closed after EPOLL_CTL_ADD (the file kept open by a
    dup) makes the dump fail with one line naming the process, the epoll's fd and the target's
    number, and leaves the tree as it was; likewise when the number now holds another file;
  - when the number was closed and then reused by a dup of the very same file, the epoll is
    still restorable and the dump succeeds;
  - a Python program whose loop runs on select.epoll goes on after restore.
"""

import re

import pytest

from casehelpers import PYTHON, kill_tree, python_loop_across_restore, refused_dump, start_ready

# argv: logfile, mode. Prints "fds EPFD TFD" then "ready", then sleeps.
STALE = r"""
import os, select, sys, time
mode = sys.argv[2]
r, w = os.pipe()
ep = select.epoll()
ep.register(r, select.EPOLLIN)
keep = os.dup(r)
os.close(r)
if mode == "reused":
    assert os.open("/dev/null", os.O_RDONLY) == r
elif mode == "redup":
    assert os.dup(keep) == r
print("fds", ep.fileno(), r, flush=True)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def start_stale(tree, mode):
    log = tree.workdir / "stale.log"
    start_ready(tree, STALE, log, mode, log=log, python=PYTHON)
    epfd, tfd = re.search(r"^fds (\d+) (\d+)$", log.read_text(), re.M).groups()
    return epfd, tfd


@pytest.mark.parametrize("mode,why", [("closed", "was closed"), ("reused", "another file")])
def test_stale_target_refused(tree, mode, why):
    epfd, tfd = start_stale(tree, mode)
    snap = tree.snapshot()
    line = refused_dump(tree, "an epoll with a stale target", tree.root, f"fd {epfd}", f"fd {tfd}")
    assert why in line, f"the error does not say the target {why}: {line}"
    assert not (tree.workdir / "img" / "inventory.img").exists()
    kill_tree(tree, snap)


def test_number_reused_by_same_file(tree):
    start_stale(tree, "redup")
    snap = tree.snapshot()
    tree.dump(tree.workdir / "img", "-R")
    kill_tree(tree, snap)


# A loop driven by epoll: each round writes a byte into its own pipe, waits for the epoll to
# report it (edge-triggered), reads it and writes the round's number.
LOOP = r"""
import os, select, sys, time
out = open(sys.argv[1], "a", buffering=1)
r, w = os.pipe()
ep = select.epoll()
ep.register(r, select.EPOLLIN | select.EPOLLET)
i = 0
while True:
    os.write(w, b"x")
    events = ep.poll(5)
    if events != [(r, select.EPOLLIN)]:
        out.write("bad events %r\n" % (events,))
        continue
    os.read(r, 1)
    i += 1
    out.write("%d\n" % i)
    time.sleep(0.05)
"""


def test_python_epoll_loop(tree):
    lines, at_dump = python_loop_across_restore(tree, LOOP)
    assert lines[:at_dump + 10] == [str(n) for n in range(1, at_dump + 11)], \
        f"the loop did not go on after restore ({at_dump} lines before the dump): {lines}"

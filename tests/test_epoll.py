"""epoll beyond the case program (tests/cases/epoll.c):

  - an epoll whose target fd number was closed after EPOLL_CTL_ADD (the file kept open by a
    dup) makes the dump fail with one line naming the process, the epoll's fd and the target's
    number, and leaves the tree as it was; likewise when the number now holds another file;
  - when the number was closed and then reused by a dup of the very same file, the epoll is
    still restorable and the dump succeeds;
  - a Python program whose loop runs on select.epoll goes on after restore.
"""

import re
import time

import pytest

from crestlib import WAIT, tree_changes, tree_details
from test_badinput import one_line_error
from test_programs import PYTHON, dump_restore, kill_tree, wait_lines

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
    tree.start([PYTHON, "-c", STALE, str(log), mode], log)
    deadline = time.monotonic() + WAIT
    while "ready" not in log.read_text():
        if tree.popen.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the program did not get ready: {log.read_text()}")
        time.sleep(0.01)
    epfd, tfd = re.search(r"^fds (\d+) (\d+)$", log.read_text(), re.M).groups()
    return epfd, tfd


@pytest.mark.parametrize("mode,why", [("closed", "was closed"), ("reused", "another file")])
def test_stale_target_refused(tree, mode, why):
    epfd, tfd = start_stale(tree, mode)
    snap = tree.snapshot()
    before = tree_details(snap)
    call = tree.crest("dump", "-t", tree.root, "-D", tree.workdir / "img", log=False)
    one_line_error(call, tree.root, f"fd {epfd}", f"fd {tfd}")
    assert why in call.stderr, f"the error does not say the target {why}: {call.stderr}"
    changed = tree_changes(before)
    assert not changed, "the failed dump changed the tree:\n" + "\n".join(changed)
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
    out = tree.workdir / "loop.txt"
    tree.start([PYTHON, "-c", LOOP, str(out)], tree.workdir / "python.log")
    wait_lines(out, 5, "python before the dump")
    snap, at_dump = dump_restore(tree, out)
    lines = wait_lines(out, at_dump + 10, "python after restore")
    kill_tree(tree, snap)
    assert lines[:at_dump + 10] == [str(n) for n in range(1, at_dump + 11)], \
        f"the loop did not go on after restore ({at_dump} lines before the dump): {lines}"

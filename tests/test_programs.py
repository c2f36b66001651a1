"""Real programs checkpointed, killed and restored: they must carry on where they were.

  python   /usr/bin/python3 running a loop that keeps its state in variables (a counter, a
           dict and a running total) and writes a line every 50 ms: after restore the lines go
           on from the last one, with no gap, no restart, and consistent state.
  pipeline sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | cat | cat >> OUT':
           a shell, a subshell, two cats, pipes between them and a sleep forked every 50 ms;
           after restore the numbers in OUT go on increasing by one from where they were.
"""

import os
import signal
import time

import pytest

from crestlib import WAIT, proc_stat

PYTHON = "/usr/bin/python3"

LOOP = r"""
import sys, time
out = open(sys.argv[1], "a", buffering=1)
i = 0
squares = {}
total = 0
while True:
    i += 1
    squares[i] = i * i
    total += i * i
    out.write("%d %d %d\n" % (i, len(squares), total))
    time.sleep(0.05)
"""


def numbers(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_lines(path, n, what):
    deadline = time.monotonic() + WAIT
    while len(numbers(path)) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {len(numbers(path))} lines after {WAIT} s, want {n}")
        time.sleep(0.02)
    return numbers(path)


def kill_tree(tree, snap):
    try:
        os.killpg(tree.root, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in snap:
        if proc_stat(pid) is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    tree.wait_gone(list(snap) + [tree.root])


def dump_restore(tree, out):
    """Dumps the tree (killing it), restores it with -d. Returns the snapshot taken at the
    dump and the number of lines in out when the tree was killed."""
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    at_dump = len(numbers(out))
    time.sleep(0.2)
    assert len(numbers(out)) == at_dump, "lines were written after the dump killed the tree"
    pidfile = tree.workdir / "restore.pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    root = tree.snapshot().get(tree.root)
    assert root is not None, f"the root {tree.root} is not running after restore"
    assert root.exe == snap[tree.root].exe, f"the root runs {root.exe}, want {snap[tree.root].exe}"
    assert pidfile.read_text().strip() == str(tree.root), "the pidfile does not name the root"
    return snap, at_dump


def test_python_loop(tree):
    out = tree.workdir / "loop.txt"
    tree.start([PYTHON, "-c", LOOP, str(out)], tree.workdir / "python.log")
    wait_lines(out, 5, "python before the dump")
    snap, at_dump = dump_restore(tree, out)
    lines = wait_lines(out, at_dump + 10, "python after restore")
    kill_tree(tree, snap)

    total = 0
    for n, line in enumerate(lines, 1):
        total += n * n
        want = f"{n} {n} {total}"
        assert line == want, f"line {n} is {line!r}, want {want!r} " \
                             f"({at_dump} lines were written before the dump)"


def test_shell_pipeline(tree):
    out = tree.workdir / "numbers.txt"
    cmd = f"i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | cat | cat >> {out}"
    tree.start(["/bin/sh", "-c", cmd], tree.workdir / "sh.log")
    wait_lines(out, 10, "the pipeline before the dump")
    snap, at_dump = dump_restore(tree, out)
    lines = wait_lines(out, at_dump + 20, "the pipeline after restore")
    kill_tree(tree, snap)

    for n, line in enumerate(lines, 1):
        assert line == str(n), f"line {n} is {line!r}, want {n!r} ({at_dump} lines were " \
            "written before the dump: a 1 means a restart, a jump means lost pipe data)"

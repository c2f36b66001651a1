"""Helpers that several test drivers (tests/test_*.py) share, on top of crestlib's: waiting for
a condition, starting a small python program in a tree, the one-line error of a refused crest
call, an image of a case killed by its dump, protobuf varints, and a program whose output lines
are followed across a dump and restore.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from crestlib import CREST, WAIT, Tree, proc_stat, tree_changes, tree_details

PYTHON = "/usr/bin/python3"


# ---- waiting ------------------------------------------------------------------------------

def read_text(path):
    """The text of path; "" while it does not exist."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def wait_for(cond, what, timeout=WAIT):
    """Waits until cond() is true, looking every 10 ms; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def build_c(tmp_path_factory, name, source, *flags):
    """Compiles source (C text) into an executable called name in a new directory."""
    d = tmp_path_factory.mktemp(name)
    (d / f"{name}.c").write_text(source)
    res = subprocess.run(["gcc", "-O1", "-Wall", *flags, "-o", str(d / name), str(d / f"{name}.c")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"cannot build {name}.c:\n{res.stderr}"
    return d / name


def start_ready(tree, script, *args, log=None, python=sys.executable):
    """Runs a python script (its argv: args) as the tree's root; returns its log (log, or
    prog.log in the tree's directory) once the script printed "ready" there."""
    log = log or tree.workdir / "prog.log"
    tree.start([python, "-c", script] + [str(a) for a in args], log)
    deadline = time.monotonic() + WAIT
    while "ready" not in log.read_text():
        assert tree.popen.poll() is None, f"the program exited: {log.read_text()}"
        assert time.monotonic() < deadline, "the program did not get ready"
        time.sleep(0.01)
    return log


def finish_case(tree):
    """SIGTERM to the running case: it checks its state, passes and exits 0."""
    mark = tree.terminate()
    try:
        rc = tree.popen.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail("the case did not exit after SIGTERM")
    tree.expect_pass(mark)
    assert rc == 0, f"the case exited {rc}"


def alive(pid):
    """Whether pid is a process that has not exited (neither gone nor a zombie)."""
    st = proc_stat(pid)
    return st is not None and st[0] not in "ZX"


def run_crest(*args, timeout=WAIT):
    """Runs crest with args (any values, as str) outside of a Tree: its CompletedProcess."""
    return subprocess.run([str(CREST), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def ready_fd(log):
    """N of the "ready fd N" line a program printed to its log."""
    return int(re.search(r"ready fd (\d+)", log.read_text()).group(1))


# ---- refusals -----------------------------------------------------------------------------

def has_word(line, word):
    """Whether line has word (any value, as str) as a whole word: a pid 12 is not in 123."""
    return re.search(r"(?<![\w.-])" + re.escape(str(word)) + r"(?![\w-])", line) is not None


def one_line_error(call, *words, whole=True):
    """crest failed, with exactly one line on stderr that has each of words (as whole words,
    or anywhere with whole=False); returns that line."""
    assert call.rc not in (0, None), f"crest {call.args[0]} succeeded, it should fail"
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one line of error on stderr, got {len(lines)}:\n{call.stderr}"
    for word in words:
        found = has_word(lines[0], word) if whole else str(word) in lines[0]
        assert found, f"the error does not name {word}: {lines[0]}"
    return lines[0]


def refused_dump(tree, what, *words):
    """crest dump of the tree fails (what: what it would have dumped, for the message if it
    does not), leaves the tree exactly as it was, and says why in one line that names each of
    words (one_line_error); returns that line."""
    before = tree_details(tree.snapshot())
    call = tree.crest("dump", "-t", tree.root, "-D", tree.workdir / "img", log=False)
    assert call.rc not in (0, None), f"crest dumped {what}"
    changed = tree_changes(before)
    assert not changed, "the failed dump changed the tree:\n" + "\n".join(changed)
    return one_line_error(call, *words)


# ---- images -------------------------------------------------------------------------------

def killed_case_image(tmp_path_factory, name, case, info=sorted):
    """An image of case, killed by its dump, in a new directory called name: (the image, the
    root's pid, info(the tree's snapshot taken before the dump))."""
    work = tmp_path_factory.mktemp(name)
    t = Tree(work)
    try:
        t.start_case(case)
        snap = t.snapshot()
        seen = info(snap)
        t.dump(work / "img")
        t.expect_original_killed(snap)
    except BaseException:
        print(t.report())
        t.cleanup()
        raise
    t.cleanup()
    return work / "img", t.root, seen


def read_varint(buf, pos):
    """The protobuf varint at buf[pos]: (its value, the position after it)."""
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


# ---- programs that go on across a restore -------------------------------------------------

def numbers(path):
    """The lines of path; none while it does not exist."""
    return read_text(path).splitlines()


def wait_lines(path, n, what):
    """Waits until path has n lines (at most WAIT seconds); returns its lines."""
    deadline = time.monotonic() + WAIT
    while len(numbers(path)) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {len(numbers(path))} lines after {WAIT} s, want {n}")
        time.sleep(0.02)
    return numbers(path)


def kill_tree(tree, snap):
    """Kills the tree (its process group and every pid of snap) and waits until it is gone."""
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


def python_loop_across_restore(tree, script):
    """Runs a python loop (its argv: the file it writes a line to each round) until it wrote 5
    lines, dumps and restores it, lets it write 10 more and kills it; returns the lines and how
    many there were at the dump."""
    out = tree.workdir / "loop.txt"
    tree.start([PYTHON, "-c", script, str(out)], tree.workdir / "python.log")
    wait_lines(out, 5, "python before the dump")
    snap, at_dump = dump_restore(tree, out)
    lines = wait_lines(out, at_dump + 10, "python after restore")
    kill_tree(tree, snap)
    return lines, at_dump

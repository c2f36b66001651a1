"""Pty pairs that crest refuses to dump, and that refusing harms nothing.

Each target is a small python3 program that makes a pty pair with os.openpty(), sets it up,
writes "ready" to its output file and sleeps. crest must refuse the dump with one error line
that names the pid, the descriptor or process, and what cannot be saved; no inventory is
written, and the target is left exactly as it was (tree_details). The pty case
(tests/cases/pty.c) covers what crest does save.

  unread_input     bytes typed into the master that no reader of the slave has taken yet
                   (echo off, so the master has nothing queued): a tty has no MSG_PEEK.
  unread_output    bytes written to the slave that the master has not read yet.
  session_member   a process that is not its session's leader has the slave as controlling
                   terminal, but its parent (the root, a subreaper it was reparented to) is not
                   in the session: crest gives the terminal back to the leader before it
                   forks, and members get it by inheritance only. (Members whose parent has
                   it are restored: tests/cases/pty.c, tests/test_script.py.)
  leader_outside   the slave is the controlling terminal of a session whose leader is not
                   in the dumped tree (dumped with --shell-job, which allows that session).
  held_outside     the dumped tree holds the master, a process outside it the slave (-j).
  dev_tty          a process whose controlling terminal is a slave in the tree holds
                   /dev/tty open: reopening /dev/tty in that session is not done yet.
"""

import time

import pytest

from crestlib import WAIT, tree_changes, tree_details

PYTHON = "/usr/bin/python3"

# Shared by the targets: the pair, and "ready" (with pids) once set up.
PRELUDE = r"""
import fcntl, os, sys, termios, time
out = open(sys.argv[1], "a", buffering=1)
m, s = os.openpty()
def ready(*pids):
    out.write(" ".join(["ready"] + [str(p) for p in pids]) + "\n")
def sleep():
    while True:
        time.sleep(100)
"""

TARGETS = {
    "unread_input": r"""
a = termios.tcgetattr(s)
a[3] &= ~termios.ECHO
termios.tcsetattr(s, termios.TCSANOW, a)
os.write(m, b"typed\n")
ready()
sleep()
""",
    "unread_output": r"""
os.write(s, b"out")
ready()
sleep()
""",
    # the root reaps orphans (PR_SET_CHILD_SUBREAPER): the member's parent dies, and the root,
    # outside the session, becomes its parent
    "session_member": r"""
import ctypes
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
leader = os.fork()
if leader == 0:
    os.setsid()
    fcntl.ioctl(s, termios.TIOCSCTTY, 0)
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        member = os.fork()
        if member == 0:
            sleep()
        os.write(w, b"%d" % member)
        os._exit(0)
    os.waitpid(middle, 0)
    ready(os.getpid(), int(os.read(r, 32)))
    sleep()
sleep()
""",
    # started in a session of its own: this process leads it; the dumped tree is its child
    "leader_outside": r"""
fcntl.ioctl(s, termios.TIOCSCTTY, 0)
child = os.fork()
if child == 0:
    sleep()
ready(child)
sleep()
""",
    # the dumped tree is the child, with the master; this process keeps only the slave
    "held_outside": r"""
child = os.fork()
if child == 0:
    os.close(s)
    sleep()
os.close(m)
ready(child)
sleep()
""",
    "dev_tty": r"""
leader = os.fork()
if leader == 0:
    os.setsid()
    fcntl.ioctl(s, termios.TIOCSCTTY, 0)
    t = os.open("/dev/tty", os.O_RDWR)
    ready(os.getpid())
    sleep()
sleep()
""",
}

# what the one error line must say: whose pid (the dumped root, or the member) and words
WANT = {
    "unread_input": ("root", ["unread bytes of input", "fd"]),
    "unread_output": ("root", ["unread bytes of output", "fd"]),
    "session_member": ("member", ["controlling terminal", "leader"]),
    "leader_outside": ("root", ["controlling terminal", "outside the tree"]),
    "held_outside": ("root", ["pty master", "outside the tree"]),
    "dev_tty": ("member", ["/dev/tty", "inside the tree"]),
}


def start(tree, name):
    """Starts target name; returns (pid to dump, the pids it printed)."""
    out = tree.workdir / "target.out"
    script = tree.workdir / f"{name}.py"
    script.write_text(PRELUDE + TARGETS[name])
    tree.start([PYTHON, str(script), str(out)], tree.workdir / "target.log")
    deadline = time.monotonic() + WAIT
    while True:
        lines = out.read_text().split() if out.exists() else []
        if lines and lines[0] == "ready":
            break
        if tree.popen.poll() is not None or time.monotonic() > deadline:
            log = (tree.workdir / "target.log").read_text()
            pytest.fail(f"target {name} did not get ready:\n{log}")
        time.sleep(0.01)
    pids = [int(p) for p in lines[1:]]
    tree.known |= set(pids)
    root = pids[0] if name in ("leader_outside", "held_outside") else tree.root
    return root, pids


@pytest.mark.parametrize("name", list(TARGETS))
def test_pty_dump_refused(tree, name):
    root, pids = start(tree, name)
    who = pids[-1] if WANT[name][0] == "member" else root  # the member: the last pid printed
    watched = sorted({tree.root, root, *pids})
    time.sleep(0.05)  # the tty hands data on asynchronously
    before = tree_details(watched)
    img = tree.workdir / "img"
    # -j: else crest refuses a session led from outside before looking at any descriptor
    extra = ["-j"] if name in ("leader_outside", "held_outside") else []
    call = tree.crest("dump", "-t", root, "-D", img, *extra, log=False)  # -o takes stderr
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert call.rc not in (0, None), f"crest dumped {name}: {call.stderr}"
    assert len(lines) == 1, f"want one line of error, got {len(lines)}:\n{call.stderr}"
    assert f"pid {who}" in lines[0], f"the error does not name pid {who}: {lines[0]}"
    for word in WANT[name][1]:
        assert word in lines[0], f"the error does not say {word!r}: {lines[0]}"
    assert not (img / "inventory.img").exists(), "a failed dump wrote an inventory"
    changed = tree_changes(before)
    assert not changed, "the refused dump changed the target:\n" + "\n".join(changed)

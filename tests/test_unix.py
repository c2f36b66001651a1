"""Unix socket states crest refuses: the dump fails with one error naming the process, the fd
and what cannot be saved, and the target runs on with its sockets exactly as they were.

  outside_peer     a stream connection whose other end is held by a process outside the tree
                   (here the test driver): the error names that process
  outside_dgram    a datagram socket connected to a named socket outside the tree
  scm_nested       a unix socket in flight (SCM_RIGHTS) that carries descriptors in flight itself
  scm_epoll        an epoll in flight, which no process holds (its interest list names fds)
  pending_data     a connection not accepted yet that already carries data
  pending_closed   a connection not accepted yet whose client has closed
  oob              out-of-band data (MSG_OOB) in a stream's receive queue

Each target is a small python3 program: it sets the state up, writes "ready", and on SIGTERM
checks that the state is untouched (the queued data is all there) and writes PASS or FAIL.

Descriptors in flight of other kinds (test_unix_scm_kinds) come back: an eventfd with its count
behind bytes sent without descriptors (the peek shows them as one run), a memfd with its
contents, and a unix socket in flight with data queued in it and its peer still held.

With --ext-unix-sk (test_unix_ext) a peer outside the tree is allowed: the dump warns, a
restore without the option refuses, and with it the socket connects again to the peer's name
(stream client, datagram socket), or, when data from the peer was queued, gets that data back
followed by EOF.
"""

import os
import signal
import socket
import subprocess
import time

import pytest

from casehelpers import PYTHON, read_text as read, run_crest, wait_for
from crestlib import WAIT, proc_stat

PRELUDE = r"""
import os, signal, socket, sys, time
out = open(sys.argv[1], "a", buffering=1)
done = False
def term(sig, frame):
    global done
    done = True
signal.signal(signal.SIGTERM, term)
def finish(ok, why=""):
    out.write("PASS\n" if ok else "FAIL: %s\n" % why)
    sys.exit(0 if ok else 1)
def wait():
    out.write("ready\n")
    while not done:
        time.sleep(0.01)
# a listener, and a connection to it not accepted yet that sent data
def pending(name, data):
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    l.bind("\0crest-test-unix-%s-%d" % (name, os.getpid()))
    l.listen(4)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect("\0crest-test-unix-%s-%d" % (name, os.getpid()))
    c.send(data)
    return l, c
"""

TARGETS = {
    "outside_peer": r"""
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[2])
s.send(b"to driver")
wait()
finish(s.recv(64) == b"from driver", "the data queued for the target is gone")
""",
    "outside_dgram": r"""
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(sys.argv[2])
wait()
finish(s.getpeername() == sys.argv[2], "the datagram socket lost its peer")
""",
    "scm_nested": r"""
a, b = socket.socketpair()
c, d = socket.socketpair()
r, w = os.pipe()
socket.send_fds(d, [b"inner"], [w])
socket.send_fds(a, [b"outer"], [c.fileno()])
os.close(w)
c.close()
wait()
msg, fds, _, _ = socket.recv_fds(b, 64, 4)
inner = socket.socket(fileno=fds[0]) if len(fds) == 1 else None
msg2, fds2, _, _ = socket.recv_fds(inner, 64, 4) if inner else (b"", [], 0, 0)
finish(msg == b"outer" and msg2 == b"inner" and len(fds2) == 1, "the descriptors in flight are gone")
""",
    "scm_epoll": r"""
import select
a, b = socket.socketpair()
ep = select.epoll()
socket.send_fds(a, [b"epoll"], [ep.fileno()])
ep.close()
wait()
msg, fds, _, _ = socket.recv_fds(b, 64, 4)
finish(msg == b"epoll" and len(fds) == 1, "the epoll in flight is gone")
""",
    "pending_data": r"""
l, c = pending("pending", b"early data")
wait()
s, _ = l.accept()
finish(s.recv(64) == b"early data", "the data of the pending connection is gone")
""",
    "pending_closed": r"""
l, c = pending("closed", b"last")
c.close()
wait()
s, _ = l.accept()
finish(s.recv(64) == b"last", "the data of the pending connection is gone")
""",
    "oob": r"""
a, b = socket.socketpair()
a.send(b"ab")
a.send(b"X", socket.MSG_OOB)
wait()
finish(b.recv(1, socket.MSG_OOB) == b"X" and b.recv(8) == b"ab", "the out-of-band byte is gone")
""",
}

# What the one error line must say, besides the pid and "fd N".
EXPECT = {
    "outside_peer": ["outside the dumped tree", "held by pid %d" % os.getpid()],
    "outside_dgram": ["outside the dumped tree", "outside.sock"],
    "scm_nested": ["SCM_RIGHTS", "nested in flight"],
    "scm_epoll": ["SCM_RIGHTS", "epoll"],
    "pending_data": ["not accepted yet"],
    "pending_closed": ["not yet accepted", "client has closed"],
    "oob": ["MSG_OOB"],
}


def start(tmp_path, name, arg):
    out = tmp_path / "target.out"
    proc = subprocess.Popen([PYTHON, "-c", PRELUDE + TARGETS[name], str(out), arg],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "target.err", "wb"), start_new_session=True)
    wait_for(lambda: "ready" in read(out) or proc.poll() is not None, "the target to be ready")
    assert proc.poll() is None, f"the target exited: {read(tmp_path / 'target.err')}"
    return proc, out


def driver_side(tmp_path, name):
    """The socket the driver holds (the peer outside the tree), and the target's argument."""
    path = str(tmp_path / "outside.sock")
    kind = socket.SOCK_DGRAM if name == "outside_dgram" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(path)
    if kind == socket.SOCK_STREAM:
        s.listen(1)
    return s, path


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_unix_refused(tmp_path, name):
    listener, arg = driver_side(tmp_path, name)
    proc, out = start(tmp_path, name, arg)
    conn = None
    try:
        if name == "outside_peer":
            conn, _ = listener.accept()
            conn.send(b"from driver")
        fds = sorted(os.listdir(f"/proc/{proc.pid}/fd"))
        res = run_crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        errors = [l for l in res.stderr.splitlines() if l.startswith("Error")]
        assert res.returncode != 0, "the dump should have failed"
        assert len(errors) == 1, f"want one error line, got:\n{res.stderr}"
        for want in [f"pid {proc.pid} fd ", *EXPECT[name]]:
            assert want in errors[0], f"the error does not say {want!r}: {errors[0]}"
        assert proc_stat(proc.pid) and proc_stat(proc.pid)[0] not in "ZXt", \
            "the target is not running after the failed dump"
        assert sorted(os.listdir(f"/proc/{proc.pid}/fd")) == fds
        assert not (tmp_path / "img" / "inventory.img").exists()
        if conn is not None:
            assert conn.recv(64) == b"to driver", "the data queued for the driver is gone"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=WAIT)
        assert rc == 0 and "PASS" in read(out), f"the target after the failed dump: {read(out)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
        if conn is not None:
            conn.close()


# ---- --ext-unix-sk: a peer outside the tree is allowed, and the socket reconnects ----------

# A socket of type TYPE connected to a named socket outside the tree: after restore it sends.
RECONNECTS = r"""
s = socket.socket(socket.AF_UNIX, socket.TYPE)
s.connect(sys.argv[2])
wait()
s.send(b"after restore")
finish(s.getpeername() == sys.argv[2], "not connected to the server again")
"""

EXT_TARGETS = {
    # a client of a stream server outside the tree, nothing queued: it connects again
    "stream": RECONNECTS.replace("TYPE", "SOCK_STREAM"),
    # a datagram socket connected to a named socket outside the tree (as syslog's /dev/log)
    "dgram": RECONNECTS.replace("TYPE", "SOCK_DGRAM"),
    # data from the outside peer is queued: it comes back, then EOF (restored disconnected)
    "queued": r"""
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[2])
while s.recv(64, socket.MSG_PEEK) != b"from driver":
    time.sleep(0.01)
wait()
finish(s.recv(64) == b"from driver" and s.recv(64) == b"", "want the queued data, then EOF")
""",
}


def kill_target(proc, pid):
    """Whatever is left of a target: the restored pid, and the original the test started."""
    if proc_stat(pid) is not None:
        os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_exit(pid):
    """Exit code of pid, restored with -d and adopted by the driver (a subreaper)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    pytest.fail(f"pid {pid} did not exit")


@pytest.mark.parametrize("name", sorted(EXT_TARGETS))
def test_unix_ext(tmp_path, name):
    """Dump and restore with --ext-unix-sk; without it, each of them refuses."""
    server, arg = driver_side(tmp_path, "outside_dgram" if name == "dgram" else "outside_peer")
    server.settimeout(WAIT)
    out = tmp_path / "target.out"
    proc = subprocess.Popen([PYTHON, "-c", PRELUDE + EXT_TARGETS[name], str(out), arg],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "target.err", "wb"), start_new_session=True)
    img, pid = tmp_path / "img", proc.pid
    try:
        if name != "dgram":
            first, _ = server.accept()
            if name == "queued":
                first.send(b"from driver")
        wait_for(lambda: "ready" in read(out) or proc.poll() is not None, "the target")
        res = run_crest("dump", "-t", pid, "-D", img, "--ext-unix-sk")
        assert res.returncode == 0, res.stderr
        assert "outside the dumped tree" in res.stderr, "the dump should warn about the peer"
        proc.wait(timeout=WAIT)
        res = run_crest("restore", "-D", img, "-d")
        assert res.returncode != 0 and "--ext-unix-sk" in res.stderr, res.stderr
        assert proc_stat(pid) is None, "a refused restore left the process behind"
        res = run_crest("restore", "-D", img, "-d", "--ext-unix-sk")
        assert res.returncode == 0, res.stderr
        again = server.accept()[0] if name == "stream" else None
        os.kill(pid, signal.SIGTERM)
        if name == "stream":
            assert again.recv(64) == b"after restore"
        elif name == "dgram":
            assert server.recv(64) == b"after restore"
        assert wait_exit(pid) == 0 and "PASS" in read(out), read(out)
    finally:
        kill_target(proc, pid)
        server.close()


# ---- descriptors in flight of several kinds ------------------------------------------------

SCM_KINDS = r"""
a, b = socket.socketpair()
ev = os.eventfd(7)
a.send(b"plain ")
socket.send_fds(a, [b"eventfd"], [ev])
os.close(ev)
m = os.memfd_create("scm")
os.write(m, b"memfd data")
socket.send_fds(a, [b"memfd"], [m])
os.close(m)
c, d = socket.socketpair()
d.send(b"inside c")
socket.send_fds(a, [b"socket"], [c.fileno()])
c.close()
wait()
def recv(want):
    msg, fds, _, _ = socket.recv_fds(b, 64, 4, socket.MSG_DONTWAIT)
    if msg != want or len(fds) != 1:
        finish(False, "got %r with %d fds, want %r with 1" % (msg, len(fds), want))
    return fds[0]
ok = os.eventfd_read(recv(b"plain eventfd")) == 7
m = recv(b"memfd")
ok = ok and os.pread(m, 64, 0) == b"memfd data"
c = socket.socket(fileno=recv(b"socket"))
ok = ok and c.recv(64) == b"inside c"
d.send(b"after")
ok = ok and c.recv(64) == b"after"
b.setblocking(False)
try:
    b.recv(1)
    ok = False
except BlockingIOError:
    pass
finish(ok, "a descriptor in flight came back wrong")
"""


def test_unix_scm_kinds(tmp_path):
    out = tmp_path / "target.out"
    proc = subprocess.Popen([PYTHON, "-c", PRELUDE + SCM_KINDS, str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "target.err", "wb"), start_new_session=True)
    img, pid = tmp_path / "img", proc.pid
    try:
        wait_for(lambda: "ready" in read(out) or proc.poll() is not None, "the target")
        assert proc.poll() is None, read(tmp_path / "target.err")
        res = run_crest("dump", "-t", pid, "-D", img)
        assert res.returncode == 0, res.stderr
        proc.wait(timeout=WAIT)
        res = run_crest("restore", "-D", img, "-d")
        assert res.returncode == 0, res.stderr
        os.kill(pid, signal.SIGTERM)
        assert wait_exit(pid) == 0 and "PASS" in read(out), read(out)
    finally:
        kill_target(proc, pid)

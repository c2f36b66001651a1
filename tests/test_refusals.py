"""What crest refuses, and that refusing harms nothing.

- A process in a network namespace of its own cannot be dumped yet: one error line naming the
  pid and the namespace, the process runs on, and the image directory is left incomplete.
- A restore whose --pidfile cannot be written takes the restored tree back: nobody could find
  it, so nothing may be left running.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CREST = str(ROOT / "build" / "crest")
CASE = str(ROOT / "build" / "tests" / "cases" / "sighandlers")


def crest(*args, timeout=30):
    return subprocess.run([CREST, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def ns_inode(pid, kind):
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_dump_refuses_own_namespace(tmp_path):
    proc = subprocess.Popen(["unshare", "--net", "sleep", "30"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(lambda: ns_inode(proc.pid, "net") != ns_inode("self", "net"),
                 "the process to enter its net namespace")
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1, f"want one error line, got: {res.stderr!r}"
        assert str(proc.pid) in lines[0] and "net namespace" in lines[0]
        assert proc.poll() is None, "the refused process did not survive the dump"
        assert not (tmp_path / "img" / "inventory.img").exists()
    finally:
        proc.kill()
        proc.wait()


def test_restore_pidfile_failure_kills_tree(tmp_path):
    out = tmp_path / "out"
    with open(out, "ab") as f:
        proc = subprocess.Popen([CASE, str(out)], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=f, start_new_session=True)
    wait_for(lambda: "ready" in out.read_text(), "the case to be ready")
    res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
    assert res.returncode == 0, res.stderr
    proc.wait(timeout=10)
    res = crest("restore", "-D", tmp_path / "img", "-d", "--pidfile", tmp_path / "no" / "pid")
    try:
        assert res.returncode != 0
        assert "pidfile" in res.stderr
        wait_for(lambda: not alive(proc.pid), "the restored tree to be killed")
    finally:
        if alive(proc.pid):
            os.kill(proc.pid, signal.SIGKILL)


def test_dump_refuses_locks_without_file_locks(tmp_path):
    """As CRIU: a process holding file locks is dumped only with --file-locks."""
    out = tmp_path / "out"
    with open(out, "ab") as f:
        proc = subprocess.Popen([str(ROOT / "build" / "tests" / "cases" / "flock"), str(out)],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                start_new_session=True)
    try:
        wait_for(lambda: "ready" in out.read_text(), "the flock case to be ready")
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1 and "--file-locks" in lines[0] and str(proc.pid) in lines[0], \
            res.stderr
        assert not (tmp_path / "img" / "inventory.img").exists()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Credentials and privilege: what `crest restore` run by an unprivileged user may give.

- A user with CAP_CHECKPOINT_RESTORE (to recreate pids) but not root restores a process of its
  own: the restored process has the image's credentials, not crest's capabilities.
- The same user restoring an image of a root process is refused with one line that names the
  pid, the thread and the credential; nothing of the tree is left.
- A user without any capability is refused with one line about the missing privilege.

The images are made readable for the user (a dump writes them 0600, for root): the test is
about credentials, not about reading the image.
"""
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from casehelpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
CREST = str(ROOT / "build" / "crest")
NOBODY = "65534"
# setpriv(1), util-linux: the user, no groups, no capabilities unless listed.
AS_NOBODY = ["setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups",
             "--inh-caps=-all"]
# clone3(set_tid) needs CAP_CHECKPOINT_RESTORE; the "sched" kind writes timerslack_ns of
# another task, which needs CAP_SYS_NICE. Ambient, so that they survive exec as non-root.
RESTORE_CAPS = "+checkpoint_restore,+sys_nice"
AS_NOBODY_CR = ["setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups",
                f"--inh-caps=-all,{RESTORE_CAPS}", f"--ambient-caps={RESTORE_CAPS}"]

pytestmark = [
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users"),
]


def status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False



def reap(pid):
    """Reaps pid if it came to the driver (the subreaper) as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@pytest.fixture
def workdir():
    """A directory the unprivileged user can read and write (pytest's own is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="crest-creds-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Sleeper:
    """`sleep` in a session of its own, stdio on /dev/null, cwd /: nothing the user cannot
    open again. prefix runs it as another user."""

    def __init__(self, prefix=()):
        self.proc = subprocess.Popen([*prefix, "sleep", "120"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd="/", start_new_session=True)
        self.pid = self.proc.pid
        # setpriv execs sleep in the same process
        wait_for(lambda: os.path.basename(os.readlink(f"/proc/{self.pid}/exe")) == "sleep",
                 "sleep to start")

    def dump(self, imgdir):
        res = subprocess.run([CREST, "dump", "-t", str(self.pid), "-D", str(imgdir)],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, f"crest dump failed: {res.stderr}"
        self.proc.wait(timeout=10)
        for dirpath, dirs, files in os.walk(imgdir):
            for name in dirs + files:
                os.chmod(os.path.join(dirpath, name), 0o777)
        os.chmod(imgdir, 0o777)

    def kill(self):
        if alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        reap(self.pid)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def restore(prefix, imgdir, *extra):
    return subprocess.run([*prefix, CREST, "restore", "-D", str(imgdir), *extra],
                          capture_output=True, text=True, timeout=30, cwd=imgdir.parent)


def one_line(res):
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0, "the restore should have been refused"
    assert len(lines) == 1, f"want one error line, got: {res.stderr!r}"
    return lines[0]


def test_refuses_root_credentials(workdir):
    """CAP_CHECKPOINT_RESTORE lets the user recreate the pids, not take root's credentials."""
    sleeper = Sleeper()
    try:
        sleeper.dump(workdir / "img")
        # -d: were it not refused, crest would not wait for the tree it restored
        line = one_line(restore(AS_NOBODY_CR, workdir / "img", "-d"))
        pid = sleeper.pid
        assert f"pid {pid} tid {pid}: refusing to restore" in line, line
        assert "uid 0" in line and "CAP_SETUID" in line, line
        wait_for(lambda: not alive(pid), "the refused tree to be gone")
    finally:
        sleeper.kill()


def test_refuses_without_privilege(workdir):
    """Without any capability the restore stops at the first privileged step, with one line
    that says so (today: recreating the pid, before any credential)."""
    sleeper = Sleeper()
    try:
        sleeper.dump(workdir / "img")
        line = one_line(restore(AS_NOBODY, workdir / "img", "-d"))
        assert str(sleeper.pid) in line, line
        assert any(w in line for w in ("not permitted", "CAP_", "privilege")), line
        wait_for(lambda: not alive(sleeper.pid), "the refused tree to be gone")
    finally:
        sleeper.kill()


def test_restores_own_credentials(workdir):
    """A process of the user's own comes back with its credentials: crest's capabilities
    (inherited by every restored thread) are taken away again."""
    sleeper = Sleeper(AS_NOBODY)
    pid = sleeper.pid
    want = {k: status(pid)[k] for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
                                        "CapBnd", "CapAmb", "NoNewPrivs")}
    try:
        sleeper.dump(workdir / "img")
        pidfile = workdir / "pid"
        res = restore(AS_NOBODY_CR, workdir / "img", "-d", "--pidfile", str(pidfile))
        assert res.returncode == 0, f"crest restore failed: {res.stderr}"
        assert int(pidfile.read_text()) == pid
        got = {k: status(pid)[k] for k in want}
        assert got == want, f"restored credentials {got}, want {want}"
    finally:
        sleeper.kill()

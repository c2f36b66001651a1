"""An interactive bash on a fresh pseudo-terminal, driven through its master, for the tests
that need a real terminal (--shell-job, job control)."""
import fcntl
import os
import re
import select
import signal
import subprocess
import termios
import time

import pytest

from crestlib import WAIT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TICK_LINE = re.compile(r"^tick (\d+)$")


class PtyShell:
    """bash in its own session with the slave as its controlling terminal and stdio; the test
    holds the master. What the terminal shows accumulates in self.text (\\r and escape
    sequences removed); self.pos marks where the next expect() looks."""

    def __init__(self, workdir, prompt, bash="bash"):
        self.master, slave = os.openpty()
        # wide enough for the longest command line typed: readline on a dumb terminal
        # scrolls a line that does not fit sideways, and its echo would not match
        termios.tcsetwinsize(self.master, (50, 2000))
        self.slave_path = os.ttyname(slave)
        self.slave_rdev = os.fstat(slave).st_rdev
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb",
               "PS1": prompt, "PS2": "", "HOME": str(workdir), "INPUTRC": "/dev/null",
               "HISTFILE": "/dev/null", "LANG": "C"}

        def make_ctty():
            # after setsid (start_new_session): the slave, on fd 0, becomes the session's
            # controlling terminal
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            self.bash = subprocess.Popen([bash, "--norc", "--noprofile", "-i"], stdin=slave,
                                         stdout=slave, stderr=slave, start_new_session=True,
                                         preexec_fn=make_ctty, env=env, cwd=workdir)
        finally:
            os.close(slave)
        self.raw = b""
        self.text = ""
        self.pos = 0

    def pump(self, timeout):
        """Reads whatever the terminal shows within timeout s (at least one select)."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: no process has the slave open any more
                    data = b""
                if not data:
                    return
                self.raw += data
                self.text = ANSI.sub("", self.raw.decode(errors="replace").replace("\r", ""))
            if time.monotonic() >= deadline:
                return

    def expect(self, pattern, timeout=10.0, what=None, why=None):
        """Waits until pattern (a regex, re.M) appears after self.pos; moves self.pos past
        it and returns the match. why(), if given, adds to the message of a failure."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if time.monotonic() > deadline:
                more = f"\n{why()}" if why else ""
                pytest.fail(f"the terminal did not show {what or pattern!r} within {timeout} s; "
                            f"it shows:\n{self.tail()}{more}")
            self.pump(0.05)

    def send(self, text):
        os.write(self.master, text.encode())

    def run(self, line):
        """Types a command line and waits for its echo."""
        self.send(line + "\n")
        self.expect(re.escape(line) + r"\n", timeout=5, what=f"the echo of {line!r}")

    def tail(self, n=40):
        """The last n lines the terminal shows, each run of "tick N" lines in one line."""
        out = []
        for line in self.text.splitlines():
            m = TICK_LINE.match(line)
            if m and out and out[-1][0] is not None:
                out[-1][1] = int(m.group(1))
            elif m:
                out.append([int(m.group(1)), int(m.group(1))])
            else:
                out.append([None, line])
        text = [l if a is None else f"tick {a}" if a == l else f"tick {a} .. tick {l}"
                for a, l in out]
        return "\n".join(text[-n:])

    def close(self):
        if self.bash.poll() is None:
            try:
                os.killpg(self.bash.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.bash.kill()
        try:
            self.bash.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pass
        os.close(self.master)

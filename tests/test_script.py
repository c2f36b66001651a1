"""A real program with a pty pair inside the tree: util-linux script(1) running an interactive
bash, dumped, killed and restored.

  script -q -c "exec bash --norc --noprofile -i" /dev/null

is started in a session of its own, its stdin a FIFO it holds open for reading and writing
(the test types into the FIFO; a FIFO is reopened by path at restore, so typing goes on
working), its stdout and stderr a file the test reads. script makes the pty pair, forks, and
its child, through sh -c "exec bash ...", becomes bash: the leader of a new session with the
slave as controlling terminal and stdio. script copies the FIFO to the master and the master
to the file.

  test_script_restore
      Before the dump, bash runs `stty rows 33 cols 111` and prints its tty. After dump, kill
      and restore: script and bash have their pids; bash leads its session with the same
      /dev/pts/N as controlling terminal and foreground group (/proc/PID/stat); the terminal's
      settings and window size are those before the dump (read through the slave by path);
      a command typed afterwards (echo hello $((6*7))) is answered ("hello 42"); `exit` ends
      bash, and script with it.
  test_script_busy_restore
      While bash runs a foreground `sleep`, the sleep is a member of bash's session with the
      slave as controlling terminal. After dump, kill and restore, sleep has it again, in the
      foreground (bash took it back before forking sleep, which inherited it); ^C typed into
      the terminal stops sleep, and bash answers a command.

test_script_restore needs poll(2) without a timeout, interrupted by the dump (it ends with
-ERESTART_RESTARTBLOCK), to be re-executed after restore: src/arch/x86_64/regs.c
(fixup_syscall_restart) does that; with -EINTR instead, script leaves its loop, kills bash and
exits (no answer to the typed command). The test also fails with files/pty-restore.c giving
/dev/null for every pty end
(script and bash die at once) and without TIOCSCTTY in the leader (bash's tty_nr is 0).
"""

import os
import re
import shutil
import subprocess
import termios
import time

import pytest

from crestlib import WAIT, proc_stat

SCRIPT = shutil.which("script")
PROMPT = "crest-script$ "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]")

pytestmark = pytest.mark.skipif(SCRIPT is None, reason="script (util-linux) is not installed")


class Script:
    """script running bash; what the terminal shows accumulates in the output file."""

    def __init__(self, tree):
        self.tree = tree
        self.fifo = tree.workdir / "in"
        self.out = tree.workdir / "out"
        os.mkfifo(self.fifo)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb",
               "PS1": PROMPT, "PS2": "", "HOME": str(tree.workdir), "SHELL": "/bin/sh",
               "INPUTRC": "/dev/null", "HISTFILE": "/dev/null", "LANG": "C"}
        cmd = [SCRIPT, "-q", "-c", "exec bash --norc --noprofile -i", "/dev/null"]
        stdin = os.open(self.fifo, os.O_RDWR)
        try:
            with open(self.out, "ab") as out:
                tree.popen = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=out,
                                              start_new_session=True, env=env,
                                              cwd=tree.workdir)
        finally:
            os.close(stdin)
        tree.root = tree.popen.pid
        tree.known.add(tree.root)
        tree.exes |= {os.path.realpath(SCRIPT), os.path.realpath(shutil.which("bash"))}
        self.pos = 0
        self.expect(re.escape(PROMPT), "bash's first prompt")
        self.bash = self.only_child(tree.root)
        tree.known.add(self.bash)

    def text(self):
        raw = self.out.read_bytes().decode(errors="replace")
        return ANSI.sub("", raw.replace("\r", ""))

    def expect(self, pattern, what, timeout=WAIT):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), self.pos)
            if m:
                self.pos = m.end()
                return m
            if time.monotonic() > deadline:
                pytest.fail(f"script did not show {what} within {timeout} s; it shows:\n"
                            f"{self.text()[-2000:]}")
            time.sleep(0.01)

    def type(self, line):
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def run(self, line, answer, what):
        """Types a command, waits for answer (a regex) and the next prompt."""
        self.type(line)
        m = self.expect(answer, what)
        self.expect(re.escape(PROMPT), f"the prompt after {line!r}")
        return m

    @staticmethod
    def only_child(pid):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
            except OSError:
                kids = []
            if len(kids) == 1:
                return int(kids[0])
            time.sleep(0.01)
        pytest.fail(f"pid {pid} has children {kids}, want one")


def terminal_state(path):
    """Settings and window size of the terminal, read through its slave (opened O_NOCTTY)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        return termios.tcgetattr(fd), termios.tcgetwinsize(fd)
    finally:
        os.close(fd)


def proc_tty(pid):
    """(session, tty_nr, tpgid) from /proc/PID/stat."""
    data = open(f"/proc/{pid}/stat").read()
    f = data[data.rindex(")") + 2:].split()
    return int(f[3]), int(f[4]), int(f[5])


@pytest.fixture
def script(tree):
    return Script(tree)


def test_script_restore(tree, script):
    m = script.run("stty rows 33 cols 111; echo T=$(tty)", r"^T=(/dev/pts/\d+)$", "bash's tty")
    tty = m.group(1)
    pids = [tree.root, script.bash]
    state = terminal_state(tty)
    ctty = proc_tty(script.bash)
    assert ctty[0] == script.bash and ctty[1] == os.stat(tty).st_rdev, \
        f"bash does not lead a session on {tty}: {ctty}"
    time.sleep(0.05)  # script has copied everything to the file

    img = tree.workdir / "img"
    tree.crest_ok("dump", "-t", tree.root, "-D", img)
    tree.popen.wait(timeout=WAIT)
    tree.wait_gone(pids)
    pidfile = tree.workdir / "restored.pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)

    for pid in pids:
        assert proc_stat(pid) is not None, f"pid {pid} is not back"
    assert os.readlink(f"/proc/{script.bash}/fd/0") == tty, "bash's stdin is not its terminal"
    assert proc_tty(script.bash) == ctty, \
        f"bash's (session, tty, foreground) is {proc_tty(script.bash)}, want {ctty}"
    assert terminal_state(tty) == state, f"{tty} lost its settings or window size"
    script.run("echo hello $((6*7))", r"^hello 42$", "the answer to a command typed after restore")
    script.run("stty size", r"^33 111$", "the window size, as bash sees it")

    script.type("exit")
    tree.wait_gone(pids)


def test_script_busy_restore(tree, script):
    script.type("sleep 60")
    sleep = None
    deadline = time.monotonic() + WAIT
    while sleep is None:
        kids = open(f"/proc/{script.bash}/task/{script.bash}/children").read().split()
        sleep = int(kids[0]) if kids else None
        if time.monotonic() > deadline:
            pytest.fail("bash did not start sleep")
        time.sleep(0.01)
    tree.known.add(sleep)
    time.sleep(0.1)  # sleep has exec'ed
    pids = [tree.root, script.bash, sleep]
    ctty = {pid: proc_tty(pid) for pid in pids[1:]}
    assert ctty[sleep][1] == ctty[script.bash][1] != 0 and ctty[sleep][2] == sleep, \
        f"sleep is not bash's foreground job on its terminal: {ctty}"

    img = tree.workdir / "img"
    tree.crest_ok("dump", "-t", tree.root, "-D", img)
    tree.popen.wait(timeout=WAIT)
    tree.wait_gone(pids)
    tree.crest_ok("restore", "-D", img, "-d")

    for pid in pids[1:]:
        assert proc_tty(pid) == ctty[pid], \
            f"pid {pid}: (session, tty, foreground) is {proc_tty(pid)}, want {ctty[pid]}"
    # ^C on the terminal: SIGINT to the foreground job, through its controlling terminal
    fd = os.open(script.fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"\x03")
    finally:
        os.close(fd)
    tree.wait_gone([sleep])
    script.expect(re.escape(PROMPT), "the prompt after ^C stopped sleep")
    script.run("echo hello $((6*7))", r"^hello 42$", "the answer to a command typed after restore")
    script.type("exit")
    tree.wait_gone(pids)

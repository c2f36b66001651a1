"""--shell-job: a program started from an interactive shell is dumped and restored onto the
terminal of the shell that runs `crest restore`.

An interactive `bash --norc --noprofile -i` runs on a pseudo-terminal (its own session, the
pty slave as its controlling terminal and stdio); the test types into the master and reads
what the terminal shows from it (every read bounded by select). The job is a one-process C
program built by the test, which writes its pid to a file and then either prints `tick N`
(N = 0, 1, 2...) every 100 ms, or answers each line it reads with `got LINE`. With job
control, bash runs it in a process group of its own (pgid = its pid) in bash's session, and
makes that group the terminal's foreground group.

  test_shell_job_restore_on_terminal
      dump -j kills the job; `crest restore -D DIR -j`, typed into the same bash, brings it
      back with the same pid: the ticks go on from the last one shown (no restart, none lost),
      its stdin/stdout/stderr are the pty slave, it is in bash's session and its own group,
      and that group is the terminal's foreground; ^C typed on the terminal kills it, crest
      restore exits 130 (128 + SIGINT) and bash gets the terminal back (answers done2).
  test_shell_job_dump_needs_j
      dump without -j fails with one line that mentions --shell-job, writes no inventory, and
      leaves the job exactly as it was: still ticking, one tick after another, untraced.
  test_shell_job_reading_terminal (skipped: crest bug, see the skip)
      a job blocked in read(0), dumped and restored 5 times: each time it answers a line typed
      after the restore, and at end of file it exits 0 and so does crest restore.
  test_shell_job_restore_refused[...]
      a shell job's image restored without -j, or with -j but off any terminal: refused, with
      a line that says why (--shell-job / terminal), and no process left behind.
  test_shell_job_restore_refused_one_line (skipped: crest bug, see the skip)
      ... and the refusal is one line.

How these were seen to fail (then put back), on a copy of the source tree built on its own:
restore typed without -j (crest refuses, the job is not back); files/tty.c opening /dev/null
instead of the terminal (no tick comes back; the failure shows the fds); give_terminal()
doing nothing (the foreground check fails); the dump in test_shell_job_dump_needs_j given -j
(it succeeds); a failed dump that kills instead of resuming (the job is gone); tty_open() not
asking for -j (the refusal then names no --shell-job). The two skipped tests fail on crest as
it is (the reading job is found in state T; two error lines), and
test_shell_job_reading_terminal passed 3 runs out of 3 on a copy whose restored root takes the
terminal's foreground itself before it runs.
"""

import os
import re
import subprocess
import time

import pytest
from ptyshell import PtyShell

from crestlib import (CREST, WAIT, Call, proc_exe, proc_stat, stdio_links, tree_changes,
                      tree_details)

# The job: `job tick PIDFILE` prints "tick N" every 100 ms; `job read PIDFILE` answers each
# line it reads from stdin with "got LINE" and exits 0 at end of file.
JOB_C = r"""
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[4096];
	FILE *f;

	if (argc != 3)
		return 2;
	/* the pid file appears whole: written aside, then renamed */
	snprintf(buf, sizeof(buf), "%s.tmp", argv[2]);
	f = fopen(buf, "w");
	if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) || rename(buf, argv[2]))
		return 3;
	if (!strcmp(argv[1], "read")) {
		while (fgets(buf, sizeof(buf), stdin)) {
			printf("got %s", buf);
			fflush(stdout);
		}
		return 0;
	}
	for (unsigned long i = 0;; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		printf("tick %lu\n", i);
		fflush(stdout);
		nanosleep(&ts, NULL);	/* EINTR after restore: just the next tick a bit early */
	}
}
"""

PROMPT = "crest-shelljob$ "
TICK_WAIT = 10.0  # seconds for what the terminal should show (ticks come every 100 ms)
TICK = re.compile(r"^tick (\d+)$", re.M)


@pytest.fixture(scope="module")
def job_bin(tmp_path_factory):
    d = tmp_path_factory.mktemp("job")
    src = d / "job.c"
    src.write_text(JOB_C)
    r = subprocess.run(["gcc", "-O2", "-o", str(d / "job"), str(src)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, f"cannot build job.c:\n{r.stderr}"
    return d / "job"


class Shell(PtyShell):
    """An interactive bash on a fresh pty, with this file's prompt."""

    def __init__(self, workdir):
        super().__init__(workdir, PROMPT)


@pytest.fixture
def shell(tree, tmp_path):
    sh = Shell(tmp_path)
    tree.known.add(sh.bash.pid)
    try:
        sh.expect(re.escape(PROMPT), what="bash's first prompt")
        yield sh
    finally:
        # the tree fixture (torn down after this one) kills the job and crest restore: both
        # have tmp_path in their command lines
        sh.close()


def start_job(tree, shell, job_bin, mode="tick"):
    """Types `job MODE PIDFILE` into bash; returns the job's pid once it runs (and, ticking,
    has shown a few ticks)."""
    pidfile = tree.workdir / "job.pid"
    tree.exes.add(os.path.realpath(job_bin))
    shell.run(f"{job_bin} {mode} {pidfile}")
    if mode == "tick":
        shell.expect(r"^tick 3$", what="tick 3")
    else:
        deadline = time.monotonic() + TICK_WAIT
        while not pidfile.exists():
            if time.monotonic() > deadline:
                pytest.fail(f"the job wrote no pid file in {TICK_WAIT} s:\n{shell.tail()}")
            time.sleep(0.01)
    pid = int(pidfile.read_text())
    tree.known.add(pid)
    st = proc_stat(pid)
    assert st is not None, f"the job {pid} is not running"
    # job control: the job leads its own group, in bash's session, in the foreground
    assert st[3] == shell.bash.pid, f"the job is in session {st[3]}, not bash's {shell.bash.pid}"
    assert st[2] == pid, f"the job is in process group {st[2]}, want its own ({pid})"
    assert os.tcgetpgrp(shell.master) == pid, "the job is not the terminal's foreground"
    return pid


def describe(pid):
    """What pid is now: its state, executable and stdio."""
    st = proc_stat(pid)
    if st is None:
        return f"pid {pid} is not running"
    fds = stdio_links(pid)
    return f"pid {pid}: (state, ppid, pgid, sid) {st}, exe {proc_exe(pid)}, " + ", ".join(fds)


def ticks(text):
    return [int(n) for n in TICK.findall(text)]


def assert_consecutive(nums, what):
    for a, b in zip(nums, nums[1:]):
        assert b == a + 1, f"{what}: tick {a} is followed by tick {b}; ticks: {nums}"


def wait_gone(pid, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while proc_stat(pid) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"pid {pid} still there {timeout} s on: {proc_stat(pid)}")
        time.sleep(0.01)


def wait_foreground(shell, pgid, timeout=5.0):
    """Waits until pgid is the terminal's foreground process group."""
    deadline = time.monotonic() + timeout
    while os.tcgetpgrp(shell.master) != pgid:
        if time.monotonic() > deadline:
            pytest.fail(f"the terminal's foreground group is {os.tcgetpgrp(shell.master)}, "
                        f"want {pgid}")
        time.sleep(0.01)


def test_shell_job_restore_on_terminal(tree, shell, job_bin):
    pid = start_job(tree, shell, job_bin)
    img = tree.workdir / "img"
    tree.crest_ok("dump", "-t", pid, "-D", img, "-j")

    # the dump killed the job: bash prompts again; nothing ticks any more
    wait_gone(pid)
    shell.expect(re.escape(PROMPT), what="a prompt after the job was killed")
    before = ticks(shell.text)
    assert before, "no tick was seen before the dump"
    assert_consecutive(before, "before the dump")
    shell.pump(0.3)
    assert ticks(shell.text) == before, "ticks went on after the dump killed the job"
    last = before[-1]

    # restore, typed into the same shell
    log = tree.workdir / "restore.log"
    line = f"{CREST} restore -D {img} -j -o {log} -v4"
    tree.calls.append(Call(line.split()[1:], log))
    shell.run(line)
    shell.expect(rf"^tick {last + 3}$", what=f"tick {last + 3} after restore",
                 why=lambda: describe(pid))
    restored = ticks(shell.text)[len(before):]
    assert restored[:1] == [last + 1], \
        f"the last tick before the dump was {last}, the first after restore is " \
        f"{restored[:1]} (0 means a restart, a jump lost ticks); all ticks: {ticks(shell.text)}"
    assert_consecutive(restored, "after restore")

    st = proc_stat(pid)
    assert st is not None and proc_exe(pid) == os.path.realpath(job_bin), \
        f"pid {pid} is not tick after restore: {st}, exe {proc_exe(pid)}"
    for fd in (0, 1, 2):
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
        assert link == shell.slave_path, \
            f"the restored job's fd {fd} is {link}, want the terminal {shell.slave_path}"
    assert st[3] == shell.bash.pid, \
        f"the restored job is in session {st[3]}, want bash's {shell.bash.pid}"
    assert st[2] == pid, f"the restored job is in process group {st[2]}, want {pid}"
    wait_foreground(shell, pid)

    # ^C on the terminal goes to the foreground group: the job dies, crest restore passes
    # its fate on (128 + SIGINT) and bash takes the terminal back
    shell.send("\x03")
    wait_gone(pid)
    shell.expect(re.escape(PROMPT), what="a prompt after ^C")
    stopped = ticks(shell.text)
    shell.run("echo rc=$?; echo done$((1+1))")
    shell.expect(r"^rc=130$", what="crest restore's exit status 130 (SIGINT)")
    shell.expect(r"^done2$", what="bash's answer done2")
    shell.pump(0.3)
    assert ticks(shell.text) == stopped, "ticks went on after ^C"
    assert os.tcgetpgrp(shell.master) == shell.bash.pid, \
        "bash did not get the terminal's foreground back"


def test_shell_job_dump_needs_j(tree, shell, job_bin):
    pid = start_job(tree, shell, job_bin)
    before = tree_details([pid])
    img = tree.workdir / "img"
    call = tree.crest("dump", "-t", pid, "-D", img, log=False)  # -o would take stderr
    assert call.rc not in (0, None), "crest dumped a shell job without --shell-job"
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one line of error on stderr, got {len(lines)}:\n{call.stderr}"
    assert "--shell-job" in lines[0], f"the error does not mention --shell-job: {lines[0]}"
    assert not (img / "inventory.img").exists(), "a failed dump wrote an inventory"

    changed = tree_changes(before)
    assert not changed, "the failed dump changed the job:\n" + "\n".join(changed)
    seen = ticks(shell.text)
    shell.expect(rf"^tick {seen[-1] + 3}$", what="more ticks after the failed dump")
    assert_consecutive(ticks(shell.text), "across the failed dump")
    assert proc_stat(pid) is not None and proc_stat(pid)[3] == shell.bash.pid
    assert os.tcgetpgrp(shell.master) == pid, "the job lost the terminal's foreground"


ROUNDS = 5  # dump and restore cycles of the reading job: each can lose the race below


def test_shell_job_reading_terminal(tree, shell, job_bin):
    """A job blocked reading the terminal, restored: it must come back as the terminal's
    foreground and go on reading (its read restarts at once; if its group is not the
    foreground by then, the kernel stops it with SIGTTIN)."""
    pid = start_job(tree, shell, job_bin, mode="read")
    shell.run("line0")
    shell.expect(r"^got line0$", what="the job's answer to line0")
    img = tree.workdir / "img"
    log = tree.workdir / "restore.log"
    for n in range(1, ROUNDS + 1):
        # a dump kills the job: the first time bash prompts, later crest restore (whose
        # child it is) exits 137 (128 + SIGKILL) and then bash prompts
        tree.crest_ok("dump", "-t", pid, "-D", img, "-j")
        wait_gone(pid)
        shell.expect(re.escape(PROMPT), what=f"a prompt after dump {n}")
        if n > 1:
            shell.run("echo rc=$?")
            shell.expect(r"^rc=137$", what="crest restore's exit status 137 (SIGKILL)")
            shell.expect(re.escape(PROMPT), what="a prompt after echo")
        line = f"{CREST} restore -D {img} -j -o {log}.{n} -v4"
        tree.calls.append(Call(line.split()[1:], f"{log}.{n}"))
        shell.run(line)
        wait_foreground(shell, pid)
        shell.run(f"line{n}")
        shell.expect(rf"^got line{n}$", timeout=5, what=f"the answer to line{n} after restore {n}",
                     why=lambda: describe(pid))
        st = proc_stat(pid)
        assert st is not None and st[3] == shell.bash.pid and st[2] == pid, \
            f"after restore {n}: {describe(pid)}; want session {shell.bash.pid}, group {pid}"
        for fd in (0, 1):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            assert link == shell.slave_path, f"fd {fd} is {link}, want {shell.slave_path}"

    # end of file on the terminal: the job exits 0, and so does crest restore
    shell.send("\x04")
    wait_gone(pid)
    shell.expect(re.escape(PROMPT), what="a prompt after ^D")
    shell.run("echo rc=$?")
    shell.expect(r"^rc=0$", what="crest restore's exit status 0")


# ---- a shell job's image restored where it cannot be ----------------------------------------

REFUSALS = {
    # how crest restore is run (never on a terminal: the driver's pipes) -> a word the error
    # must contain
    "without -j": ([], "--shell-job"),
    "-j without a terminal": (["-j"], "terminal"),
}


def refused_restore(tree, shell, job_bin, how):
    """Dumps a ticking shell job with -j, then restores it off the terminal as `how` says.
    Checks that the restore fails, names the reason, and leaves no process; returns the
    error lines."""
    pid = start_job(tree, shell, job_bin)
    img = tree.workdir / "img"
    tree.crest_ok("dump", "-t", pid, "-D", img, "-j")
    wait_gone(pid)
    extra, word = REFUSALS[how]
    call = tree.crest("restore", "-D", img, *extra, log=False)  # -o would take stderr
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert call.rc not in (0, None), f"crest restore {how} succeeded"
    assert any(word in l for l in lines), f"no line of the error mentions {word}:\n{call.stderr}"
    time.sleep(0.1)
    assert proc_stat(pid) is None, f"the refused restore left pid {pid}: {describe(pid)}"
    assert os.tcgetpgrp(shell.master) == shell.bash.pid, "bash lost the terminal's foreground"
    return lines


@pytest.mark.parametrize("how", list(REFUSALS))
def test_shell_job_restore_refused(tree, shell, job_bin, how):
    refused_restore(tree, shell, job_bin, how)


@pytest.mark.parametrize("how", list(REFUSALS))
def test_shell_job_restore_refused_one_line(tree, shell, job_bin, how):
    lines = refused_restore(tree, shell, job_bin, how)
    assert len(lines) == 1, f"want one line of error, got {len(lines)}:\n" + "\n".join(lines)

"""Real Debian programs checkpointed, killed and restored: each must carry on exactly where it
stopped (numbers go on from the last one written, with no gap and no restart; state kept).

Every program is started in a session of its own (or on a pty of its own), builds up some
state, is dumped (which kills it), restored, and watched until it has gone well past the
dump. Every wait is bounded; whatever is left is killed by the finalizers.

  test_python_threads_signals
      /usr/bin/python3: three threads (named ctr0..ctr2), each incrementing its own counter
      and appending it to its own file every 50 ms; a SIGUSR1 handler that records each
      receipt with a running count; an ITIMER_REAL of 100 ms (signal.setitimer) whose SIGALRM
      handler appends a running count. After restore: four threads with their names, every
      counter goes on from where it stopped, the itimer still ticks with its 100 ms interval,
      and SIGUSR1 is handled by the Python handler, whose count goes on (1 before, 2 after).
  test_bash_job_control
      An interactive bash on a pty (its session, the pty its controlling terminal) with a
      background job (a subshell counting into bg.txt) and a foreground job (a subshell
      counting into fg.txt). bash itself is dumped with --shell-job (its terminal belongs to
      the test, which holds the master) and restored with -j -d from a process on the same
      pty. bash, both jobs and their process groups come back with the same pids; both jobs
      carry on counting; once the foreground job is ended (SIGINT to its group, what ^C would
      do), bash prompts again, answers a command, and still knows its background job (`jobs`,
      `kill %1`).
  test_bash_job_control_terminal (skipped: crest bug, see KNOWN_BUGS)
      ... and the restored bash has the pty as its controlling terminal again, with the
      foreground job as the terminal's foreground group, so ^C typed on the terminal ends it.
  test_sh_fifo_pipeline
      sh -c 'mkfifo F; (count; sleep 0.05 ...) > F & cat F >> OUT; ...' : a shell, a
      background subshell writing into a named FIFO, a cat reading it; sh (the root) is dumped
      and restored; the numbers in OUT go on increasing by one, without a restart.
  test_sh_fork_loop_dump (skipped: crest bug, see KNOWN_BUGS)
      sh -c 'while :; do /bin/true; done' dumped with -R 100 times: every dump must succeed,
      though a child may be caught exiting.
  test_python_eventfd_epoll_timerfd
      /usr/bin/python3 with a select.epoll loop over a timerfd (ctypes timerfd_create /
      timerfd_settime, 50 ms period), an os.eventfd and a pipe: each expiry of the timer writes
      the round into the eventfd, which writes it into the pipe, which writes the line. A second
      pipe and a second eventfd, outside the epoll, carry the previous round from one round to
      the next, so there is always data in flight in them at the dump. After restore the rounds
      go on by one, the carried values match, the timer still has its 50 ms period and its
      expiry count never goes back.

A dump that fails only because a child exited while the tree was being frozen is tried again
(at most 3 times; a failed dump leaves the tree running as it was). crest now saves such a
child as a zombie, so this should not happen; test_sh_fork_loop_dump checks exactly that.

Pids are compared with their start time: pid_max may be 32768, and on a busy machine a pid
that a shell's sleep had a moment ago may already be another process's.

How these were seen to fail, on a private worktree whose crest was changed and rebuilt (then
put back): itimers restored without their interval (test_python_threads_signals: no SIGALRM
after the first one after restore), eventfd counts not restored (the carry eventfd is empty
after restore), pipe data not written back (the carry pipe is empty after restore).
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ptyshell import PtyShell

from crestlib import (CREST, WAIT, Call, proc_exe, proc_stat, reap, reap_zombies,
                      stdio_links)

PYTHON = "/usr/bin/python3"
SH = "/bin/sh"
BASH = "/bin/bash"

# crest bugs found by these tests: the test is kept, and skipped with this reason


# ---- shared helpers -------------------------------------------------------------------------

def lines_of(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_until(cond, what, timeout=WAIT, why=None):
    """Polls cond() every 20 ms until it is true; fails after timeout s. what is a string or
    a function that gives one (called on failure)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            more = f"\n{why()}" if why else ""
            pytest.fail(f"{what() if callable(what) else what}: not within {timeout} s{more}")
        time.sleep(0.02)


def wait_lines(path, n, what, why=None):
    wait_until(lambda: len(lines_of(path)) >= n,
               lambda: f"{what}: {path.name} has {len(lines_of(path))} lines, want {n}",
               why=why or (lambda: "\n".join(lines_of(path)[-20:])))
    return lines_of(path)


def assert_counts_on(path, at_dump, what):
    """path holds 1, 2, 3... one a line: none missing, none repeated, across the dump."""
    nums = lines_of(path)
    for n, line in enumerate(nums, 1):
        assert line == str(n), \
            f"{what}: line {n} of {path.name} is {line!r}, want {n!r} ({at_dump} lines were " \
            f"written before the dump: a 1 means a restart, a jump means lost counts); " \
            f"lines {max(0, n - 5)}..{n + 3}: {nums[max(0, n - 6):n + 3]}"


def proc_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in "ZX"


def start_time(pid):
    """When pid started (field 22 of /proc/PID/stat), or None if there is no such process:
    with the pid, what tells a process from a later one that reuses its pid (pid_max may be
    32768, and a busy machine wraps around in minutes)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[19])


def identities(pids):
    return {pid: t for pid in pids if (t := start_time(pid)) is not None}


def wait_gone(ids, timeout=WAIT):
    """Waits until none of the processes ids names ({pid: start time}) is left, reaping
    those that are the driver's children (the driver is a subreaper)."""
    deadline = time.monotonic() + timeout
    while True:
        reap(list(ids))
        left = [p for p, t in ids.items() if start_time(p) == t]
        if not left:
            return
        if time.monotonic() > deadline:
            pytest.fail("processes still there: " + "; ".join(
                f"{p} state {proc_stat(p)} exe {proc_exe(p)}" for p in left))
        time.sleep(0.01)


def kill_pids(tree, pids):
    """SIGKILL to each of pids that still runs one of the tree's executables (and to its
    group, if it leads one), then waits until they are gone. A pid that now runs something
    else is no longer the tree's and is left alone."""
    mine = identities(p for p in pids if proc_exe(p) in tree.exes)
    for pid in mine:
        st = proc_stat(pid)
        if st is not None and st[2] == pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(mine)


def restorable(snap):
    """The processes of a snapshot that live long enough to be waited for after restore (not
    the sleeps a shell loop forks every 50 ms: one may be over before the check)."""
    return {pid: p for pid, p in snap.items()
            if not p.zombie and os.path.basename(p.exe or "") != "sleep"}


FREEZE_RACE = "exited while it was being frozen"
DUMP_TRIES = 3


def dump(tree, img, *extra):
    """crest dump of the tree into img. A dump that fails only because a process exited
    while it was being frozen (shell loops fork a sleep every 50 ms; crest now saves such a
    child as a zombie) leaves the tree running as it was, and is tried again, as a user would."""
    for attempt in range(1, DUMP_TRIES + 1):
        call = tree.crest("dump", "-t", tree.root, "-D", img, *tree.dump_opts, *extra)
        if call.rc == 0:
            return call
        log = Path(call.log).read_text(errors="replace") if call.log else ""
        if FREEZE_RACE not in log + call.stderr or attempt == DUMP_TRIES:
            pytest.fail(f"crest dump failed with exit {call.rc} (try {attempt}): "
                        f"{call.stderr.strip()}")
        shutil.rmtree(img, ignore_errors=True)


def dump_restore(tree, outputs):
    """Dumps the tree (killing it), checks nothing is written afterwards, restores it with
    -d --pidfile and waits for its long-lived processes. Returns the snapshot and the number
    of lines of each output when the tree was killed."""
    snap = tree.snapshot()
    ids = identities(snap)
    img = tree.workdir / "img"
    dump(tree, img)
    try:
        rc = tree.popen.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"root {tree.root} still running {WAIT} s after the dump")
    assert rc < 0, f"root {tree.root} exited with {rc} after the dump: it should be killed"
    wait_gone(ids)
    reap_zombies()
    at_dump = {p: len(lines_of(p)) for p in outputs}
    time.sleep(0.3)
    for p in outputs:
        assert len(lines_of(p)) == at_dump[p], f"{p.name} grew after the dump killed the tree"
    pidfile = tree.workdir / "restore.pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    tree.wait_restored(restorable(snap), pidfile=pidfile)
    return snap, at_dump


# ---- 1. python3: threads, signal handlers, an itimer ----------------------------------------

THREADS = r"""
import ctypes, os, signal, sys, threading, time
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
counters = [0, 0, 0]

def worker(k):
    libc.prctl(15, b"ctr%d" % k, 0, 0, 0)          # PR_SET_NAME
    f = open(os.path.join(d, "t%d.txt" % k), "a", buffering=1)
    while True:
        counters[k] += 1
        f.write("%d\n" % counters[k])
        time.sleep(0.05)

ev = open(os.path.join(d, "events.txt"), "a", buffering=1)
usr1 = 0
alarms = 0

def on_usr1(sig, frame):
    global usr1
    usr1 += 1
    value, interval = signal.getitimer(signal.ITIMER_REAL)
    ev.write("usr1 %d interval %.3f counters %s\n" % (usr1, interval, counters))

def on_alrm(sig, frame):
    global alarms
    alarms += 1
    ev.write("alarm %d\n" % alarms)

signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGALRM, on_alrm)
signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
for k in range(3):
    threading.Thread(target=worker, args=(k,), daemon=True).start()
ev.write("ready\n")
while True:
    signal.pause()
"""


def events(path, kind):
    return [int(m) for m in re.findall(rf"^{kind} (\d+)", path.read_text(), re.M)]


def test_python_threads_signals(tree):
    d = tree.workdir
    ev = d / "events.txt"
    counters = [d / f"t{k}.txt" for k in range(3)]
    tree.start([PYTHON, "-c", THREADS, str(d)], d / "python.log")
    pid = tree.root
    why = lambda: (d / "python.log").read_text(errors="replace")
    for f in counters:
        wait_lines(f, 5, "python before the dump", why=why)
    wait_until(lambda: len(events(ev, "alarm")) >= 3, "3 SIGALRMs before the dump", why=why)
    os.kill(pid, signal.SIGUSR1)
    wait_until(lambda: events(ev, "usr1") == [1], "the SIGUSR1 handler before the dump", why=why)
    assert len(os.listdir(f"/proc/{pid}/task")) == 4, "want 4 threads before the dump"

    snap, at_dump = dump_restore(tree, counters + [ev])
    alarms_at_dump = events(ev, "alarm")[-1]

    # the counters go on: wait for 10 more of each
    for f in counters:
        wait_lines(f, at_dump[f] + 10, "python after restore", why=why)
    # the itimer still ticks
    wait_until(lambda: events(ev, "alarm")[-1] >= alarms_at_dump + 5,
               f"5 SIGALRMs after restore (the last before the dump was alarm {alarms_at_dump})",
               why=lambda: ev.read_text())
    # SIGUSR1 is still the Python handler's
    os.kill(pid, signal.SIGUSR1)
    wait_until(lambda: events(ev, "usr1") == [1, 2], "the SIGUSR1 handler after restore",
               why=lambda: ev.read_text())
    m = re.search(r"^usr1 2 interval ([\d.]+) counters \[(\d+), (\d+), (\d+)\]$",
                  ev.read_text(), re.M)
    assert m, f"the handler's line after restore is malformed:\n{ev.read_text()}"
    names = sorted(open(f"/proc/{pid}/task/{t}/comm").read().strip()
                   for t in os.listdir(f"/proc/{pid}/task"))
    kill_pids(tree, [pid])

    for k, f in enumerate(counters):
        assert_counts_on(f, at_dump[f], f"thread {k}")
        # the handler saw the counter the thread had then (the thread may have been killed
        # between its increment and its write): the same memory the threads write
        assert int(m.group(2 + k)) in range(at_dump[f] + 10, len(lines_of(f)) + 2), \
            f"thread {k}'s counter read by the handler is {m.group(2 + k)}, its file has " \
            f"{len(lines_of(f))} lines"
    assert float(m.group(1)) == pytest.approx(0.1, abs=0.001), \
        f"ITIMER_REAL's interval after restore is {m.group(1)}, want 0.1"
    alarms = events(ev, "alarm")
    assert alarms == list(range(1, len(alarms) + 1)), \
        f"the SIGALRM count did not go on by one (last before the dump {alarms_at_dump}): " \
        f"{alarms}"
    assert names == ["ctr0", "ctr1", "ctr2", "python3"], f"thread names after restore: {names}"


# ---- 2. bash with job control on a pty ------------------------------------------------------

PROMPT = "crest-rp$ "


class Shell(PtyShell):
    """An interactive bash on a fresh pty (tests/ptyshell.py), with this file's prompt."""

    def __init__(self, workdir):
        super().__init__(workdir, PROMPT, bash=BASH)


@pytest.fixture
def shell(tree, tmp_path):
    sh = Shell(tmp_path)
    tree.root = sh.bash.pid
    tree.known.add(sh.bash.pid)
    tree.exes.add(os.path.realpath(BASH))
    try:
        sh.expect(re.escape(PROMPT), what="bash's first prompt")
        yield sh
    finally:
        # the restored bash and its jobs are not children of sh.bash: kill them by pid (the
        # tree fixture, torn down after this one, kills what is left)
        kill_pids(tree, sorted(tree.known))
        sh.close()


def loop(path):
    return f"( i=0; while :; do i=$((i+1)); echo $i >> {path}; sleep 0.05; done )"


def proc_tty(pid):
    """(tty_nr, tpgid) of pid from /proc/PID/stat."""
    data = open(f"/proc/{pid}/stat").read()
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[4]), int(fields[5])


def describe(pid):
    st = proc_stat(pid)
    if st is None:
        return f"pid {pid}: gone"
    fds = stdio_links(pid)
    return f"pid {pid}: (state, ppid, pgid, sid) {st}, (tty_nr, tpgid) {proc_tty(pid)}, " \
           f"exe {proc_exe(pid)}, " + ", ".join(fds)


def restore_on_pty(tree, shell, img):
    """crest restore -D img -j -d run from the pty (its stdin and stdout are the slave, opened
    O_NOCTTY; it leads a session of its own with no controlling terminal, so when it exits
    the terminal is free for the restored session). Returns once crest has exited 0."""
    log = tree.workdir / "restore.log"
    errfile = tree.workdir / "restore.stderr"
    pidfile = tree.workdir / "restore.pid"
    args = ["restore", "-D", str(img), "-j", "-d", "--pidfile", str(pidfile), "-o", str(log),
            "-v4"]
    call = Call(args, log)
    tree.calls.append(call)
    slave = os.open(shell.slave_path, os.O_RDWR | os.O_NOCTTY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREST_")}
    try:
        with open(errfile, "wb") as err:
            proc = subprocess.Popen([str(CREST)] + args, stdin=slave, stdout=slave, stderr=err,
                                    start_new_session=True, env=env)
    finally:
        os.close(slave)
    try:
        call.rc = proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        call.rc = "timeout"
        pytest.fail(f"crest restore did not finish in {WAIT} s")
    finally:
        call.stderr = errfile.read_text(errors="replace")
    assert call.rc == 0, f"crest restore -j -d on the pty failed with {call.rc}: {call.stderr}"
    assert pidfile.read_text().strip() == str(shell.bash.pid), "the pidfile does not name bash"


def bash_jobs_restored(tree, shell):
    """bash with a background and a foreground job, dumped with -j and restored on its pty.
    Returns (bash, bg, fg, bg.txt, fg.txt, lines of each at the dump) once both jobs have
    counted 10 more after restore."""
    d = tree.workdir
    bg_out, fg_out = d / "bg.txt", d / "fg.txt"
    bash = shell.bash.pid
    shell.run(loop(bg_out) + " &")
    bg = int(shell.expect(r"^\[1\] (\d+)$", what="the background job's pid").group(1))
    shell.expect(re.escape(PROMPT), what="a prompt after starting the background job")
    shell.run(loop(fg_out))
    wait_lines(fg_out, 5, "the foreground job before the dump")
    wait_lines(bg_out, 5, "the background job before the dump")
    fg = os.tcgetpgrp(shell.master)
    assert fg not in (bash, bg), f"the terminal's foreground group is {fg}, not a new job's"
    tree.known |= {bg, fg}
    assert proc_stat(bg)[2:] == (bg, bash), f"the background job: {describe(bg)}"
    assert proc_stat(fg)[1:] == (bash, fg, bash), f"the foreground job: {describe(fg)}"

    img = d / "img"
    ids = identities(tree.snapshot())
    dump(tree, img, "-j")
    try:
        rc = shell.bash.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bash still running {WAIT} s after the dump")
    assert rc == -signal.SIGKILL, f"bash exited {rc} after the dump, want killed"
    # the jobs' sleeps, orphaned, come to the driver (a subreaper): their pids are free only
    # once they are reaped
    wait_gone(ids)
    reap_zombies()
    at_dump = {p: len(lines_of(p)) for p in (bg_out, fg_out)}
    time.sleep(0.3)
    for p in (bg_out, fg_out):
        assert len(lines_of(p)) == at_dump[p], f"{p.name} grew after the dump"

    restore_on_pty(tree, shell, img)
    why = lambda: "\n".join(describe(p) for p in (bash, bg, fg))
    for p in (bg_out, fg_out):
        wait_lines(p, at_dump[p] + 10, f"{p.name} after restore", why=why)
    for p in (bash, bg, fg):
        assert proc_alive(p) and proc_exe(p) == os.path.realpath(BASH), \
            f"not bash after restore: {describe(p)}"
    assert proc_stat(bash)[2:] == (bash, bash), f"bash after restore: {describe(bash)}"
    assert proc_stat(bg)[1:] == (bash, bg, bash), f"the background job: {describe(bg)}"
    assert proc_stat(fg)[1:] == (bash, fg, bash), f"the foreground job: {describe(fg)}"
    for fd in (0, 1, 2):
        link = os.readlink(f"/proc/{bash}/fd/{fd}")
        assert link == shell.slave_path, f"bash's fd {fd} is {link}, want {shell.slave_path}"
    return bash, bg, fg, bg_out, fg_out, at_dump


def interrupt(send, pid, timeout=WAIT):
    """Interrupts the job pid leads until it is gone, by send() every 200 ms. More than once:
    a bash subshell whose child exits normally as SIGINT comes takes it that the child
    handled SIGINT, and goes on (bash's "wait and cooperative exit"), as it would on a ^C."""
    ids = identities([pid])
    deadline = time.monotonic() + timeout
    while ids:
        try:
            send()
        except ProcessLookupError:
            pass
        until = min(time.monotonic() + 0.2, deadline)
        while time.monotonic() < until and start_time(pid) == ids[pid]:
            time.sleep(0.01)
        if start_time(pid) != ids[pid]:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"the job {pid} is still there {timeout} s after the first SIGINT: "
                        f"{describe(pid)}")


def test_bash_job_control(tree, shell):
    bash, bg, fg, bg_out, fg_out, at_dump = bash_jobs_restored(tree, shell)
    why = lambda: "\n".join(describe(p) for p in (bash, bg, fg))

    # end the foreground job the way ^C would (test_bash_job_control_terminal types it):
    # bash, in wait4 since before the dump, reaps it and prompts
    shell.pos = len(shell.text)
    interrupt(lambda: os.killpg(fg, signal.SIGINT), fg)
    shell.expect(re.escape(PROMPT), what="a prompt once the foreground job is over", why=why)
    fg_end = len(lines_of(fg_out))
    shell.run("echo hello $((6*7)); jobs")
    shell.expect(r"^hello 42$", what="bash's answer after restore", why=why)
    shell.expect(r"^\[1\]\+\s+Running\s+\( i=0;", what="the background job in `jobs`", why=why)
    shell.expect(re.escape(PROMPT), what="a prompt after jobs")
    bg_now = len(lines_of(bg_out))
    wait_lines(bg_out, bg_now + 5, "the background job after the foreground one ended")

    # bash still controls its background job
    bg_id = identities([bg])
    shell.run("kill %1; wait; echo killed$((1+1))")
    shell.expect(r"^killed2$", what="bash's answer after kill %1", why=why)
    wait_gone(bg_id)
    bg_end = len(lines_of(bg_out))
    time.sleep(0.3)
    assert len(lines_of(bg_out)) == bg_end, "the background job counts on after kill %1"
    assert len(lines_of(fg_out)) == fg_end, "the foreground job counts on after SIGINT"
    assert proc_alive(bash), f"bash is gone: {describe(bash)}"

    assert_counts_on(bg_out, at_dump[bg_out], "the background job")
    assert_counts_on(fg_out, at_dump[fg_out], "the foreground job")


def test_bash_job_control_terminal(tree, shell):
    bash, bg, fg, bg_out, fg_out, at_dump = bash_jobs_restored(tree, shell)
    why = lambda: "\n".join(describe(p) for p in (bash, bg, fg))
    tty_nr, tpgid = proc_tty(bash)
    assert tty_nr == shell.slave_rdev, \
        f"the restored bash's controlling terminal is {tty_nr:#x}, want the pty " \
        f"{shell.slave_rdev:#x} ({shell.slave_path}): {why()}"
    assert tpgid == fg, f"the terminal's foreground group is {tpgid}, want the job {fg}"
    shell.pos = len(shell.text)
    interrupt(lambda: shell.send("\x03"), fg)
    shell.expect(re.escape(PROMPT), what="a prompt after ^C", why=why)
    shell.run("echo hello $((6*7))")
    shell.expect(r"^hello 42$", what="bash's answer after ^C", why=why)
    assert os.tcgetpgrp(shell.master) == bash, "bash did not take the terminal back"
    assert_counts_on(fg_out, at_dump[fg_out], "the foreground job")


# ---- 3. a shell pipeline through a FIFO -----------------------------------------------------

def fd_links(pid):
    links = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return links


def test_sh_fifo_pipeline(tree):
    d = tree.workdir
    fifo, out = d / "F", d / "numbers.txt"
    cmd = (f"mkfifo {fifo} || exit 9; "
           f"(i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done) > {fifo} & "
           f"cat {fifo} >> {out}; echo cat exited $?")
    tree.start([SH, "-c", cmd], d / "sh.log")
    log = lambda: (d / "sh.log").read_text(errors="replace")
    wait_lines(out, 10, "the pipeline before the dump", why=log)
    snap = tree.snapshot()
    exes = sorted(os.path.basename(p.exe) for p in restorable(snap).values())
    assert exes == ["cat", "dash", "dash"], f"want sh, its subshell and cat: {exes}"
    reader = [pid for pid, p in snap.items() if os.path.basename(p.exe or "") == "cat"][0]
    assert str(fifo) in fd_links(reader), f"cat does not read the FIFO: {fd_links(reader)}"

    snap, at_dump = dump_restore(tree, [out])
    lines = wait_lines(out, at_dump[out] + 20, "the pipeline after restore", why=log)
    assert proc_alive(tree.root) and proc_alive(reader), "sh or cat is gone after restore"
    assert str(fifo) in fd_links(reader), f"cat does not read the FIFO: {fd_links(reader)}"
    kill_pids(tree, [tree.root] + list(restorable(snap)))
    assert "cat exited" not in log(), f"cat ended: {log()}"
    assert_counts_on(out, at_dump[out], "the FIFO pipeline")
    assert len(lines) > at_dump[out]


FORK_LOOP_DUMPS = 100


def test_sh_fork_loop_dump(tree):
    """sh forking /bin/true as fast as it can, dumped with -R again and again: every dump
    must succeed (a child caught exiting is a zombie of a frozen parent)."""
    d = tree.workdir
    tree.start([SH, "-c", "while :; do /bin/true; done"], d / "sh.log")
    time.sleep(0.2)
    for n in range(1, FORK_LOOP_DUMPS + 1):
        img = d / f"img{n}"
        call = tree.crest("dump", "-t", tree.root, "-D", img, "-R", log=False)
        assert call.rc == 0, f"dump {n} of {FORK_LOOP_DUMPS} failed: {call.stderr.strip()}"
        assert proc_alive(tree.root), f"sh is gone after dump {n}"
        shutil.rmtree(img)
    kill_pids(tree, [tree.root])


# ---- 4. python3: epoll over a timerfd, an eventfd and a pipe --------------------------------

EVENTS = r"""
import ctypes, os, select, struct, sys
out = open(sys.argv[1], "a", buffering=1)
libc = ctypes.CDLL(None, use_errno=True)

class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

class itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", timespec), ("it_value", timespec)]

CLOCK_MONOTONIC, TFD_NONBLOCK, TFD_CLOEXEC = 1, os.O_NONBLOCK, os.O_CLOEXEC
tfd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
if tfd < 0:
    raise OSError(ctypes.get_errno(), "timerfd_create")
period = timespec(0, 50 * 1000 * 1000)
if libc.timerfd_settime(tfd, 0, ctypes.byref(itimerspec(period, period)), None):
    raise OSError(ctypes.get_errno(), "timerfd_settime")

def interval_ns():
    cur = itimerspec()
    if libc.timerfd_gettime(tfd, ctypes.byref(cur)):
        raise OSError(ctypes.get_errno(), "timerfd_gettime")
    return cur.it_interval.tv_sec * 10**9 + cur.it_interval.tv_nsec

efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
r, w = os.pipe()
# outside the epoll: they carry the previous round to the next, so they always hold something
carry_efd = os.eventfd(1000, os.EFD_NONBLOCK)
carry_r, carry_w = os.pipe()
os.set_blocking(carry_r, False)
os.write(carry_w, b"0\n")

ep = select.epoll()
ep.register(tfd, select.EPOLLIN)
ep.register(efd, select.EPOLLIN)
ep.register(r, select.EPOLLIN)
rnd, ticks, busy = 0, 0, False
while True:
    events = ep.poll(5)
    if not events:
        out.write("TIMEOUT\n")
        continue
    for fd, ev in events:
        if fd == tfd:
            ticks += struct.unpack("Q", os.read(tfd, 8))[0]
            if not busy:        # a round at a time: an expiry that comes during one is counted
                busy = True
                rnd += 1
                os.eventfd_write(efd, rnd)
        elif fd == efd:
            v = os.eventfd_read(efd)
            os.write(w, b"%d\n" % v)
        elif fd == r:
            v = int(os.read(r, 100))
            try:
                prev_efd = os.eventfd_read(carry_efd) - 1000
            except BlockingIOError:     # -1: it was empty
                prev_efd = -1
            try:
                prev_pipe = int(os.read(carry_r, 100))
            except BlockingIOError:
                prev_pipe = -1
            os.eventfd_write(carry_efd, 1000 + v)
            os.write(carry_w, b"%d\n" % v)
            out.write("%d %d %d %d %d\n" % (v, prev_efd, prev_pipe, ticks, interval_ns()))
            busy = False
"""


def test_python_eventfd_epoll_timerfd(tree):
    d = tree.workdir
    out = d / "events.txt"
    tree.start([PYTHON, "-c", EVENTS, str(out)], d / "python.log")
    log = lambda: (d / "python.log").read_text(errors="replace")
    wait_lines(out, 5, "the epoll loop before the dump", why=log)
    fds = {os.readlink(f"/proc/{tree.root}/fd/{fd}") for fd in os.listdir(f"/proc/{tree.root}/fd")}
    for kind in ("anon_inode:[timerfd]", "anon_inode:[eventfd]", "anon_inode:[eventpoll]"):
        assert kind in fds, f"the program holds no {kind}: {sorted(fds)}"

    snap, at_dump = dump_restore(tree, [out])
    lines = wait_lines(out, at_dump[out] + 20, "the epoll loop after restore", why=log)
    kill_pids(tree, [tree.root])

    n_at_dump = at_dump[out]
    last_ticks = 0
    for n, line in enumerate(lines, 1):
        fields = line.split()
        assert len(fields) == 5, f"line {n} is {line!r}"
        v, prev_efd, prev_pipe, ticks, interval = map(int, fields)
        where = f"line {n} {line!r} ({n_at_dump} lines were written before the dump)"
        assert v == n, f"{where}: round {v}, want {n} (a restart or lost rounds)"
        assert prev_efd == n - 1, f"{where}: the carry eventfd held {prev_efd}, want {n - 1}"
        assert prev_pipe == n - 1, f"{where}: the carry pipe held {prev_pipe}, want {n - 1}"
        assert ticks >= n and ticks >= last_ticks, \
            f"{where}: {ticks} timer expirations, after {last_ticks} (the count went back)"
        assert interval == 50 * 1000 * 1000, f"{where}: the timer's interval is {interval} ns"
        last_ticks = ticks

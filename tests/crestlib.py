"""Helpers shared by the crest test drivers: starting case programs, running crest, waiting
for restored trees, and cleaning up after them.

Every wait is bounded (WAIT seconds unless said otherwise). A Tree remembers every process it
has seen and every crest command it ran, so that a failing test can print the case's output,
crest's stderr and crest's logs, and so that its finalizer can kill whatever is left.

The driver makes itself a child subreaper (conftest.py): a tree restored with -d, or the orphans
of a killed tree, are reparented to it, so it can wait for them and reap them by pid.
"""

import ctypes
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
CREST = BUILD / "crest"
CASES_SRC = ROOT / "tests" / "cases"
CASES_BIN = BUILD / "tests" / "cases"

WAIT = 20.0  # seconds: the bound of every wait for crest or for a tree
READY_WAIT = 10.0  # seconds for a case to print "ready"
PR_SET_CHILD_SUBREAPER = 36


def make_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def case_names():
    """Every case: sources in tests/cases and binaries in build/tests/cases (a case whose
    binary is missing is listed too, and its tests fail instead of silently vanishing)."""
    names = {p.stem for p in CASES_SRC.glob("*.c")}
    if CASES_BIN.is_dir():
        names |= {p.name for p in CASES_BIN.iterdir() if p.is_file() and os.access(p, os.X_OK)}
    return sorted(names)


# ---- /proc ----------------------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, pgrp, session) of pid, or None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def stdio_links(pid):
    """Where fds 0, 1 and 2 of pid point, as "fd N -> TARGET" (or "fd N closed")."""
    fds = []
    for fd in (0, 1, 2):
        try:
            fds.append(f"fd {fd} -> {os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            fds.append(f"fd {fd} closed")
    return fds


def proc_exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def proc_threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


STATUS_KEYS = ("State", "TracerPid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")


def proc_detail(pid):
    """What dump -R, or a dump that fails, must leave exactly as it was: per thread the run
    state (stopped or not), tracer and signal sets; the mappings; the open descriptors."""
    d = {}
    try:
        d["maps"] = Path(f"/proc/{pid}/maps").read_text()
        fds = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                fds[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
        d["fds"] = fds
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            fields = {}
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in STATUS_KEYS:
                    fields[key] = value.strip()
            # running and sleeping both mean "not held": only stops and deaths count
            state = fields.get("State", "?")[:1]
            fields["State"] = "stopped" if state in "tT" else state if state in "ZX" else "live"
            d[f"thread {tid}"] = fields
    except OSError:
        d["gone"] = True
    return d


def detail_diff(pid, before, after):
    """The differences between two proc_detail() of pid, as readable lines."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if key == "maps":
            la, lb = set(a.splitlines()), set((b or "").splitlines())
            out += [f"pid {pid}: mapping gone: {l}" for l in sorted(la - lb)]
            out += [f"pid {pid}: mapping new: {l}" for l in sorted(lb - la)]
        elif key == "fds":
            for fd in sorted(set(a or {}) | set(b or {})):
                if (a or {}).get(fd) != (b or {}).get(fd):
                    out.append(f"pid {pid}: fd {fd}: {(a or {}).get(fd)} -> {(b or {}).get(fd)}")
        elif isinstance(a, dict) and isinstance(b, dict):
            out += [f"pid {pid} {key}: {k} {a.get(k)} -> {b.get(k)}"
                    for k in STATUS_KEYS if a.get(k) != b.get(k)]
        else:
            out.append(f"pid {pid}: {key}: {a} -> {b}")
    return out


def tree_details(pids, settle=2.0):
    """proc_detail() of every pid, once two readings 20 ms apart agree (a case that has just
    said "ready" may still be on its way into sigsuspend), or the last reading after settle s."""
    now = {pid: proc_detail(pid) for pid in pids}
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        time.sleep(0.02)
        again = {pid: proc_detail(pid) for pid in pids}
        if again == now:
            break
        now = again
    return now


def tree_changes(before, timeout=3.0):
    """The differences between before and the tree now, once they are gone or after timeout s:
    a thread that crest has just let go may still have to re-enter its interrupted syscall
    (sigsuspend puts its temporary mask back only then)."""
    deadline = time.monotonic() + timeout
    while True:
        changed = tree_diff(before, {pid: proc_detail(pid) for pid in before})
        if not changed or time.monotonic() > deadline:
            return changed
        time.sleep(0.02)


def tree_diff(before, after):
    out = []
    for pid in before:
        out += detail_diff(pid, before[pid], after.get(pid, {"gone": True}))
    return out


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root):
    """root and every process below it, found through the ppid of each process."""
    children = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children.setdefault(st[1], []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if proc_stat(pid) is None:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def reap(pids):
    """Reaps those of pids that are zombie children of the driver (adopted as subreaper)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def traced_threads(pid):
    """Threads of pid that are still traced (crest restore has not let them go yet)."""
    traced = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return traced
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("TracerPid:") and line.split()[1] != "0":
                        traced.append(int(tid))
        except FileNotFoundError:
            pass
    return traced


def reap_zombies():
    """Reaps every zombie child of the driver. A process the tree forked after the driver's
    snapshot is in the image too; killed by the dump, it is adopted by the driver and its pid
    stays taken until it is reaped here."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Proc:
    """What a process looked like when the tree was snapshotted."""
    pid: int
    exe: str
    nthreads: int
    zombie: bool

    def matches(self):
        st = proc_stat(self.pid)
        if st is None:
            return False
        if self.zombie:
            return st[0] == "Z"
        return st[0] not in "ZX" and proc_exe(self.pid) == self.exe \
            and proc_threads(self.pid) == self.nthreads

    def describe(self):
        st = proc_stat(self.pid)
        now = "gone" if st is None else \
            f"state {st[0]}, exe {proc_exe(self.pid)}, {proc_threads(self.pid)} threads"
        want = "a zombie" if self.zombie else f"exe {self.exe}, {self.nthreads} threads"
        return f"pid {self.pid}: {now}; want {want}"


def exit_code(status):
    """A wait status as crest reports it: the exit code, or 128+N for a death by signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# ---- a tree under test ----------------------------------------------------------------------

class Call:
    """One crest command and what came of it."""

    def __init__(self, args, log):
        self.args, self.log = args, log
        self.rc, self.stdout, self.stderr = None, "", ""

    def report(self):
        rc = "still running" if self.rc is None else self.rc
        text = f"$ crest {' '.join(self.args)}\n  exit {rc}\n"
        if self.stderr:
            text += "  stderr:\n" + "".join("    " + l + "\n" for l in self.stderr.splitlines())
        if self.log and Path(self.log).exists():
            lines = Path(self.log).read_text(errors="replace").splitlines()
            text += f"  log {self.log} (last {min(len(lines), 150)} of {len(lines)} lines):\n"
            text += "".join("    " + l + "\n" for l in lines[-150:])
        return text


# Trees not yet cleaned up: killed by the SIGTERM handler (conftest.py) if pytest is stopped.
LIVE_TREES = set()


# Dump options a case needs, as a user would give them: state crest saves only when asked.
CASE_DUMP_OPTS = {
    "flock": ["--file-locks"],
}


class Tree:
    """A process tree started by a test, dumped and restored by crest, and cleaned up after."""

    def __init__(self, workdir):
        LIVE_TREES.add(self)
        self.workdir = Path(workdir)
        self.root = None  # pid of the tree's root
        self.popen = None  # the root as started by the driver
        self.outfile = None  # the case's OUTFILE, if it is a case
        self.exes = set()  # executables the tree's processes may run (for the cleanup)
        self.known = set()  # every pid ever seen in the tree
        self.calls = []  # every crest command
        self.bg = []  # crest commands still running in the background
        self.nlog = 0
        self.dump_opts = []  # options every dump of this tree needs (CASE_DUMP_OPTS)

    # -- starting --

    def start_case(self, name, env=None):
        binary = CASES_BIN / name
        if not binary.exists():
            pytest.fail(f"{binary} is missing: run `make cases`")
        self.outfile = self.workdir / f"{name}.out"
        self.dump_opts = CASE_DUMP_OPTS.get(name, [])
        cmd = [str(binary), str(self.outfile)]
        self.start(cmd, self.outfile, env=env)
        deadline = time.monotonic() + READY_WAIT
        while "ready" not in self.output().splitlines():
            if self.popen.poll() is not None:
                pytest.fail(f"case {name} exited {self.popen.returncode} before ready")
            if time.monotonic() > deadline:
                pytest.fail(f"case {name} not ready after {READY_WAIT} s")
            time.sleep(0.01)
        self.known |= set(self.case_pids())
        return self.root

    def start(self, cmd, logfile, env=None):
        """Starts cmd in a session of its own, stdin /dev/null, stdout and stderr appended to
        logfile (a regular file, one open file description for both)."""
        with open(logfile, "ab") as out:
            self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                          start_new_session=True, env=env)
        self.root = self.popen.pid
        self.known.add(self.root)
        self.exes.add(os.path.realpath(cmd[0]))
        return self.root

    # -- looking --

    def output(self):
        if self.outfile is None:
            return ""
        try:
            return self.outfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self):
        """Where the case's output ends now: what comes after is the next check's."""
        return len(self.output())

    def case_pids(self):
        return [int(m) for m in re.findall(r"^pid (\d+)$", self.output(), re.M)]

    def snapshot(self):
        """Every live process of the tree now, by pid."""
        pids = set(descendants(self.root)) | {p for p in self.case_pids() if proc_stat(p)}
        snap = {}
        for pid in sorted(pids):
            st = proc_stat(pid)
            if st is None:
                continue
            zombie = st[0] == "Z"
            exe = proc_exe(pid)
            if exe:
                self.exes.add(exe)
            snap[pid] = Proc(pid, exe, proc_threads(pid), zombie)
        self.known |= set(snap)
        return snap

    # -- crest --

    def crest_args(self, verb, args, log):
        full = [verb] + [str(a) for a in args]
        path = None
        if log:
            self.nlog += 1
            path = self.workdir / f"crest-{self.nlog}-{verb}.log"
            full += ["-o", str(path), "-v4"]
        return full, path

    def crest(self, verb, *args, log=True, env_extra=None, timeout=WAIT):
        """Runs crest to completion; returns the Call (rc, stdout, stderr)."""
        if not CREST.exists():
            pytest.fail(f"{CREST} is missing: run `make`")
        full, path = self.crest_args(verb, args, log)
        call = Call(full, path)
        self.calls.append(call)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREST_")}
        env.update(env_extra or {})
        proc = subprocess.Popen([str(CREST)] + full, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        try:
            call.stdout, call.stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: crest may still resume its target and flush its log
            proc.terminate()
            try:
                call.stdout, call.stderr = proc.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                call.stdout, call.stderr = proc.communicate()
            call.rc = f"timeout ({proc.returncode})"
            pytest.fail(f"crest {verb} did not finish in {timeout} s")
        call.rc = proc.returncode
        return call

    def crest_ok(self, verb, *args, **kw):
        call = self.crest(verb, *args, **kw)
        if call.rc != 0:
            pytest.fail(f"crest {verb} failed with exit {call.rc}: {call.stderr.strip()}")
        return call

    def crest_bg(self, verb, *args, log=True):
        """Starts crest in the background (a restore that waits for the tree it restored)."""
        if not CREST.exists():
            pytest.fail(f"{CREST} is missing: run `make`")
        full, path = self.crest_args(verb, args, log)
        call = Call(full, path)
        self.calls.append(call)
        errfile = self.workdir / f"crest-{self.nlog}-{verb}.stderr"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREST_")}
        with open(errfile, "wb") as err:
            proc = subprocess.Popen([str(CREST)] + full, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, env=env)
        proc.call, proc.errfile = call, errfile
        self.bg.append(proc)
        return proc

    def finish_bg(self, proc, timeout=WAIT):
        """Waits for a background crest and returns its exit code."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"crest {proc.call.args[0]} still running after {timeout} s")
        finally:
            proc.call.stderr = proc.errfile.read_text(errors="replace")
        proc.call.rc = proc.returncode
        return proc.returncode

    # -- the standard steps --

    def dump(self, imgdir, *extra, **kw):
        return self.crest_ok("dump", "-t", self.root, "-D", imgdir, *self.dump_opts, *extra,
                             **kw)

    def expect_original_killed(self, snap):
        """After a dump without -R: the root the driver started was killed (by a signal: the
        case did not run its checks), and every process of the tree is gone."""
        try:
            rc = self.popen.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"root {self.root} still running {WAIT} s after the dump")
        assert rc < 0, f"root {self.root} exited with {rc} after the dump: it should be killed"
        self.wait_gone(snap)
        reap_zombies()

    def wait_gone(self, pids, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            reap(pids)
            left = [p for p in pids if proc_stat(p) is not None]
            if not left:
                return
            if time.monotonic() > deadline:
                pytest.fail("processes still there: " + "; ".join(
                    f"{p} state {proc_stat(p)}" for p in left))
            time.sleep(0.01)

    def wait_restored(self, snap, bg=None, pidfile=None, timeout=WAIT):
        """Waits until every process of snap runs again as it was (same pid, executable and
        number of threads; zombies as zombies) and, if given, pidfile names the root."""
        deadline = time.monotonic() + timeout
        while True:
            if bg is not None and bg.poll() is not None:
                self.finish_bg(bg)
                pytest.fail(f"crest restore exited {bg.returncode} before the tree was back")
            ok = all(p.matches() for p in snap.values())
            if ok and pidfile is not None:
                try:
                    ok = int(Path(pidfile).read_text().strip() or 0) == self.root
                except (FileNotFoundError, ValueError):
                    ok = False
            if ok and not any(traced_threads(pid) for pid in snap):
                # crest restore lets every thread go (detaches) as its very last step
                return
            if time.monotonic() > deadline:
                pytest.fail("tree not restored in time:\n  " + "\n  ".join(
                    p.describe() for p in snap.values() if not p.matches()))
            time.sleep(0.01)

    def terminate(self):
        """SIGTERM to the root: a case checks its state now. Returns the output mark."""
        mark = self.mark()
        os.kill(self.root, signal.SIGTERM)
        return mark

    def wait_adopted(self, pid, timeout=WAIT):
        """Exit code of pid, reparented to the driver (restored with -d); None if it turns out
        not to be the driver's child (then only its disappearance is waited for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                if proc_stat(pid) is None:
                    return None
                got = 0
            if got == pid:
                return exit_code(status)
            time.sleep(0.01)
        pytest.fail(f"pid {pid} did not exit within {timeout} s")

    def expect_pass(self, mark, what="the case"):
        new = self.output()[mark:]
        lines = new.splitlines()
        fails = [l for l in lines if l.startswith("FAIL")]
        assert not fails and "PASS" in lines, \
            f"{what} did not pass; its output since SIGTERM:\n{new}"

    # -- afterwards --

    def report(self):
        text = ""
        if self.outfile is not None:
            text += f"== case output {self.outfile}:\n{self.output()}\n"
        for call in self.calls:
            text += "== " + call.report()
        return text

    def kill_by_cmdline(self):
        mark = (str(self.workdir) + "/").encode()
        found = set()
        for pid in all_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if mark not in f.read() or pid == os.getpid():
                        continue
                os.kill(pid, signal.SIGKILL)
                found.add(pid)
            except OSError:
                pass
        return found

    def orphans(self):
        """Zombies adopted by the driver that no Popen of this tree waits for."""
        mine = {p.pid for p in self.bg + ([self.popen] if self.popen else [])
                if p.returncode is None}
        return {pid for pid in all_pids() if pid not in mine and
                (proc_stat(pid) or ("", 0))[:2] == ("Z", os.getpid())}

    def cleanup(self):
        """Kills whatever is left of the tree: known pids still running one of the tree's
        executables (or crest), the root's process group, background crest commands."""
        for proc in self.bg:
            if proc.poll() is None:
                proc.kill()
        exes = self.exes | {os.path.realpath(CREST)}
        pids = self.known | set(self.case_pids() if self.outfile else [])
        if self.root is not None:
            pids |= set(descendants(self.root))
            try:
                os.killpg(self.root, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            st = proc_stat(pid)
            if st is not None and st[0] != "Z" and proc_exe(pid) in exes:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # also any process whose command line names this tree's directory (the case's OUTFILE,
        # a program's output file): one that escaped before its pid could be recorded
        pids |= self.kill_by_cmdline()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reap(pids | self.orphans())
            for proc in self.bg + ([self.popen] if self.popen else []):
                proc.poll()
            if all(proc_stat(p) is None or proc_exe(p) not in exes and proc_stat(p)[0] != "Z"
                   for p in pids):
                break
            time.sleep(0.02)

"""The benchmark's own checks (bench/, `make bench`), kept honest: the workload must find its
memory intact after a dump and restore, and must notice when it is not, or a fast wrong restore
could look good in the benchmark; crestbench must report a failed check. Also a regression test
for a scaling bug the benchmark found: n opens of one file cost n^2/2 kcmp calls at dump.

The workload's protocol (lines on a FIFO, commands by signal) is described in bench/workload.c.
"""

import json
import os
import resource
import select
import signal
import subprocess
import time

import pytest

from crestlib import BUILD, CREST, reap_zombies

WORKLOAD = BUILD / "bench" / "workload"
CRESTBENCH = BUILD / "bench" / "crestbench"
WAIT = 20.0
PAGE = 4096


class Workload:
    """One bench/workload tree and the FIFO it answers on."""

    def __init__(self, tmp_path, *args):
        self.fifo = tmp_path / "fifo"
        os.mkfifo(self.fifo)
        # O_RDWR: never EOF while no workload process has the FIFO open
        self.fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self.buf = b""
        self.pids, self.data = {}, {}
        self.proc = subprocess.Popen([str(WORKLOAD), "--fifo", str(self.fifo), *map(str, args)])

    def lines(self, tag, count, timeout=WAIT):
        """count lines with tag (one per process), as {index: (pid, rest)}; E lines fail."""
        got, deadline = {}, time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(got)} of {count} '{tag}' lines within {timeout} s: {got}"
            if not select.select([self.fd], [], [], left)[0]:
                continue
            self.buf += os.read(self.fd, 65536)
            *complete, self.buf = self.buf.split(b"\n")
            for line in complete:
                t, idx, pid, rest = (line.decode().split(" ", 3) + [""])[:4]
                assert t != "E", f"workload setup failed: {line!r}"
                if t == tag:
                    got[int(idx)] = (int(pid), rest)
        return got

    def ready(self, procs):
        for idx, (pid, rest) in self.lines("R", procs).items():
            self.pids[idx] = pid
            self.data[idx] = int(rest.split("data=")[1], 16)

    def ask(self, sig, tag):
        for pid in self.pids.values():
            os.kill(pid, sig)
        return self.lines(tag, len(self.pids))

    def check(self):
        """The check's answer of every process: {index: "OK ..." or "FAIL ..."}."""
        return {idx: rest for idx, (_, rest) in self.ask(signal.SIGUSR2, "V").items()}

    def wait_gone(self, timeout=WAIT):
        """Until every pid is free again (a zombie still holds its pid: restore needs it)."""
        deadline = time.monotonic() + timeout
        for pid in self.pids.values():
            while os.path.exists(f"/proc/{pid}"):
                assert time.monotonic() < deadline, f"pid {pid} still exists"
                self.proc.poll()
                reap_zombies()
                time.sleep(0.005)

    def kill(self):
        for pid in self.pids.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.wait_gone()
        os.close(self.fd)


@pytest.fixture
def workload(tmp_path):
    made = []

    def start(*args, procs=1):
        w = Workload(tmp_path, "--procs", str(procs), *args)
        made.append(w)
        w.ready(procs)
        return w

    yield start
    for w in made:
        w.kill()


def crest(*args, timeout=WAIT):
    r = subprocess.run([str(CREST), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"crest {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}"
    return r


def dump_and_restore(w, images):
    crest("dump", "-t", w.pids[0], "-D", images)
    w.wait_gone()
    crest("restore", "-d", "-D", images)
    w.ask(signal.SIGUSR1, "P")


def test_restored_workload_checks_out(workload, tmp_path):
    w = workload("--kib", 2048, "--threads", 3, "--fds", 8, "--vmas", 30, "--data", "half",
                 procs=2)
    assert all(a.startswith("OK") for a in w.check().values())
    dump_and_restore(w, tmp_path / "img")
    answers = w.check()
    assert all(a.startswith("OK") for a in answers.values()), answers
    assert "pages=542 threads=3" in answers[0], answers[0]  # 512 data + 30 one-page areas


def test_check_notices_a_damaged_page(workload, tmp_path):
    """A byte changed behind the restored process's back (as a wrong restore would) fails."""
    w = workload("--kib", 1024)
    dump_and_restore(w, tmp_path / "img")
    with open(f"/proc/{w.pids[0]}/mem", "r+b", buffering=0) as mem:
        mem.seek(w.data[0] + 5 * PAGE + 100)
        byte = mem.read(1)
        mem.seek(w.data[0] + 5 * PAGE + 100)
        mem.write(bytes([byte[0] ^ 0x01]))
    answer = w.check()[0]
    assert answer.startswith("FAIL page 5 "), answer


@pytest.mark.parametrize("data", ["random", "half", "altzero"])
def test_check_notices_a_zeroed_or_moved_page(workload, data):
    """Without crest: a page of zeros, or the neighbour's contents, must fail in every pattern."""
    w = workload("--kib", 64, "--data", data)
    with open(f"/proc/{w.pids[0]}/mem", "r+b", buffering=0) as mem:
        mem.seek(w.data[0] + 2 * PAGE)
        mem.write(bytes(PAGE))              # page 2 holds data in every pattern
        mem.seek(w.data[0] + 4 * PAGE)
        page4 = mem.read(PAGE)
        mem.seek(w.data[0] + 6 * PAGE)
        mem.write(page4)
    answer = w.check()[0]
    assert answer.startswith("FAIL page 2 "), answer
    with open(f"/proc/{w.pids[0]}/mem", "r+b", buffering=0) as mem:
        mem.seek(w.data[0] + 2 * PAGE)
        mem.write(page4)                    # page 2 := page 4: the right bytes at the wrong place
    assert w.check()[0].startswith("FAIL page 2 ")


def test_many_opens_of_one_file_dump_quickly(workload, tmp_path):
    """8000 descriptors, each its own open of one file: found shared or not by a binary search
    in kcmp order (~13 calls each). The linear search made 32 million kcmp calls (4000 fds took
    25 s on the 2-CPU VM, ~5 us a call); now 8000 take about 1 s."""
    fds = 8000
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < fds + 64:
        pytest.skip(f"RLIMIT_NOFILE hard limit below {fds + 64}")
    w = workload("--kib", 64, "--fds", fds)
    t0 = time.monotonic()
    crest("dump", "-R", "-t", w.pids[0], "-D", tmp_path / "img", timeout=60)
    took = time.monotonic() - t0
    assert took < 10, f"dump of {fds} opens of one file took {took:.1f} s"
    assert w.check()[0].startswith("OK")


def run_crestbench(tmp_path, **env):
    out = tmp_path / "bench.json"
    env = dict(os.environ, BENCH_ONLY="small", BENCH_SMALL_RUNS="2", **env)
    r = subprocess.run([str(CRESTBENCH), "--json", str(out), "--dir", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=120)
    rows = json.loads(out.read_text())["rows"]
    assert [row["group"] for row in rows] == ["small"], rows
    return r, rows[0]


def test_crestbench_small_row(tmp_path):
    r, row = run_crestbench(tmp_path)
    assert r.returncode == 0, r.stderr
    assert row["verified_runs"] == 2 and not row["check_failed"], row
    assert row["median"]["dump_ms"] > 0 and row["median"]["restore_ms"] > 0, row
    assert "Small-process latency" in r.stdout, r.stdout
    assert not list(tmp_path.glob("crestbench-*")), "crestbench left its work directory"


def test_crestbench_reports_a_failed_check(tmp_path):
    r, row = run_crestbench(tmp_path, BENCH_SABOTAGE="1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert row["check_failed"] and row["verified_runs"] == 0, row
    assert "FAIL page" in row["failed"], row


def test_more_mappings_than_half_the_map_count_restore(workload, tmp_path):
    """40000 one-page mappings: premap used to keep a PROT_NONE page between areas, two
    mappings per area, and failed with ENOMEM past vm.max_map_count / 2 (about 32000)."""
    vmas = 40000
    with open("/proc/sys/vm/max_map_count") as f:
        if int(f.read()) < vmas + 1000:
            pytest.skip(f"vm.max_map_count is below {vmas + 1000}")
    w = workload("--kib", 64, "--vmas", vmas)
    images = tmp_path / "img"
    crest("dump", "-t", w.pids[0], "-D", images, timeout=60)
    w.wait_gone()
    crest("restore", "-d", "-D", images, timeout=60)
    w.ask(signal.SIGUSR1, "P")
    answer = w.check()[0]
    assert answer.startswith("OK"), answer
    with open(f"/proc/{w.pids[0]}/maps") as f:
        assert sum(1 for _ in f) > vmas, "the restored workload lost mappings"

"""Properties of the image directory that `crest dump` writes, and of restores that must refuse.

  test_image_modes            every file of an image is mode 0600 and a directory crest makes
                              is 0700, even with umask 0; a dump over an old image whose files
                              were widened to 0644 writes them 0600 again.
  test_zero_pages_not_stored  256 MiB of anonymous memory: 128 MiB never touched, 64 MiB of
                              pages written and then zeroed, 64 MiB of incompressible data:
                              the pages files hold 64 MiB to 72 MiB, and the restored program
                              finds every byte as it was.
  test_restore_pid_in_use     restore while the tree dumped with -R still runs: one line naming
                              a pid of the tree and "in use", non-zero exit, the tree untouched
                              and no new process.
  test_restore_listed_file_deleted
                              for each file the inventory lists, deleting it makes restore fail
                              with one line naming it, and leaves no process behind.
  test_dump_socket            a process holding a socket crest cannot checkpoint (an
                              established TCP connection, a unix socket with a unix socket
                              in flight that carries an fd itself, a packet socket): dump
                              fails with one line naming the pid and
                              the fd, writes no inventory, and the process runs on, untouched,
                              still counting.
  test_show_dir               `crest show DIR` is JSON whose pstree entries are exactly the
                              tree's processes (pids and parents).

How each was seen to fail (then put back), on a copy of the source tree built on its own:
  modes       img.c creating files 0644; mkdir of the directory 0755; img_create_file() doing
              O_TRUNC over the old file instead of unlink + O_EXCL (the 0644 stayed);
  zero pages  page_is_zero() always false: the pages file held 128.1 MiB; the program told to
              expect one data word different: it printed FAIL and exited 1;
  pid in use  check_pids_free() and the EEXIST message of restore_fork() both skipped: the
              line then said "clone3 with set_tid failed: File exists", no "in use";
  deleted     the ENOENT of fstatat() in check_inv_sizes() ignored: the deleted fdinfo files
              then gave two lines of error;
  socket      fdtable.c's message without "fd N"; a failed dump that kills the tree instead
              of resuming it (the process was then gone: fds, maps, state Z);
  show        the test told to want the root's pgid and sid one higher.
"""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time

import pytest

from casehelpers import (finish_case, has_word, killed_case_image, one_line_error, read_varint,
                         wait_for)
from crestlib import CASES_BIN, CREST, proc_stat, tree_changes, tree_details

MiB = 1 << 20

ZEROPAGES_C = r"""
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MB (1UL << 20)
#define UNTOUCHED (128 * MB)	/* [0, 128 MiB): never touched */
#define ZEROED (64 * MB)	/* [128, 192 MiB): each page written 1, then 0 */
#define DATA (64 * MB)		/* [192, 256 MiB): splitmix64 of the word index */

static volatile sig_atomic_t term;

static void on_term(int sig)
{
	term = 1;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31)) | 1;	/* never zero */
}

int main(int argc, char **argv)
{
	size_t len = UNTOUCHED + ZEROED + DATA, bad = 0;
	long page = sysconf(_SC_PAGESIZE);
	sigset_t set, old;
	unsigned char *p;
	uint64_t *w;

	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGTERM, on_term);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("FAIL mmap: %m\n");
		return 1;
	}
	for (size_t off = UNTOUCHED; off < UNTOUCHED + ZEROED; off += page) {
		*(volatile unsigned char *)(p + off) = 1;	/* a real page, not the zero page */
		memset(p + off, 0, page);
	}
	w = (uint64_t *)(p + UNTOUCHED + ZEROED);
	for (size_t i = 0; i < DATA / 8; i++)
		w[i] = mix(i);
	printf("map %p\nready\n", (void *)p);
	while (!term)
		sigsuspend(&old);

	for (size_t off = 0; off < UNTOUCHED + ZEROED; off++)
		if (p[off] && bad++ < 5)
			printf("FAIL byte %#zx is %#x, want 0\n", off, p[off]);
	for (size_t i = 0; i < DATA / 8; i++)
		if (w[i] != mix(i) && bad++ < 10)
			printf("FAIL data word %zu is %#llx, want %#llx\n", i,
			       (unsigned long long)w[i], (unsigned long long)mix(i));
	printf(bad ? "FAIL %zu bad\n" : "PASS\n", bad);
	return bad ? 1 : 0;
}
"""

# A process holding one socket, of a kind crest cannot checkpoint (kinds chosen to stay out of
# reach as socket support grows: an established TCP connection, a unix socket with a unix
# socket in flight that carries a file descriptor itself, a packet socket). It writes "fd N"
# (that socket), "ready", then counts (a line every 20 ms) until it is killed.
SOCKET_PY = r"""
import socket, sys, time
out = open(sys.argv[1], "a", buffering=1)
kind = sys.argv[2]
if kind == "tcp-connected":
    bad = socket.create_connection(("127.0.0.1", int(sys.argv[3])))
    keep = [bad]
elif kind == "unix-scm-nested":
    a, bad = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    socket.send_fds(d, [b"y"], [out.fileno()])
    socket.send_fds(a, [b"x"], [c.fileno()])
    a.close()  # c stays in flight in bad's receive queue, with out in flight in its own
    c.close()
    keep = [bad, d]
elif kind == "packet":
    bad = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    keep = [bad]
out.write("fd %d\n" % bad.fileno())
out.write("ready\n")
i = 0
while True:
    i += 1
    out.write("%d\n" % i)
    time.sleep(0.02)
"""


@pytest.fixture(scope="module")
def zeropages_bin(tmp_path_factory):
    d = tmp_path_factory.mktemp("zeropages")
    (d / "zeropages.c").write_text(ZEROPAGES_C)
    r = subprocess.run(["gcc", "-O2", "-o", str(d / "zeropages"), str(d / "zeropages.c")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"cannot build zeropages.c:\n{r.stderr}"
    return d / "zeropages"


def one_error_line(call, *words):
    """crest failed with an exit code (not a signal) and one line of error naming each of
    words as a whole word (one_line_error)."""
    line = one_line_error(call, *words)
    assert isinstance(call.rc, int) and call.rc > 0, f"crest {call.args[0]} exited {call.rc}"
    return line


def own_processes(exes):
    """Pids of live processes running one of exes (real paths), or crest."""
    exes = {os.path.realpath(e) for e in exes} | {os.path.realpath(CREST)}
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{name}/exe")
        except OSError:
            continue
        st = proc_stat(int(name))
        if exe in exes and st and st[0] not in "ZX":
            found.add(int(name))
    return found


# ---- modes ----------------------------------------------------------------------------

def mode_errors(img, want_dir=True):
    bad = []
    if want_dir and stat.S_IMODE(img.stat().st_mode) != 0o700:
        bad.append(f"{img}: mode {stat.S_IMODE(img.stat().st_mode):04o}, want 0700")
    for name in sorted(os.listdir(img)):
        st = (img / name).lstat()
        if not stat.S_ISREG(st.st_mode):
            bad.append(f"{name}: not a regular file")
        elif stat.S_IMODE(st.st_mode) != 0o600:
            bad.append(f"{name}: mode {stat.S_IMODE(st.st_mode):04o}, want 0600")
    return bad


def test_image_modes(tree):
    tree.start_case("tree")
    img = tree.workdir / "img"
    old = os.umask(0)  # crest must not rely on the caller's umask
    try:
        tree.dump(img, "-R")
        names = sorted(os.listdir(img))
        assert "inventory.img" in names and len(names) > 2, f"a thin image: {names}"
        bad = mode_errors(img)
        assert not bad, "after a dump with umask 0:\n" + "\n".join(bad)

        # an old image widened by someone: the next dump makes fresh files, 0600 again
        for name in names:
            os.chmod(img / name, 0o644)
        tree.dump(img, "-R")
    finally:
        os.umask(old)
    bad = mode_errors(img, want_dir=False)
    assert not bad, "after a second dump over files made 0644:\n" + "\n".join(bad)
    assert sorted(os.listdir(img)) == names, "the second dump wrote other files"
    finish_case(tree)


# ---- zero pages -------------------------------------------------------------------------

def test_zero_pages_not_stored(tree, zeropages_bin):
    out = tree.workdir / "zeropages.out"
    tree.outfile = out
    tree.start([str(zeropages_bin)], out)
    wait_for(lambda: "ready" in tree.output().splitlines() or tree.popen.poll() is not None,
             "zeropages ready")
    assert tree.popen.poll() is None, f"zeropages exited {tree.popen.returncode}:\n" \
                                      f"{tree.output()}"
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)

    pages = {n: (img / n).stat().st_size for n in os.listdir(img)
             if re.fullmatch(r"pages-.*\.img", n)}
    total = sum(pages.values())
    assert 64 * MiB <= total <= 72 * MiB, \
        f"the pages files hold {total / MiB:.1f} MiB ({pages}); want 64 to 72 MiB: 64 MiB of " \
        f"data, and neither the 128 MiB never touched nor the 64 MiB of zeroed pages"

    tree.crest_ok("restore", "-D", img, "-d")
    tree.wait_restored(snap)
    mark = tree.terminate()
    rc = tree.wait_adopted(tree.root)
    new = tree.output()[mark:]
    assert rc == 0 and "PASS" in new.splitlines(), \
        f"the restored program exited {rc}; it says:\n{new}"


# ---- pid in use -------------------------------------------------------------------------

def test_restore_pid_in_use(tree):
    tree.start_case("tree")
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img, "-R")
    before = tree_details(snap)
    procs = own_processes([CASES_BIN / "tree"])
    assert set(snap) - {p for p in snap if snap[p].zombie} <= procs

    call = tree.crest("restore", "-D", img, log=False)
    line = one_error_line(call)
    assert "in use" in line, f"the error does not say 'in use': {line}"
    named = [int(n) for n in re.findall(r"\d+", line) if int(n) in snap]
    assert named, f"the error names no pid of the tree {sorted(snap)}: {line}"

    changed = tree_changes(before)
    assert not changed, "the refused restore changed the running tree:\n" + "\n".join(changed)
    time.sleep(0.1)
    extra = own_processes([CASES_BIN / "tree"]) - procs
    assert not extra, f"the refused restore left new processes: {sorted(extra)}"
    finish_case(tree)


# ---- a listed file deleted ----------------------------------------------------------

@pytest.fixture(scope="module")
def killed_tree_image(tmp_path_factory):
    """An image of the tree case (killed by the dump), its root, and (ppid, pgid, sid) of each
    of its processes at the dump."""
    return killed_case_image(tmp_path_factory, "treeimg", "tree",
                             lambda snap: {pid: proc_stat(pid)[1:] for pid in snap})


def fields(msg):
    """(number, wire type, value) of each field of a protobuf message; value is the bytes of
    a length-delimited field, the integer of a varint."""
    pos = 0
    while pos < len(msg):
        key, pos = read_varint(msg, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(msg, pos)
        elif wire == 2:
            n, pos = read_varint(msg, pos)
            value, pos = msg[pos:pos + n], pos + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, pos = msg[pos:pos + n], pos + n
        else:
            raise ValueError(f"wire type {wire}")
        yield num, wire, value


def listed_files(img):
    """The names inventory.img lists (inventory.files[].name), read without crest: u32 magic,
    then one length-prefixed message (the prefix a u32 or a varint, whichever fits)."""
    data = (img / "inventory.img").read_bytes()[4:]
    if len(data) >= 4 and int.from_bytes(data[:4], "little") == len(data) - 4:
        msg = data[4:]
    else:
        n, pos = read_varint(data, 0)
        assert pos + n == len(data), "cannot tell how inventory.img frames its record"
        msg = data[pos:]
    names = []
    for num, wire, value in fields(msg):
        if num == 3 and wire == 2:
            names += [v.decode() for n, w, v in fields(value) if n == 1 and w == 2]
    return sorted(names)


def test_restore_listed_file_deleted(tree, killed_tree_image):
    src, root, ids = killed_tree_image
    on_disk = sorted(n for n in os.listdir(src) if n != "inventory.img")
    listed = listed_files(src)
    assert listed == on_disk, f"the inventory lists {listed}; the directory holds {on_disk}"
    tree.root = root
    tree.known |= set(ids)
    tree.exes.add(os.path.realpath(CASES_BIN / "tree"))
    problems = []
    for name in listed:
        img = tree.workdir / f"img-{name}"
        shutil.copytree(src, img)
        os.unlink(img / name)
        call = tree.crest("restore", "-D", img, log=False, timeout=10)
        lines = [l for l in call.stderr.splitlines() if l.strip()]
        if call.rc in (0, None):
            problems.append(f"{name} deleted: restore succeeded")
        elif len(lines) != 1:
            problems.append(f"{name} deleted: {len(lines)} lines of error: {call.stderr!r}")
        elif not has_word(lines[0], name):
            problems.append(f"{name} deleted: the error does not name it: {lines[0]}")
        wait_for(lambda: all(proc_stat(p) is None for p in ids),
                 f"processes of the image gone after the restore without {name}", timeout=5)
    assert not problems, "\n".join(problems)


# ---- sockets ------------------------------------------------------------------------

def count_lines(path):
    return [l for l in path.read_text().splitlines() if l.isdigit()]


@pytest.mark.parametrize("kind", ["tcp-connected", "unix-scm-nested", "packet"])
def test_dump_socket(tree, kind):
    out = tree.workdir / "sock.out"
    tree.outfile = out
    listener = socket.create_server(("127.0.0.1", 0))  # the far end of tcp-connected
    try:
        port = listener.getsockname()[1]
        tree.start([sys.executable, "-c", SOCKET_PY, str(out), kind, str(port)],
                   tree.workdir / "python.log")
        wait_for(lambda: "ready" in tree.output().splitlines() or tree.popen.poll() is not None,
                 "the socket program ready")
        assert tree.popen.poll() is None, f"the socket program exited:\n{tree.output()}\n" \
            f"{(tree.workdir / 'python.log').read_text()}"
        fd = int(re.search(r"^fd (\d+)$", tree.output(), re.M).group(1))
        pid = tree.root
        before = tree_details([pid])
        img = tree.workdir / "img"
        call = tree.crest("dump", "-t", pid, "-D", img, log=False)  # -o would take stderr
        line = one_error_line(call, pid)
        assert re.search(rf"\b(fd|descriptor)\s*#?{fd}\b", line), \
            f"the error does not name fd {fd}: {line}"
        assert not (img / "inventory.img").exists(), "a failed dump wrote an inventory"
        changed = tree_changes(before)
        assert not changed, "the failed dump changed the process:\n" + "\n".join(changed)
        n = len(count_lines(out))
        wait_for(lambda: len(count_lines(out)) >= n + 5, "the socket program counting on",
                 timeout=5)
        nums = [int(x) for x in count_lines(out)]
        assert nums == list(range(1, len(nums) + 1)), f"the count restarted or skipped: {nums}"
        assert tree.popen.poll() is None
    finally:
        listener.close()


# ---- show ---------------------------------------------------------------------------

def pstree_entries(obj):
    """Every dict anywhere in the document with pid, ppid, pgid and sid: a pstree entry."""
    if isinstance(obj, dict):
        if {"pid", "ppid", "pgid", "sid"} <= set(obj):
            yield obj
        for v in obj.values():
            yield from pstree_entries(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from pstree_entries(v)


def test_show_dir(tree, killed_tree_image):
    img, root, ids = killed_tree_image
    call = tree.crest_ok("show", img, log=False)
    try:
        doc = json.loads(call.stdout)
    except ValueError as e:
        pytest.fail(f"crest show {img} is not JSON: {e}\n{call.stdout[:2000]}")
    entries = list(pstree_entries(doc))
    pids = sorted(int(e["pid"]) for e in entries)
    assert pids == sorted(ids), \
        f"crest show gives pstree pids {pids}, the dumped tree was {sorted(ids)}"
    for e in entries:
        pid = int(e["pid"])
        got = tuple(int(e[k]) for k in ("ppid", "pgid", "sid"))
        want = ids[pid]
        if pid == root:  # the root's parent is outside the tree: crest writes 0 for it
            got, want = got[1:], want[1:]
        assert got == want, f"pid {pid}: crest show gives (ppid, pgid, sid) {got}, want {want}"

"""crest refuses what it cannot do, says why in one line, and harms nothing.

  - dump of a pid that does not exist;
  - dump of a tree with a process traced by someone else: the tree runs on untouched;
  - restore of an empty directory, of an image without its inventory, with a file missing,
    truncated or with a flipped byte, or of an inventory claiming format version 99: each is
    refused with a line naming the file, and no process is left behind;
  - fault injection (CREST_FAIL_AT=stage) at every stage of a dump, for every case: the dump
    fails, the tree is exactly as before (threads, stops, tracer, signals, mappings, fds), no
    inventory is written, and the case still passes its checks afterwards.
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest

from casehelpers import finish_case, killed_case_image, one_line_error, read_varint
from crestlib import CASES_BIN, CREST, WAIT, case_names, proc_stat, tree_changes, tree_details

STAGES = ["freeze", "collect", "pages", "files", "finish"]
INVENTORY_MAGIC = 0x43524901


def free_pid():
    """A pid that no process has: that of a child that has exited and been reaped."""
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    assert proc_stat(p.pid) is None
    return p.pid


def test_dump_missing_pid(tree):
    pid = free_pid()
    call = tree.crest("dump", "-t", pid, "-D", tree.workdir / "img", log=False)
    one_line_error(call, pid)
    assert not (tree.workdir / "img" / "inventory.img").exists()


# A tracer: seizes the pid it is given (PTRACE_SEIZE does not stop it), says so, and holds on
# until its stdin is closed; when it exits, the kernel detaches it.
TRACER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:
    print("ptrace failed: errno", ctypes.get_errno(), flush=True)
    sys.exit(1)
print("attached", flush=True)
sys.stdin.read()
"""


def tracer_pid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return None


@pytest.mark.parametrize("case,which", [("sighandlers", "root"), ("tree", "child")])
def test_dump_traced(tree, case, which):
    root = tree.start_case(case)
    snap = tree.snapshot()
    target = root if which == "root" else \
        next(p for p in sorted(snap) if p != root and not snap[p].zombie)
    tracer = subprocess.Popen([sys.executable, "-c", TRACER, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        line = tracer.stdout.readline().strip()
        assert line == "attached", f"the test's tracer could not attach: {line}"
        before = tree_details(snap)
        call = tree.crest("dump", "-t", root, "-D", tree.workdir / "img", log=False)
        assert call.rc not in (0, None), "crest dumped a tree with a process traced by another"
        changed = tree_changes(before)
        assert not changed, "the failed dump changed the tree:\n" + "\n".join(changed)
        assert tracer_pid(target) == tracer.pid, "the other tracer lost its tracee"
        assert not (tree.workdir / "img" / "inventory.img").exists()
        one_line_error(call, target)
    finally:
        tracer.stdin.close()
        tracer.wait(timeout=WAIT)
    finish_case(tree)


# ---- restore of bad images ----------------------------------------------------------------

@pytest.fixture(scope="module")
def good_image(tmp_path_factory):
    """An image of the files case (a parent and a child, killed by the dump), and its pids."""
    return killed_case_image(tmp_path_factory, "good", "files")


def varint(value):
    out = bytearray()
    while True:
        b = value & 0x7f
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def set_varint_field(msg, field, value):
    """A protobuf message with (varint) field number `field` set to value; other fields are
    copied as they are."""
    out, pos, found = bytearray(), 0, False
    while pos < len(msg):
        start = pos
        key, pos = read_varint(msg, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = read_varint(msg, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = read_varint(msg, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} in the inventory")
        if num == field and wire == 0:
            out += varint(key) + varint(value)
            found = True
        else:
            out += msg[start:pos]
    assert found, f"the inventory has no field {field}"
    return bytes(out)


def patch_inventory_version(path, version):
    """inventory.img: u32 magic, then one length-prefixed `inventory` message. The prefix is
    taken to be a u32, or else a varint, whichever accounts for the whole file."""
    data = path.read_bytes()
    magic, = struct.unpack_from("<I", data)
    assert magic == INVENTORY_MAGIC, f"inventory magic {magic:#x}"
    body = data[4:]
    if len(body) >= 4 and struct.unpack_from("<I", body)[0] == len(body) - 4:
        msg = set_varint_field(body[4:], 1, version)
        path.write_bytes(data[:4] + struct.pack("<I", len(msg)) + msg)
        return
    length, pos = read_varint(body, 0)
    assert pos + length == len(body), "cannot tell how inventory.img frames its record"
    msg = set_varint_field(body[pos:], 1, version)
    path.write_bytes(data[:4] + varint(len(msg)) + msg)


def image_file(img, pattern, root):
    """The image file matching pattern (with {root} the root pid): the largest if several."""
    names = sorted(os.listdir(img))
    rx = re.compile(pattern.format(root=root) + r"$")
    match = [n for n in names if rx.match(n)]
    assert match, f"the image has no file matching {pattern.format(root=root)}: {names}"
    return max(match, key=lambda n: (img / n).stat().st_size)


def tamper_no_inventory(img, root):
    os.unlink(img / "inventory.img")
    return "inventory.img"


def tamper_missing_file(img, root):
    name = image_file(img, r"mm-{root}\.img", root)
    os.unlink(img / name)
    return name


def tamper_truncated_pages(img, root):
    name = image_file(img, r"pages-\d+\.img", root)
    size = (img / name).stat().st_size
    assert size > 0, f"{name} is empty"
    os.truncate(img / name, size // 2 if size < 8192 else size - 4096)
    return name


def tamper_flipped_byte(img, root):
    name = image_file(img, r"core-{root}\.img", root)
    data = bytearray((img / name).read_bytes())
    data[len(data) // 2] ^= 0x10
    (img / name).write_bytes(bytes(data))
    return name


def tamper_version_99(img, root):
    patch_inventory_version(img / "inventory.img", 99)
    return "inventory.img"


TAMPER = {
    "no_inventory": tamper_no_inventory,
    "missing_file": tamper_missing_file,
    "truncated_pages": tamper_truncated_pages,
    "flipped_byte": tamper_flipped_byte,
    "format_version_99": tamper_version_99,
}


def leftovers(pids):
    """Processes left behind by a failed restore: the image's pids, or anything running
    crest or a case program that is a child of the driver."""
    found = [p for p in pids if proc_stat(p) is not None]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        st = proc_stat(int(pid))
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if st and st[1] == os.getpid() and (exe == os.path.realpath(CREST) or
                                             exe.startswith(os.path.realpath(CASES_BIN))):
            found.append(int(pid))
    return found


def test_restore_empty_dir(tree):
    img = tree.workdir / "empty"
    img.mkdir()
    call = tree.crest("restore", "-D", img, log=False)
    one_line_error(call, "inventory.img")
    time.sleep(0.2)
    left = leftovers([])
    assert not left, f"a refused restore left processes behind: {left}"


@pytest.mark.parametrize("damage", list(TAMPER))
def test_restore_refuses_bad_image(tree, good_image, damage):
    src, root, pids = good_image
    img = tree.workdir / "img"
    shutil.copytree(src, img)
    name = TAMPER[damage](img, root)
    tree.root = root
    tree.known |= set(pids)
    call = tree.crest("restore", "-D", img, log=False)
    one_line_error(call, name)
    deadline = time.monotonic() + 2
    while leftovers(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = leftovers(pids)
    for pid in left:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    assert not left, f"a refused restore left processes behind: {left}"


@pytest.fixture(scope="module")
def lone_image(tmp_path_factory):
    """An image of a single process with megabytes of data (the madvise case): with fewer
    processes than CPUs, restore checks its pages on a thread of crest's, not as it reads."""
    return killed_case_image(tmp_path_factory, "lone", "madvise")


def test_restore_refuses_damaged_pages_of_a_lone_process(tree, lone_image):
    src, root, pids = lone_image
    img = tree.workdir / "img"
    shutil.copytree(src, img)
    name = image_file(img, r"pages-{root}\.img", root)
    data = bytearray((img / name).read_bytes())
    data[len(data) // 2] ^= 0x10
    (img / name).write_bytes(bytes(data))
    tree.root = root
    tree.known |= set(pids)
    call = tree.crest("restore", "-D", img, log=False)
    one_line_error(call, name)
    deadline = time.monotonic() + 2
    while leftovers(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftovers(pids), "a refused restore left processes behind"


# ---- fault injection --------------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("case", case_names())
def test_dump_fault_injection(tree, case, stage):
    root = tree.start_case(case)
    snap = tree.snapshot()
    before = tree_details(snap)
    img = tree.workdir / "img"
    call = tree.crest("dump", "-t", root, "-D", img, *tree.dump_opts,
                      env_extra={"CREST_FAIL_AT": stage})
    assert call.rc != 0, f"crest dump with CREST_FAIL_AT={stage} succeeded"
    assert call.rc > 0, f"crest dump was killed by signal {-call.rc}"
    changed = tree_changes(before)
    assert not changed, f"the dump that failed at {stage} changed the tree:\n" + "\n".join(changed)
    assert not (img / "inventory.img").exists(), "a failed dump wrote an inventory"
    finish_case(tree)
    tree.wait_gone(snap)


"""crest dump --compress: page data in independent zstd chunks, read back by restore and show.

Each case below is dumped with --compress and restored; it must pass as uncompressed. The
pagemap header must say so, the chunk headers must chain to the end of every pages file, and
compressible memory must take less room than its data. A damaged compressed file is refused
with the file named, like any other.
"""

import json
import subprocess

import pytest

from crestlib import CREST
from test_cases import restore_and_check

# Private memory, shared anonymous memory, memfd, threads, huge-page filled areas.
CASES = ["memory", "memfd", "threads", "madvise"]


def show(path):
    out = subprocess.run([str(CREST), "show", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"crest show {path}: {out.stderr}"
    return json.loads(out.stdout)


def pages_files(imgdir):
    return sorted(p for p in imgdir.iterdir() if p.name.startswith("pages-")
                  and (imgdir / p.name.replace("pages-", "pagemap-", 1)).exists())


@pytest.mark.parametrize("case", CASES)
def test_compressed_case_restores(tree, case):
    tree.start_case(case)
    snap = tree.snapshot()
    d1 = tree.workdir / "d1"
    tree.dump(d1, "--compress")
    tree.expect_original_killed(snap)
    files = pages_files(d1)
    assert files, f"no pages files in {d1}"
    for pages in files:
        head = show(pages.with_name(pages.name.replace("pages-", "pagemap-", 1)))[0]
        assert head.get("format") == "PAGES_ZSTD_CHUNKS", f"{pages.name}: header {head}"
        info = show(pages)
        if info["size"]:
            assert info.get("format") == "zstd-chunks", f"{pages.name}: {info}"
    restore_and_check(tree, snap, d1)


def test_compressible_memory_shrinks(tree):
    """The madvise case fills its regions with a regular pattern: zstd must shrink it a lot."""
    tree.start_case("madvise")
    snap = tree.snapshot()
    plain, packed = tree.workdir / "plain", tree.workdir / "packed"
    tree.dump(plain, "-R")
    tree.dump(packed, "--compress")
    tree.expect_original_killed(snap)
    raw = sum(p.stat().st_size for p in pages_files(plain))
    small = sum(p.stat().st_size for p in pages_files(packed))
    data = sum(show(p).get("data_size", 0) for p in pages_files(packed))
    assert data == raw, f"compressed files hold {data} bytes of data, the plain ones {raw}"
    assert small * 4 < raw, f"compressed {small} bytes against {raw}: not compressed"
    restore_and_check(tree, snap, packed)


def test_damaged_compressed_pages_refused(tree):
    tree.start_case("memory")
    snap = tree.snapshot()
    d1 = tree.workdir / "d1"
    tree.dump(d1, "--compress")
    tree.expect_original_killed(snap)
    victim = max(pages_files(d1), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    call = tree.crest("restore", "-D", d1, "-d", log=False)
    assert call.rc != 0, "a damaged compressed pages file was restored"
    assert victim.name in call.stderr, f"the error does not name {victim.name}: {call.stderr}"
    for pid in snap:
        tree.wait_gone([pid])

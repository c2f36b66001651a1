"""Real programs checkpointed, killed and restored: they must carry on where they were.

  python   /usr/bin/python3 running a loop that keeps its state in variables (a counter, a
           dict and a running total) and writes a line every 50 ms: after restore the lines go
           on from the last one, with no gap, no restart, and consistent state.
  pipeline sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | cat | cat >> OUT':
           a shell, a subshell, two cats, pipes between them and a sleep forked every 50 ms;
           after restore the numbers in OUT go on increasing by one from where they were.
"""

from casehelpers import dump_restore, kill_tree, python_loop_across_restore, wait_lines

LOOP = r"""
import sys, time
out = open(sys.argv[1], "a", buffering=1)
i = 0
squares = {}
total = 0
while True:
    i += 1
    squares[i] = i * i
    total += i * i
    out.write("%d %d %d\n" % (i, len(squares), total))
    time.sleep(0.05)
"""


def test_python_loop(tree):
    lines, at_dump = python_loop_across_restore(tree, LOOP)
    total = 0
    for n, line in enumerate(lines, 1):
        total += n * n
        want = f"{n} {n} {total}"
        assert line == want, f"line {n} is {line!r}, want {want!r} " \
                             f"({at_dump} lines were written before the dump)"


def test_shell_pipeline(tree):
    out = tree.workdir / "numbers.txt"
    cmd = f"i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | cat | cat >> {out}"
    tree.start(["/bin/sh", "-c", cmd], tree.workdir / "sh.log")
    wait_lines(out, 10, "the pipeline before the dump")
    snap, at_dump = dump_restore(tree, out)
    lines = wait_lines(out, at_dump + 20, "the pipeline after restore")
    kill_tree(tree, snap)

    for n, line in enumerate(lines, 1):
        assert line == str(n), f"line {n} is {line!r}, want {n!r} ({at_dump} lines were " \
            "written before the dump: a 1 means a restart, a jump means lost pipe data)"

"""``python -m finetune toy`` runs itself again with jemalloc preloaded (finetune/allocator.py)."""

import subprocess
import sys
from pathlib import Path

from finetune.allocator import jemalloc_environment

REPO = Path(__file__).resolve().parents[2]


def test_the_environment_preloads_jemalloc_before_what_was_preloaded():
    assert jemalloc_environment({"PATH": "/bin"}, "libjemalloc.so.2") == {"PATH": "/bin",
                                                                          "LD_PRELOAD": "libjemalloc.so.2"}
    assert jemalloc_environment({"LD_PRELOAD": "libfoo.so"}, "libjemalloc.so.2")["LD_PRELOAD"] == \
        "libjemalloc.so.2:libfoo.so"


def test_no_run_again_without_jemalloc_or_with_it_preloaded_already():
    assert jemalloc_environment({"PATH": "/bin"}, None) is None
    assert jemalloc_environment({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "libjemalloc.so.2") \
        is None


def test_a_command_runs_again_once_with_jemalloc_mapped_and_its_arguments_kept():
    """Debian's libjemalloc2 comes with redis-server, which scripts/install_services.sh installs."""
    script = ("import sys; from finetune.allocator import rerun_with_jemalloc; print('run'); rerun_with_jemalloc(); "
              "print(sys.argv[1:], 'libjemalloc' in open('/proc/self/maps').read())")
    done = subprocess.run([sys.executable, "-c", script, "--out", "x y"], capture_output=True, text=True, cwd=REPO,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["run", "run", "['--out', 'x y'] True"], (done.stdout, done.stderr)

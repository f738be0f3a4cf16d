import subprocess
import sys
from pathlib import Path

import pytest

from decay_model.memory import _glibc

FREE_HALF = """
import sys
import numpy as np
from decay_model.memory import map_large_blocks
if sys.argv[1] == "fixed":
    assert map_large_blocks()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
x = np.ones(1 << 19)
del x  # a mapped block freed: glibc raises its threshold above this size
blocks = [np.ones(1 << 19) for _ in range(64)]  # 64 blocks of 4 MiB
before = rss()
del blocks[::2]
print((before - rss()) / 2**20)
"""


@pytest.mark.skipif(
    _glibc("mallopt") is None or not Path("/proc/self/statm").exists(), reason="needs glibc and /proc"
)
def test_with_large_blocks_mapped_freeing_them_returns_their_memory():
    returned = {}
    for mode in ("dynamic", "fixed"):
        run = subprocess.run(
            [sys.executable, "-c", FREE_HALF, mode], capture_output=True, text=True, check=True
        )
        returned[mode] = float(run.stdout)
    assert returned["fixed"] >= 120  # the 32 freed blocks of 4 MiB
    assert returned["dynamic"] < 60  # glibc's own threshold keeps them in the heap

"""Suite-wide settings: no network, deterministic threads."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): one test process per core, at most 4.

    The suite is mostly single-threaded Python (model building, subprocess start-up, media encoding), so on the
    2-core development machine two processes take it from about 16 to under 10 minutes. Its heaviest tests start
    processes of their own (2-rank FSDP2 runs, DataLoader workers, a served model): more than 4 at once would
    mostly wait on each other and add memory.
    """
    return max(1, min(os.cpu_count() or 1, 4))

"""How every kernel process is configured: its options and its environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from ploomber_like.capture.protocol import KERNEL_LOG_VARIABLE

#: Every kernel runs without IPython's history database: parallel kernels would all write
#: to the same file in the user's profile, for nothing we keep.
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)

#: The address kernels listen on over TCP, and clients connect to, named: left unset,
#: jupyter_client finds the loopback address by listing the machine's network interfaces
#: (importing psutil, ~10 ms, and a scan) in every kernel and client process.
LOOPBACK = "127.0.0.1"


#: Variables that size the thread pools of OpenMP, OpenBLAS, MKL, Accelerate and numexpr.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def kernel_environment(log_file: Path | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment of a kernel process (or template): inline figures, its log, thread limits.

    ``threads`` caps the numerical libraries' thread pools, as joblib does for its workers:
    several kernels at once each spinning one thread per core would fight over the cores. A
    limit the user set in the environment is kept.
    """
    env = dict(os.environ)
    if log_file is not None:
        env[KERNEL_LOG_VARIABLE] = str(log_file)
    if threads is not None:
        for variable in THREAD_VARIABLES:
            env.setdefault(variable, str(threads))
    # Figures come back as images; a user's explicit backend still wins inside the script.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env

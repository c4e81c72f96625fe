"""The pool of ready kernels: what it does while a kernel starts, and what a failure leaves."""

from __future__ import annotations

import asyncio
import os

import pytest
from conftest import wait_for

from ploomber_like.kernels import KernelPool, KernelTemplate

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="templates need fork()"),
]


def test_work_done_while_a_kernel_starts_runs_beside_it_and_a_failure_of_it_leaves_no_kernel(
    tmp_path,
):
    calls = []

    def failing() -> None:
        calls.append("called")
        raise RuntimeError("the run's client cannot be imported")

    async def acquire_and_close() -> KernelTemplate:
        pool = KernelPool(tmp_path, preload=[], while_starting=failing)
        try:
            with pytest.raises(RuntimeError, match="cannot be imported"):
                await pool.acquire(still_needed=0)
            template = pool.factory
            assert isinstance(template, KernelTemplate)
            # The kernel forked meanwhile was killed, not left to run without a client.
            wait_for(lambda: template.running_kernels() == 0, timeout=30, what="the kernel's end")
        finally:
            await pool.close()
        return template

    template = asyncio.run(acquire_and_close())
    assert calls == ["called"]
    assert not template.is_alive()

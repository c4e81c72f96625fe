"""The pool of ready kernels: what it does while a kernel starts, and what a failure leaves."""

from __future__ import annotations

import asyncio
import os

import pytest
from conftest import wait_for

from ploomber_like.capture.protocol import HOOK_NAME
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


async def _ask(client, expression: str) -> str:
    """What ``expression`` evaluates to in the kernel of ``client``, as its repr."""
    reply = await client.execute_interactive(
        "", silent=True, store_history=False, user_expressions={"e": expression}, timeout=60
    )
    return reply["content"]["user_expressions"]["e"]["data"]["text/plain"]


def test_a_forked_kernel_answers_with_the_capture_installed_for_its_script(tmp_path):
    first, second = (tmp_path / "first.py", tmp_path / "second.py")
    for script in (first, second):
        script.write_text("x = 1\n")
    installed = f"hasattr(__import__('builtins'), {HOOK_NAME!r})"

    async def kernels_of(template: KernelTemplate) -> list[tuple[str, str, str]]:
        seen = []
        # A spare forked for one script is not handed to a run of another.
        template.prepare_spare(str(first))
        for script in (first, second, None):
            pool = KernelPool(
                tmp_path, preload=[], ahead=0, shared=lambda: template,
                script_path=None if script is None else str(script),
            )
            try:
                kernel = await pool.acquire(still_needed=0)
                try:
                    seen.append((
                        kernel.capture_installed_for,
                        await _ask(kernel.client, installed),
                        await _ask(kernel.client, "globals().get('__file__')"),
                    ))
                finally:
                    kernel.shutdown()
            finally:
                await pool.close()
        return seen

    template = KernelTemplate(tmp_path, tmp_path, preload=[])
    try:
        seen = asyncio.run(kernels_of(template))
    finally:
        template.close()
    assert seen == [
        (str(first), "True", repr(str(first))),
        (str(second), "True", repr(str(second))),
        (None, "False", "None"),
    ]

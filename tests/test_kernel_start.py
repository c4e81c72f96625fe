"""What a kernel does as it starts, fresh or forked from a template, and what a run finds there:
the parts done ahead (the template's IPython shell, jupyter_client's package left unread) must
not show in the run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import stored_values, write_script

from ploomber_like import track_execution, track_grid

pytestmark = pytest.mark.kernel

CLIENT = """
import sys

managers_at_start = "jupyter_client.manager" in sys.modules
interfaces_listed = "psutil" in sys.modules

import jupyter_client
from jupyter_client import KernelManager

KernelManager.__module__
version = jupyter_client.__version__
version
managers_at_start
interfaces_listed
"""


def test_a_fresh_kernel_starts_without_jupyter_clients_managers_yet_a_run_finds_them(tmp_path):
    path = write_script(tmp_path, CLIENT)
    record = track_execution(path, None, tmp_path / "runs.db", quiet=True, keep_warm=False)
    assert record.ok, record.error
    assert record.values["__module__"] == "jupyter_client.manager"
    assert record.values["version"]
    # ipykernel needs the connection and session modules only; the package's clients, managers
    # and provisioners (~50 ms) load when a run reads them. The address is given, not found by
    # listing the machine's interfaces (psutil).
    assert record.values["managers_at_start"] is False
    assert record.values["interfaces_listed"] is False


def test_a_forked_kernel_starts_without_jupyter_clients_managers_yet_a_run_finds_them(tmp_path):
    path = write_script(tmp_path, "# parameters\nn = 0\n\n" + CLIENT)
    summary = track_grid(path, {"n": [1, 2]}, tmp_path / "runs.db", quiet=True)
    assert summary.ok == 2
    for values in stored_values(tmp_path / "runs.db"):
        assert values["__module__"] == "jupyter_client.manager" and values["version"]
        assert values["managers_at_start"] is False


SHELL = """
# parameters
n = 0

shell = get_ipython()
serves_its_kernel = shell.kernel is not None and shell.kernel.shell is shell
namespace_is_the_runs = shell.user_ns is globals()
planted_before = hasattr(shell, "planted")
shell.planted = n
count = shell.execution_count
serves_its_kernel
namespace_is_the_runs
planted_before
count
"""


def test_forked_kernels_each_get_the_templates_shell_untouched_and_bound_to_their_kernel(
    tmp_path,
):
    path = write_script(tmp_path, SHELL)
    summary = track_grid(path, {"n": [1, 2, 3]}, tmp_path / "runs.db", quiet=True, workers=1)
    assert summary.ok == 3
    runs = stored_values(tmp_path / "runs.db")
    assert [run["serves_its_kernel"] for run in runs] == [True] * 3
    assert [run["namespace_is_the_runs"] for run in runs] == [True] * 3
    # What a run did to its shell stays in its process.
    assert [run["planted_before"] for run in runs] == [False] * 3
    assert len({run["count"] for run in runs}) == 1


def test_a_configured_kernel_class_gets_its_own_shell_class_in_forked_kernels(tmp_path):
    # The template builds the shell of the kernel class the configuration names.
    ipython_dir = tmp_path / "ipython"
    (ipython_dir / "profile_default").mkdir(parents=True)
    (ipython_dir / "profile_default" / "ipython_kernel_config.py").write_text(
        'c.IPKernelApp.kernel_class = "mykernel.MyKernel"\n'
    )
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "mykernel.py").write_text(
        "from ipykernel.ipkernel import IPythonKernel\n"
        "from ipykernel.zmqshell import ZMQInteractiveShell\n"
        "from traitlets import Type\n\n\n"
        "class MyShell(ZMQInteractiveShell):\n    pass\n\n\n"
        "class MyKernel(IPythonKernel):\n    shell_class = Type(MyShell)\n"
    )
    path = write_script(
        tmp_path, "# parameters\nn = 0\n\ntype(get_ipython()).__name__\n"
        "type(get_ipython().kernel).__name__\n",
    )
    env = {**os.environ, "IPYTHONDIR": str(ipython_dir), "PYTHONPATH": str(modules)}
    done = subprocess.run(
        [sys.executable, "-m", "tracker", str(path), "-g", "n=1,2", "-q", "-d", "runs.db"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    runs = stored_values(tmp_path / "runs.db")
    assert [(run["__name__"], run["__name___2"]) for run in runs] == [("MyShell", "MyKernel")] * 2

"""What a kernel does as it starts, fresh or forked from a template, and what a run finds there:
the parts done ahead (the template's IPython shell) must not show in the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli, modules_after_cli, stored_values, write_script

from ploomber_like import track_execution, track_grid

pytestmark = pytest.mark.kernel

INTERFACES = """
import sys

interfaces_listed = "psutil" in sys.modules
interfaces_listed
"""


def test_a_fresh_kernel_is_given_its_address_rather_than_listing_the_interfaces(tmp_path):
    # Left unset, jupyter_client finds the loopback address by listing the machine's network
    # interfaces through psutil, imported for that alone.
    path = write_script(tmp_path, INTERFACES)
    record = track_execution(path, None, tmp_path / "runs.db", quiet=True, keep_warm=False)
    assert record.ok, record.error
    assert record.values == {"interfaces_listed": False}


def test_the_driver_connects_without_listing_the_interfaces(tmp_path):
    # jupyter_client's client computes its default address even when the connection file
    # names one, which would list the interfaces in the driver (psutil again).
    path = write_script(tmp_path, "x = 1\nx\n")
    assert "psutil" not in modules_after_cli(str(path), "-q", cwd=tmp_path)


def kernel_profile(tmp_path: Path, config: str) -> dict[str, str]:
    """Variables for :func:`cli`'s ``env`` under which kernels read ``config`` as their
    profile's ``ipython_kernel_config.py``."""
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(config)
    return {"IPYTHONDIR": str(profile.parent)}


#: A test run once in a fresh kernel (no grid) and once in kernels forked from a template.
fresh_or_forked = pytest.mark.parametrize("grid", [[], ["-g", "n=1,2"]], ids=["fresh", "forked"])


def values_of_runs(
    tmp_path: Path, script: str, grid: list[str], env: dict[str, str] | None = None
) -> list[dict]:
    """The values of each run of ``script`` over ``grid`` (a single run if empty), through the
    command line in ``tmp_path`` (``env`` as for :func:`cli`)."""
    path = write_script(tmp_path, script)
    done = cli(str(path), *grid, "-q", "-d", "runs.db", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    runs = stored_values(tmp_path / "runs.db")
    assert len(runs) == max(1, len(grid))
    return runs


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
    env = kernel_profile(tmp_path, 'c.IPKernelApp.kernel_class = "mykernel.MyKernel"\n')
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
    done = cli(str(path), "-g", "n=1,2", "-q", "-d", "runs.db", cwd=tmp_path,
               env={**env, "PYTHONPATH": str(modules)})
    assert done.returncode == 0, done.stderr
    runs = stored_values(tmp_path / "runs.db")
    assert [(run["__name__"], run["__name___2"]) for run in runs] == [("MyShell", "MyKernel")] * 2


@fresh_or_forked
def test_a_kernel_configured_for_ipc_keeps_its_sockets_out_of_the_working_directory(
    tmp_path, grid
):
    # The loopback address is named for TCP only: over IPC the address is the sockets' path.
    env = kernel_profile(tmp_path, 'c.IPKernelApp.transport = "ipc"\n')
    work = tmp_path / "work"
    work.mkdir()
    path = write_script(work, "# parameters\nn = 0\n\nx = n + 1\nx\n")
    database = tmp_path / "runs.db"
    done = cli(str(path), *grid, "-q", "-d", str(database), cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    assert len(stored_values(database)) == max(1, len(grid))
    assert sorted(p.name for p in work.iterdir()) == ["script.py"]


MODULE_LISTING = """
import sys

import ipykernel.ipkernel

# parameters
n = 0

module_files_listed = len(getattr(get_ipython().kernel, "_kernel_modules", []))
ipykernel_sees_the_real_sys = ipykernel.ipkernel.sys is sys
module_files_listed
ipykernel_sees_the_real_sys
"""


@fresh_or_forked
def test_a_kernel_lists_no_module_files_for_the_debugger_it_does_not_have(tmp_path, grid):
    # ipykernel lists every loaded module's file for its debugger as it builds the kernel: in a
    # fork of a template, thousands of copy-on-write faults for a list nothing reads.
    runs = values_of_runs(tmp_path, MODULE_LISTING, grid)
    assert [(run["module_files_listed"], run["ipykernel_sees_the_real_sys"]) for run in runs] == [
        (0, True)
    ] * len(runs)


FROZEN = """
import gc
import weakref

# parameters
n = 0

kernel_objects_frozen = gc.get_freeze_count()


class Node:
    pass


cycle = Node()
cycle.me = cycle
alive = weakref.ref(cycle)
del cycle
gc.collect()
cycle_collected = alive() is None
kernel_objects_frozen > 10_000
cycle_collected
"""


@fresh_or_forked
def test_the_runs_garbage_collections_leave_the_kernels_own_objects_alone(tmp_path, grid):
    # `python fit.py` has no kernel: its collections walk the script's objects only. In a
    # kernel, a full collection during the run's imports would walk IPython's and ipykernel's
    # too. Frozen as the run starts, they are skipped; the run's own garbage is still freed.
    for run in values_of_runs(tmp_path, FROZEN, grid):
        assert run["kernel_objects_frozen > 10_000"] is True, run
        assert run["cycle_collected"] is True, run


PLUGIN_LISTING = """
import importlib.metadata
import sys

import narwhals.dependencies

# parameters
n = 0

plugin_imported_before = "fake_narwhals_plugin" in sys.modules
listings = []
original = importlib.metadata.entry_points


def counted(**selection):
    listings.append(selection)
    return original(**selection)


importlib.metadata.entry_points = counted
narwhals.dependencies.is_into_dataframe(object())
importlib.metadata.entry_points = original
entry_points_read = len(listings)
entry_points_read
plugin_imported_before
"""


@fresh_or_forked
def test_the_template_lists_narwhals_plugins_once_for_every_run(tmp_path, grid):
    # scikit-learn checks each array it is given through narwhals, whose first check reads the
    # entry points of every installed distribution: once in the template, not in each run.
    pytest.importorskip("narwhals.dependencies")
    runs = values_of_runs(tmp_path, PLUGIN_LISTING, grid)
    expected = 1 if not grid else 0
    assert [run["entry_points_read"] for run in runs] == [expected] * len(runs)


def test_the_template_imports_no_narwhals_plugin(tmp_path):
    # An installed plugin would be imported by narwhals' first check: the template leaves the
    # check to the runs rather than import a module that has not passed the quiet-import checks.
    pytest.importorskip("narwhals.dependencies")
    site = tmp_path / "site"
    (site / "fake_narwhals_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "fake_narwhals_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-narwhals-plugin\nVersion: 1.0\n"
    )
    (site / "fake_narwhals_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[narwhals.plugins]\nfake = fake_narwhals_plugin\n"
    )
    (site / "fake_narwhals_plugin.py").write_text("print('plugin imported')\n")
    script = PLUGIN_LISTING.split("listings = []")[0] + "plugin_imported_before\n"
    runs = values_of_runs(tmp_path, script, ["-g", "n=1,2"], env={"PYTHONPATH": str(site)})
    assert [run["plugin_imported_before"] for run in runs] == [False, False]

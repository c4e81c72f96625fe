"""The template learns what runs import at run time; ``--no-preload`` turns preloading off.

Each run of ``probe.py`` shows ``preloaded``: whether a module it is about to import by name
(``module_name``, ``+`` between several) was in ``sys.modules`` before its code imported it,
i.e. imported by the template it was forked from; and ``static_preloaded``, the same for a
module the file imports in its source, which every template preloads. Both modules are ones
no kernel machinery imports (IPython 8 imports ``colorsys``, so it would not do). Sweeps run
through the CLI in processes of their own, with their own cache folder (``XDG_CACHE_HOME``) and a
site-packages folder of the test's (``PYTHONUSERBASE``, also on ``PYTHONPATH``: this venv does
not put the user site on ``sys.path`` itself).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import pytest
from conftest import cli, write_script

from ploomber_like.kernels import KernelTemplate, protocol

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="templates need fork()"),
]

PROBE = """
import sys
from importlib import import_module

# parameters
module_name = "wave"
repeat = 1

names = module_name.split("+")
preloaded = any(name in sys.modules for name in names)
static_preloaded = "graphlib" in sys.modules
try:
    for name in names:
        import_module(name)
except Exception as exc:
    print("import failed:", type(exc).__name__)
preloaded
static_preloaded

import graphlib
"""

#: Installed modules of the test's site-packages folder: one that imports quietly, and three
#: that must never be preloaded (they print, warn, or fail after a submodule imported).
LIBRARIES = {
    "quiet_lib.py": "VALUE = 1\n",
    "noisy_lib.py": "print('noisy_lib says hello')\n",
    "warning_lib.py": "import warnings\nwarnings.warn('warning_lib is old', UserWarning)\n",
    "failing_lib/__init__.py": "from failing_lib import part\nraise RuntimeError('broken')\n",
    # Silent when noisy_lib was imported before it, as in a run that imports both in turn.
    "uses_noisy.py": "import noisy_lib\n",
    "failing_lib/part.py": "VALUE = 2\n",
    # A library whose submodules a file names in strings (NAMED_PROBE), and one it never uses.
    "named_lib/__init__.py": "",
    "named_lib/models.py": "class Model:\n    pass\n",
    "named_lib/loud.py": "print('named_lib.loud says hello')\n",
    "unused_lib/__init__.py": "",
    "unused_lib/sub.py": "VALUE = 4\n",
}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    write_script(folder, PROBE, "probe.py")
    (folder / "helper_mod.py").write_text("VALUE = 3\n")  # the user's own module
    return folder


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    user_base = tmp_path / "userbase"
    site_packages = Path(
        subprocess.run(
            [sys.executable, "-c", "import site; print(site.getusersitepackages())"],
            env={**os.environ, "PYTHONUSERBASE": str(user_base)},
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )
    for name, text in LIBRARIES.items():
        (site_packages / name).parent.mkdir(parents=True, exist_ok=True)
        (site_packages / name).write_text(text)
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site_packages)) if p)
    return {
        **os.environ, "PYTHONUSERBASE": str(user_base), "PYTHONPATH": path,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def tracker(work: Path, env: dict[str, str], *args: str) -> None:
    done = cli("probe.py", "-q", *args, cwd=work, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def runs(database: Path) -> list[dict]:
    """Each run's parameters, values and stdout, in the order the runs were created."""
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT parameters, stdout FROM experiments ORDER BY created, rowid")
        return [{**json.loads(parameters), "stdout": stdout} for parameters, stdout in rows]
    finally:
        conn.close()


def cache(env: dict[str, str]) -> dict:
    (file,) = (Path(env["XDG_CACHE_HOME"]) / "ploomber_like" / "preload").glob("*.json")
    return json.loads(file.read_text())


def test_a_module_imported_at_run_time_is_preloaded_for_later_forks_and_the_next_sweep(
    work, env
):
    tracker(work, env, "-g", "repeat=1,2,3,4", "-w", "1", "-d", "first.db")
    first = [run["preloaded"] for run in runs(work / "first.db")]
    # Run 1 teaches the template; run 2's kernel was forked ahead, while run 1 ran.
    assert first[0] is False and first[-1] is True, first
    assert "wave" in cache(env)["modules"]

    # The next sweep of the file, in another process, starts warm.
    tracker(work, env, "-g", "repeat=1,2", "-w", "1", "-d", "second.db")
    assert [run["preloaded"] for run in runs(work / "second.db")] == [True, True]


def test_a_cache_folder_that_cannot_be_written_is_harmless(work, env, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a file where the cache folder should be: even root cannot write
    env = {**env, "XDG_CACHE_HOME": str(blocker / "cache")}
    tracker(work, env, "-g", "repeat=1,2,3,4", "-w", "1", "-d", "first.db")
    shown = [run["preloaded"] for run in runs(work / "first.db")]
    assert shown[0] is False and shown[-1] is True, shown  # learned all the same, in memory


def test_user_modules_and_modules_that_fail_or_write_output_are_never_preloaded(work, env):
    modules = "quiet_lib,noisy_lib,warning_lib,failing_lib,helper_mod,'noisy_lib+uses_noisy'"
    grid = ["-g", f"module_name={modules}", "-g", "repeat=1,2", "-w", "1"]
    tracker(work, env, *grid, "-d", "first.db")
    tracker(work, env, *grid, "-d", "second.db")
    preloaded = {}
    for run in runs(work / "first.db") + runs(work / "second.db"):
        preloaded.setdefault(run["module_name"], []).append(run["preloaded"])
        if run["module_name"].startswith("noisy_lib"):
            assert "noisy_lib says hello" in run["stdout"]  # every run prints it, as it would
    # The installed module that imports quietly is learned (the test can fail)...
    assert preloaded["quiet_lib"][-2:] == [True, True], preloaded
    # ... the others never are.
    for name in ("noisy_lib", "warning_lib", "failing_lib", "helper_mod", "noisy_lib+uses_noisy"):
        assert not any(preloaded[name]), (name, preloaded)
    learned = cache(env)
    assert "quiet_lib" in learned["modules"]
    refused = {"noisy_lib", "warning_lib", "failing_lib.part", "uses_noisy"}
    assert refused <= set(learned["refused"])
    assert not {"helper_mod", *refused} & set(learned["modules"])
    assert not [name for name in learned["modules"] if name.startswith("failing_lib")]


def test_no_preload_turns_it_off_for_grids_searches_and_single_runs(work, env):
    search = ["-s", "repeat=1,2,3", "--maximize", "repeat", "--trials", "2", "--sampler",
              "random", "-w", "1"]
    tracker(work, env, *search, "--no-preload", "-d", "search.db")
    searched = runs(work / "search.db")
    assert [run["static_preloaded"] for run in searched] == [False, False]

    tracker(work, env, "-g", "repeat=1,2,3", "-w", "1", "-d", "learn.db")
    learned = runs(work / "learn.db")
    assert learned[-1]["preloaded"] is True  # the cache now names wave
    assert all(run["static_preloaded"] for run in learned)

    tracker(work, env, "-g", "repeat=1,2", "-w", "1", "--no-preload", "-d", "grid.db")
    tracker(work, env, *search, "-d", "warm-search.db")
    tracker(work, env, *search, "--no-preload", "-d", "search-again.db")
    tracker(work, env, "--no-preload", "-d", "single.db")
    for database, expected in [
        ("grid.db", False), ("warm-search.db", True), ("search-again.db", False),
        ("single.db", False),
    ]:
        for run in runs(work / database):
            assert run["preloaded"] is run["static_preloaded"] is expected, (database, run)


NAMED_PROBE = """
import sys
from importlib import import_module

import mine
import named_lib

# parameters
model = "named_lib.models.Model"
loud = "named_lib.loud"
unused = "unused_lib.sub"
own = "mine.models"
repeat = 1

modules = ["named_lib.models", loud, "unused_lib", own]
before = {name: name in sys.modules for name in modules}
module_name, _, class_name = model.rpartition(".")
Model = getattr(import_module(module_name), class_name)
import_module(loud)
import_module(own)
before
"""


def test_a_submodule_the_file_names_in_a_string_is_preloaded_from_the_first_run(work, env):
    # A configurable script names its model's module in the parameters cell and imports it
    # after: learning would preload it from the second run on; read from the source, the
    # template has it for the first. Only if it imports silently, only from a library the file
    # imports itself, never from the user's folder.
    write_script(work, NAMED_PROBE, "named.py")
    (work / "mine").mkdir()
    (work / "mine" / "__init__.py").write_text("")
    (work / "mine" / "models.py").write_text("VALUE = 5\n")
    database = work / "named.db"
    done = cli("named.py", "-q", "-g", "repeat=1,2", "-w", "1", "-d", str(database),
               cwd=work, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = runs(database)
    expected = {"named_lib.models": True, "named_lib.loud": False, "unused_lib": False,
                "mine.models": False}
    assert [run["before"] for run in shown] == [expected, expected]
    assert all("named_lib.loud says hello" in run["stdout"] for run in shown)
    assert "named_lib.models" in cache(env)["modules"]
    assert "named_lib.loud" in cache(env)["refused"]

    database = work / "off.db"
    done = cli("named.py", "-q", "-g", "repeat=1,2", "-w", "1", "--no-preload",
               "-d", str(database), cwd=work, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(any(run["before"].values()) for run in runs(database))


def test_a_string_names_the_longest_module_it_starts_with_and_nothing_is_imported(tmp_path):
    sources = [
        "import email\nimport unittest\nimport xml\n",
        'a = "email.mime.text.MIMEText"\nb = "xml.dom"\nc = "json.decoder"\n',
        'g = "unittest.__main__"\n',
        'd = "email.no_such_module"\ne = "email"\nf = "email.mime.text.MIMEText.x"\n',
    ]
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from ploomber_like.kernels import named_modules, preloadable_modules
        sources = {sources!r}
        folder = Path({str(tmp_path)!r})
        preloaded = preloadable_modules(sources, folder, folder)
        before = set(sys.modules)
        found = named_modules(sources, preloaded, folder, folder)
        new = sorted(name for name in set(sys.modules) - before
                     if name.startswith(("email", "xml")))
        print(sorted(found), all(Path(file).is_file() for file in found.values()), new)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    # json is not imported by the sources, a class and its attribute name their module, a
    # missing submodule names nothing, a package's __main__ (importing it runs unittest's
    # command line) is never named; and finding them imported none of them.
    assert done.stdout.strip() == "['email.mime.text', 'xml.dom'] True []"


DRIVER = """
import json, sys
from ploomber_like import track_execution

shown = []
for _ in range(3):
    record = track_execution("probe.py", None, "runs.db", quiet=True, preload=PRELOAD)
    assert record.status == "ok", record.error
    shown.append(record.values["preloaded"])
print(json.dumps(shown))
"""


@pytest.mark.parametrize("preload", [True, False])
def test_later_track_execution_calls_learn_unless_preload_is_false(work, env, preload):
    code = textwrap.dedent(DRIVER).replace("PRELOAD", str(preload))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    # Call 1 runs in a fresh kernel, call 2 in a fork that teaches the template, call 3 gains.
    assert shown == ([False, False, True] if preload else [False, False, False])


def test_a_quiet_module_that_imports_a_noisy_one_tried_before_it_is_left_out(env):
    # Tried in this order, uses_noisy imports silently (noisy_lib is loaded by then), but on its
    # own, as the template would import it, it prints: only quiet_lib may be preloaded.
    code = (
        "from ploomber_like.kernels.template_process import quiet_imports\n"
        "print(quiet_imports(['noisy_lib', 'uses_noisy', 'quiet_lib', 'failing_lib.part']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "['quiet_lib']"


CRASH_DRIVER = """
from ploomber_like import track_execution

for _ in range(2):  # a fresh kernel, then one forked from a template holding the libraries
    track_execution("libraries.py", None, "runs.db", quiet=True)
record = track_execution("crash.py", None, "runs.db", quiet=True)
print(record.status)
print(record.error.traceback)
"""


def test_a_crash_in_a_kernel_forked_from_a_large_template_keeps_the_fatal_error(work, env):
    # faulthandler names every extension module loaded, on one line: with a template holding
    # pandas and scikit-learn it is longer than the log tail the error keeps.
    write_script(work, "import pandas\nimport sklearn.ensemble\nx = 1\nx\n", "libraries.py")
    write_script(work, "import ctypes\n\nctypes.string_at(0)\n", "crash.py")
    done = subprocess.run(
        [sys.executable, "-c", CRASH_DRIVER], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    status, traceback = done.stdout.split("\n", 1)
    assert status == "crashed"
    assert "Fatal Python error: Segmentation fault" in traceback
    assert "Extension modules: (total: " in traceback


def test_pyplot_is_preloaded_only_for_a_file_importing_beyond_the_standard_library(work, env):
    # pyplot saves plotting runs ~0.4 s each; a file of the standard library alone does not
    # plot through a library, and its template starts without it (a run importing it after
    # all has it learned).
    shows = "\n\nloaded = 'matplotlib.pyplot' in sys.modules\nloaded\n"
    write_script(work, "import sys" + shows, "plain.py")
    write_script(work, "import sys\nimport numpy" + shows, "library.py")
    for name, expected in (("plain.py", False), ("library.py", True)):
        database = work / f"{name}.db"
        done = cli(name, "-g", "x=1", "-q", "-d", str(database), cwd=work, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [run["loaded"] for run in runs(database)] == [expected]


def test_what_a_kernel_imports_as_it_starts_is_kept_for_the_next_template(work, env):
    tracker(work, env, "-g", "repeat=1", "-d", "first.db")
    (kept,) = (Path(env["XDG_CACHE_HOME"]) / "ploomber_like" / "kernel_imports").glob("*.json")
    names = json.loads(kept.read_text())
    assert "ipykernel.debugger" in names  # imported by a kernel's start, not before it
    kept.write_text("[half a li")  # a damaged file: the next template learns the list again
    tracker(work, env, "-g", "repeat=1", "-d", "second.db")
    assert json.loads(kept.read_text()) == names


@pytest.fixture
def sent(monkeypatch) -> list[protocol.Message]:
    """The messages the driver sends to its templates during the test, in order."""
    messages: list[protocol.Message] = []
    encode = protocol.encode

    def sending(message: protocol.Message) -> bytes:
        messages.append(message)
        return encode(message)

    monkeypatch.setattr(protocol, "encode", sending)
    return messages


def test_workers_asking_at_once_for_the_same_modules_make_the_template_import_them_once(
    tmp_path, sent
):
    # Two workers whose first runs end together both ask for what those runs imported: the
    # second must wait for the first request and find the modules imported, not send them again
    # (each Import request has the template try the modules in a forked child first).
    template = KernelTemplate(tmp_path, tmp_path)
    together = Barrier(2)

    def ask(_: int) -> list[str]:
        together.wait()
        return template.extend(["wave", "graphlib"])

    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(ask, range(2)))
    finally:
        template.close()
    assert answers == [["wave", "graphlib"]] * 2
    assert [m.modules for m in sent if isinstance(m, protocol.Import)] == [["wave", "graphlib"]]


def test_a_template_built_with_modules_to_check_imports_the_quiet_ones_as_it_starts(
    tmp_path, env, monkeypatch, sent
):
    # The modules a file names are checked while the template warms up, not by a request of
    # their own once it is ready (which kept the first fork waiting): built with them, the
    # template has the quiet one and none of the others, and extending it with them asks
    # for nothing more.
    for name in ("PYTHONUSERBASE", "PYTHONPATH", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, env[name])
    check = ["named_lib.models", "noisy_lib", "failing_lib.part", "warning_lib", "graphlib"]
    template = KernelTemplate(tmp_path, tmp_path, preload=["graphlib"], check=check)
    try:
        assert template.imported == {"graphlib", "named_lib.models"}
        assert template.extend(check) == ["named_lib.models", "graphlib"]
    finally:
        template.close()
    (setup,) = [m for m in sent if isinstance(m, protocol.Setup)]
    assert setup.check == ["named_lib.models", "noisy_lib", "failing_lib.part", "warning_lib"]
    assert not [m for m in sent if isinstance(m, protocol.Import)]


REBUILT_DRIVER = """
import json
from ploomber_like import track_execution

for _ in range(2):  # a fresh kernel, while the folder's template is built: it refuses loud
    assert track_execution("names_loud.py", None, "runs.db", quiet=True).status == "ok"
for _ in range(3):  # the template lacks graphlib: a new one is built for this folder
    record = track_execution("imports_loud.py", None, "runs.db", quiet=True)
    print(json.dumps([record.values["before"], "named_lib.loud says hello" in record.stdout]))
"""


def test_a_template_rebuilt_for_another_file_never_preloads_what_the_old_one_refused(
    work, env
):
    # The process keeps one template per folder; a file it does not serve gets a new one, which
    # keeps what the old one imported. A module the old one refused (its import prints) must not
    # come along: preloaded, it would print no more in the runs that import it.
    write_script(work, "import named_lib\n\nloud = 'named_lib.loud'\nx = 1\nx\n", "names_loud.py")
    write_script(work, (
        "import sys\nfrom importlib import import_module\n\nimport graphlib\nimport named_lib\n\n"
        "before = 'named_lib.loud' in sys.modules\nimport_module('named_lib' + '.loud')\nbefore\n"
    ), "imports_loud.py")
    done = subprocess.run(
        [sys.executable, "-c", REBUILT_DRIVER], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    shown = [json.loads(line) for line in done.stdout.strip().splitlines()[-3:]]
    assert shown == [[False, True]] * 3

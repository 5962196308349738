"""The wheel ships the task configs and the activation hook, and an installed wheel activates itself."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from .conftest import ROOT, copy_sources


def test_wheel_ships_task_configs_and_they_load(tmp_path):
    src = copy_sources(tmp_path / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("lm_eval_erank-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml in (ROOT / "task_configs").glob("*.yaml"):
        assert f"lm_eval_erank/task_configs/{yaml.name}" in names
    # every module of every sub-package (pyproject lists the packages one by one)
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lm_eval_erank").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "lm-eval-erank = lm_eval_erank.cli:main" in entry_points
    for group in ("lm_eval.models", "lm_eval.metrics", "lm_eval.aggregations", "lm_eval.tasks"):
        assert f"[{group}]" in entry_points
    # The activation: a .pth at the top of site-packages and the hook module it imports.
    assert {"lm_eval_erank_autoload.pth", "lm_eval_erank_autoload.py"} <= names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # Without site (-S), process the wheel's directory as site-packages first, then the test
    # environment's (for lm-eval): the wheel's .pth alone must activate the plugin.
    site_packages = sysconfig.get_paths()["purelib"]
    probe = (
        f"import site, sys; site.addsitedir({str(target)!r}); site.addsitedir({site_packages!r});"
        "from lm_eval.tasks import TaskManager;"
        "tm = TaskManager(include_defaults=False);"
        "import lm_eval_erank.harness.task_dirs as p, lm_eval_erank_autoload as hook; "
        f"assert hook.__file__.startswith({str(target)!r}), hook.__file__;"
        "print(p.task_dir()); print(sorted(t for t in tm.all_tasks if 'erank' in t))"
    )
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    task_dir, tasks = done.stdout.strip().splitlines()[-2:]
    assert task_dir.startswith(str(target))
    shipped = sorted(p.stem for p in (ROOT / "task_configs").glob("*.yaml"))
    assert tasks == str(shipped) and "erank_piqa" in shipped and "erank_lm" in shipped

"""Implementations from outside the package: --plugin files and modules, $KERNEL_HARNESS_PLUGINS, entry points.

Each case runs `python -m harness` in a fresh process from a folder outside the checkout, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

KERNELS = '''
from harness import register


@register("relu", "fwd", name="my_relu", device="cpu", math="fp32")
def relu_right(s, x, *, y):
    """y = max(x, 0)."""
    y[...] = x.clip(min=0)


@register("relu", "fwd", name="my_relu_wrong", device="cpu", math="fp32")
def relu_wrong(s, x, *, y):
    """y = |x|: wrong for negative inputs."""
    y[...] = abs(x)
'''


def harness(args, cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *env.pop("path", [])]), **env}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def user_dir(tmp_path) -> Path:
    (tmp_path / "my_kernels.py").write_text(KERNELS)
    return tmp_path


def _statuses(run: Path) -> dict[str, set]:
    df = pd.read_csv(run / "results.csv")
    return {name: set(g.status) for name, g in df.groupby("impl")}


def test_a_plugin_file_runs_beside_the_built_in_implementations(user_dir):
    r = harness(["run", "--op", "relu", "--pass", "fwd", "--plugin", "my_kernels.py", "--check-only",
                 "--out", "run", "--no-report"], user_dir)
    assert r.returncode == 1, r.stderr  # the wrong one fails the run
    statuses = _statuses(user_dir / "run")
    assert statuses["my_relu"] == {"pass"} and statuses["my_relu_wrong"] == {"fail"}
    assert statuses["numpy_opt"] == {"pass"}


def test_a_missing_plugin_is_one_line_and_exit_2(user_dir):
    r = harness(["run", "--op", "relu", "--plugin", "nosuch.py"], user_dir)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nosuch.py: no such file" in r.stderr, r.stderr
    assert not (user_dir / "reports").exists()  # nothing ran


def test_a_plugin_that_fails_to_import_names_the_file_and_the_error(user_dir):
    (user_dir / "broken.py").write_text("import numpy\nraise RuntimeError('my bug')\n")
    r = harness(["list", "--plugin", "broken.py"], user_dir)
    assert r.returncode == 2 and "broken.py failed to import: RuntimeError: my bug" in r.stderr, r.stderr
    r = harness(["list", "--plugin", "no_such_module_anywhere"], user_dir)
    assert r.returncode == 2 and "no such file or importable module" in r.stderr


def test_the_environment_variable_and_a_module_name_load_plugins(user_dir):
    r = harness(["list"], user_dir, KERNEL_HARNESS_PLUGINS=str(user_dir / "my_kernels.py"))
    assert "my_relu_wrong" in r.stdout, r.stderr
    r = harness(["list", "--plugin", "my_kernels"], user_dir, path=[str(user_dir)])
    assert "my_relu " in r.stdout, r.stderr


def test_an_installed_package_entry_point_loads(user_dir):
    dist = user_dir / "site" / "my_kernels_pkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-kernels-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kernel_harness.impls]\nmine = my_kernels\n")
    r = harness(["list"], user_dir / "site", path=[str(user_dir / "site"), str(user_dir)])
    assert "my_relu_wrong" in r.stdout, r.stderr


def test_train_uses_a_plugin_implementation_for_one_op(user_dir):
    (user_dir / "my_kernels.py").write_text(KERNELS + '''

@register("relu", "bwd", name="my_relu", device="cpu", math="fp32")
def relu_bwd(s, y, dy, *, dx):
    """dx = dy where y > 0."""
    dx[...] = dy * (y > 0)
''')
    r = harness(["train", "--model", "mlp1", "--epochs", "1", "--train-size", "64", "--test-size", "32",
                 "--plugin", "my_kernels.py", "--use", "relu=my_relu", "--out", "t", "--no-progress"], user_dir)
    assert r.returncode == 0, r.stderr
    meta = (user_dir / "t" / "meta.json").read_text()
    assert '"relu/fwd": "my_relu"' in meta and '"relu/bwd": "my_relu"' in meta

"""--save/--resume: a run stopped after an epoch and resumed ends with bit-identical weights; bad checkpoints fail
with one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError
from nets import checkpoint
from nets.train import TrainConfig, train

QUIET = {"progress": False, "train_size": 200, "test_size": 50}


def _train(tmp_path, name, **kw):
    return train(TrainConfig(out=str(tmp_path / name), **QUIET, **kw), printer=lambda *a: None)


@pytest.mark.parametrize(("model", "backend"), [("mlp2", "numpy_opt"), ("lenet", "numpy_ref"),
                                                ("mlp1-bce", "numpy_ref")])
def test_resumed_run_ends_bit_identical(tmp_path, model, backend):
    full = _train(tmp_path, "full", model=model, backend=backend, epochs=3, seed=3)
    ck = tmp_path / "ck.npz"
    first = _train(tmp_path, "first", model=model, backend=backend, epochs=1, seed=3, save=str(ck))
    assert first.history[0] == full.history[0] | {"epoch_s": first.history[0]["epoch_s"],
                                                  "images_per_s": first.history[0]["images_per_s"],
                                                  "eval_s": first.history[0]["eval_s"]}
    resumed = _train(tmp_path, "resumed", resume=str(ck), epochs=3)
    assert resumed.config.model == model and resumed.config.seed == 3 and resumed.config.backend == backend
    a, b = full.net.state(), resumed.net.state()
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name], b[name]), name
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.history[-1]["steps"] == full.history[-1]["steps"]
    assert (resumed.run_dir / "history.csv").read_text().count("\n") == 4  # header + all three epochs


def test_resume_refuses_a_different_model(tmp_path):
    ck = tmp_path / "ck.npz"
    _train(tmp_path, "a", model="mlp1", backend="numpy_ref", epochs=1, save=str(ck))
    with pytest.raises(UsageError, match="differs from the checkpoint") as err:
        _train(tmp_path, "b", model="mlp2", resume=str(ck))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "does not exist"),
    (b"not a zip file at all", "not a readable checkpoint"),
    ("npz-without-meta", "no 'meta' entry"),
])
def test_bad_checkpoint_is_one_line_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.npz"
    if content == "npz-without-meta":
        np.savez(path, w=np.zeros(3))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=problem) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_of_another_architecture_names_the_tensor(tmp_path):
    ck = tmp_path / "ck.npz"
    _train(tmp_path, "a", model="mlp1", backend="numpy_ref", epochs=1, save=str(ck))
    saved = checkpoint.load(ck)
    saved.params["1.dense.w"] = saved.params["1.dense.w"][:, :3]
    checkpoint.save(ck, saved.params, saved.meta)
    with pytest.raises(UsageError, match=r"1\.dense\.w.*shape") as err:
        _train(tmp_path, "b", resume=str(ck), epochs=2)
    assert str(ck) in str(err.value)

"""Tests for tinyconv.train: exact resume, Ctrl-C, atomic pickle-free checkpoints, checkpoint
validation, metrics CSV / plot / summary, the schedule plan and the CLI.

Most tests train a tiny network on 256 random 16x16 images through the Python API (fast); the
real-data test runs the CLI on a slice of CIFAR-10 and skips when TINYCONV_DATA is unset.
"""
import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinyconv
import tinyconv.serialization
from tinyconv import nn
from tinyconv.train import (Arrays, CheckpointError, ConfigError, TrainConfig, load_checkpoint, plan_run,
                            plot_comparison, read_csv, train)
from tinyconv.train.__main__ import main
from tinyconv.train.checkpoint import save_checkpoint
from tinyconv.train.metrics import COLUMNS
from tinyconv.train.splits import make_splits

BATCH = 32
N_TRAIN = 256


def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.GlobalAvgPool2d(), nn.Linear(8, 10))


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(1)
    return Arrays(rng.integers(0, 256, (N_TRAIN, 3, 16, 16), dtype=np.uint8), rng.integers(0, 10, N_TRAIN),
                  rng.integers(0, 256, (120, 3, 16, 16), dtype=np.uint8), rng.integers(0, 10, 120))


def config(out, **kw):
    settings = dict(model="tiny", epochs=2, batch_size=BATCH, out=str(out), progress=False, val_split=32)
    settings.update(kw)
    return TrainConfig(**settings)


def run(arrays, out, on_iteration=None, **kw):
    return train(config(out, **kw), model_fn=tiny_net, arrays=arrays, on_iteration=on_iteration)


def interrupt_at(iteration):
    """A hook that presses Ctrl-C right after optimizer step ``iteration``."""
    def hook(trainer):
        if trainer.iteration == iteration:
            raise KeyboardInterrupt
    return hook


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs"


# --------------------------------------------------------------------------------------------------
# Exact resume and Ctrl-C
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stop_at", [1, 8], ids=["in-epoch-1", "in-epoch-2"])
def test_interrupt_then_resume_equals_straight_run(arrays, tmp_path, capsys, stop_at):
    """2 epochs straight == 2 epochs with Ctrl-C in mid-epoch + --resume: identical weights, bitwise."""
    per_epoch = (N_TRAIN - 32) // BATCH  # 7 iterations per epoch
    straight = run(arrays, tmp_path / "a")
    assert straight.status == "complete" and straight.iteration == 2 * per_epoch

    stopped = run(arrays, tmp_path / "b", on_iteration=interrupt_at(stop_at))
    assert stopped.status == "interrupted"
    completed = stop_at // per_epoch if stop_at % per_epoch else stop_at // per_epoch - 1
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert ckpt["epoch"] == completed and ckpt["iteration"] == completed * per_epoch
    err = capsys.readouterr().err
    assert "Interrupted" in err and "--resume" in err
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == completed

    resumed = train(config(tmp_path / "b", resume=True), model_fn=tiny_net, arrays=arrays)
    assert resumed.status == "complete" and resumed.iteration == straight.iteration

    a = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert_same_state(a["model"], b["model"])
    for i, state in a["optimizer"]["state"].items():
        assert np.array_equal(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]
    assert a["rng"]["loader"] == b["rng"]["loader"]
    for ra, rb in zip(a["history"], b["history"]):
        for key in ("iteration", "lr", "train_loss", "train_error_pct", "test_loss", "val_loss"):
            assert ra[key] == rb[key], key


def test_interrupt_keeps_the_last_completed_epoch(arrays, tmp_path):
    """Ctrl-C in epoch 2 writes the weights as they were at the end of epoch 1, not mid-epoch ones."""
    seen = {}

    def hook(trainer):
        if trainer.iteration == 7:  # the last step of epoch 1
            seen["epoch1"] = trainer.model.state_dict()
        if trainer.iteration == 9:
            raise KeyboardInterrupt

    run(arrays, tmp_path, on_iteration=hook)
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt["epoch"] == 1
    assert_same_state(seen["epoch1"], ckpt["model"])
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1"]


_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_train import config, tiny_net
from tinyconv.train import Arrays, train
import numpy as np

def kill(trainer):
    if trainer.iteration == 10:  # in epoch 2
        os.kill(os.getpid(), signal.SIGKILL)

data = np.load({data!r})
arrays = Arrays(data["a"], data["b"], data["c"], data["d"])
train(config({out!r}), model_fn=tiny_net, arrays=arrays, on_iteration=kill)
"""


def test_killed_run_loses_at_most_the_current_epoch(arrays, tmp_path):
    """SIGKILL in epoch 2 (no cleanup at all): the checkpoint holds epoch 1 and resumes exactly."""
    np.savez(tmp_path / "data.npz", a=arrays.train_images, b=arrays.train_labels, c=arrays.test_images,
             d=arrays.test_labels)
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), data=str(tmp_path / "data.npz"),
                                out=str(tmp_path / "killed"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.npz")["epoch"] == 1
    assert [p.name for p in (tmp_path / "killed").iterdir() if p.name.startswith(".")] == []  # no temp files
    resumed = train(config(tmp_path / "killed", resume=True), model_fn=tiny_net, arrays=arrays)
    straight = run(arrays, tmp_path / "straight")
    assert resumed.iteration == straight.iteration == 14
    assert_same_state(load_checkpoint(tmp_path / "killed" / "checkpoint.npz")["model"],
                      load_checkpoint(tmp_path / "straight" / "checkpoint.npz")["model"])


def test_resume_of_a_finished_run_does_nothing(arrays, tmp_path):
    first = run(arrays, tmp_path, epochs=1)
    before = load_checkpoint(tmp_path / "checkpoint.npz")
    again = run(arrays, tmp_path, epochs=1, resume=True)
    assert again.status == "complete" and again.iteration == first.iteration
    assert_same_state(before["model"], load_checkpoint(tmp_path / "checkpoint.npz")["model"])


def test_existing_checkpoint_is_not_overwritten_without_resume(arrays, tmp_path):
    run(arrays, tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match="--resume"):
        run(arrays, tmp_path, epochs=1)


# --------------------------------------------------------------------------------------------------
# Checkpoint files
# --------------------------------------------------------------------------------------------------
def test_checkpoint_contents_and_no_pickle(arrays, tmp_path):
    run(arrays, tmp_path, epochs=1)
    path = tmp_path / "checkpoint.npz"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    with np.load(path, allow_pickle=False) as npz:  # raises on any pickled (object) member
        for name in npz.files:
            assert npz[name].dtype != object
    assert all(n.endswith(".npy") for n in names)
    ckpt = load_checkpoint(path)
    for key in ("model", "optimizer", "scheduler", "epoch", "iteration", "rng", "history", "config"):
        assert key in ckpt
    assert set(ckpt["rng"]) == {"tinyconv", "numpy", "loader"}
    assert ckpt["config"]["lr"] == 0.1 and ckpt["model_name"] == "tiny"
    assert len(ckpt["history"]) == 1


def test_failed_save_leaves_the_previous_checkpoint(arrays, tmp_path, monkeypatch):
    run(arrays, tmp_path, epochs=1)
    path = tmp_path / "checkpoint.npz"
    before = path.read_bytes()
    ckpt = load_checkpoint(path)

    def write_half_then_fail(file, manifest, arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(tinyconv.serialization, "_write_npz", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ckpt, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign-npz"])
def test_corrupted_checkpoint_gives_a_clear_error(arrays, tmp_path, damage):
    run(arrays, tmp_path, epochs=1)
    path = tmp_path / "checkpoint.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        np.savez(path, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="checkpoint") as e:
        run(arrays, tmp_path, epochs=1, resume=True)
    assert str(path) in str(e.value)


def test_resume_refuses_other_settings_model_and_data(arrays, tmp_path):
    run(arrays, tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match=r"--lr: checkpoint has 0\.1, this run has 0\.05"):
        run(arrays, tmp_path, epochs=1, lr=0.05, resume=True)
    with pytest.raises(CheckpointError, match="model: checkpoint has 'tiny'"):
        run(arrays, tmp_path, epochs=1, model="other", resume=True)
    other = Arrays(arrays.train_images[::-1].copy(), arrays.train_labels, arrays.test_images, arrays.test_labels)
    with pytest.raises(CheckpointError, match="training data"):
        run(other, tmp_path, epochs=1, resume=True)


def test_resume_without_checkpoint_says_so(arrays, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(arrays, tmp_path, resume=True)


# --------------------------------------------------------------------------------------------------
# Metrics, plots, summary
# --------------------------------------------------------------------------------------------------
def test_csv_plot_and_summary(arrays, tmp_path):
    result = run(arrays, tmp_path, epochs=3, eval_every=2)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert tuple(rows[0].keys()) == COLUMNS
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["test_error_pct"] == ""  # not scored at epoch 1 with eval_every=2
    assert rows[1]["test_error_pct"] != "" and rows[2]["test_error_pct"] != ""  # and always at the end
    assert all(r["val_error_pct"] != "" for r in rows[1:])
    assert float(rows[2]["iteration"]) == 21 and float(rows[2]["wall_time_s"]) > 0
    history = read_csv(tmp_path / "metrics.csv")
    assert history[2]["lr"] == pytest.approx(0.001) and history[0]["test_loss"] is None

    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs_completed"] == 3
    assert summary["test_error_rows_0_999_pct"] == pytest.approx(float(rows[2]["test1k_error_pct"]), abs=1e-4)
    assert summary["config"]["eval_every"] == 2 and summary["resume_command"].startswith("python -m tinyconv.train")
    assert result.summary == summary


def test_plots_are_skipped_with_a_warning_without_matplotlib(arrays, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import` raise ImportError
    with pytest.warns(RuntimeWarning, match="matplotlib"):
        result = run(arrays, tmp_path, epochs=1)
    assert result.status == "complete" and not (tmp_path / "curves.png").exists()
    assert (tmp_path / "metrics.csv").exists()


def test_plot_comparison(tmp_path):
    history = [dict.fromkeys(COLUMNS) | {"iteration": i, "train_error_pct": 50 - i, "test1k_error_pct": 55 - i}
               for i in (1, 2, 3)]
    ok = plot_comparison({"plain": {"plain-20": history}, "ResNet": {"ResNet-20": history}}, tmp_path / "c.png")
    assert ok and (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")


# --------------------------------------------------------------------------------------------------
# Plan, splits, settings
# --------------------------------------------------------------------------------------------------
def test_paper_plan():
    default = plan_run(TrainConfig(), iterations_per_epoch=391)  # 50,000 images, batch 128
    assert (default.total_iterations, default.epochs, default.milestones) == (64000, 164, (32000, 48000))
    scaled = plan_run(TrainConfig(epochs=10), iterations_per_epoch=352)  # the paper's 45k/5k split
    assert (scaled.total_iterations, scaled.milestones) == (3520, (1760, 2640))


def test_paper_run_stops_at_its_last_iteration(arrays, tmp_path, monkeypatch):
    monkeypatch.setattr("tinyconv.train.recipe.PAPER_ITERATIONS", 10)
    monkeypatch.setattr("tinyconv.train.recipe.PAPER_MILESTONES", (5, 8))
    result = run(arrays, tmp_path, epochs=None)
    assert result.iteration == 10 and result.epoch == 2  # 7 + 3: the second epoch is cut short
    assert [r["iteration"] for r in result.history] == [7, 10]
    assert result.history[-1]["lr"] == pytest.approx(0.001)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_other_schedules_step_every_iteration(arrays, tmp_path, schedule):
    result = run(arrays, tmp_path, schedule=schedule)
    lrs = [r["lr"] for r in result.history]
    assert result.iteration == 14 and lrs[1] < 0.01  # near the end of either schedule the lr is small
    if schedule == "onecycle":  # one-cycle peaks at --lr around 30% of the run, inside epoch 1
        assert lrs[0] > 0.05


def test_splits_hold_out_the_last_images(arrays):
    s = make_splits(arrays, TrainConfig(val_split=50, subset=100, test_subset=20))
    assert list(s.val) == list(range(N_TRAIN - 50, N_TRAIN)) and list(s.train) == list(range(100))
    assert len(s.test) == 20
    with pytest.raises(ConfigError, match="--subset"):
        make_splits(arrays, TrainConfig(val_split=50, subset=N_TRAIN))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="step")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "tinyconv.train", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--model", "--epochs", "--schedule", "--resume", "--val-split", "--workers", "--subset",
                 "--no-augment", "--eval-every"):
        assert flag in out.stdout


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert main(["--resume", "--out", str(tmp_path), "--data", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: no checkpoint")
    assert main(["--out", str(tmp_path / "run"), "--data", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: CIFAR-10 files missing")


def test_plain_vs_resnet_example(arrays, tmp_path):
    for model in ("plain20", "resnet20"):
        run(arrays, tmp_path / model, epochs=1)
    out = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "examples" / "plain_vs_resnet.py"),
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ResNet-20" in out.stdout and "no " in out.stderr  # plain56/resnet56 missing: noted
    assert (tmp_path / "plain_vs_resnet.png").read_bytes().startswith(b"\x89PNG")


def test_cli_ctrl_c_then_resume(arrays, tmp_path, monkeypatch, capsys):
    """The CLI's Ctrl-C path: exit status 130, a message with the resume command, then --resume works."""
    import tinyconv.models
    import tinyconv.train.loop as loop

    monkeypatch.setitem(tinyconv.models.CIFAR_MODELS, "tiny", tiny_net)
    monkeypatch.setattr("tinyconv.train.splits.load_cifar10", lambda data_dir=None: arrays)
    real_evaluate = loop.evaluate

    def ctrl_c(model, loader):
        raise KeyboardInterrupt

    args = ["--model", "tiny", "--epochs", "2", "--batch-size", "32", "--out", str(tmp_path), "--no-progress"]
    monkeypatch.setattr(loop, "evaluate", ctrl_c)  # Ctrl-C while scoring epoch 1
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "Interrupted" in err and "--resume" in err and "--model tiny" in err
    assert load_checkpoint(tmp_path / "checkpoint.npz")["epoch"] == 0

    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    assert main(args + ["--resume"]) == 0
    assert load_checkpoint(tmp_path / "checkpoint.npz")["epoch"] == 2


def test_evaluate_leaves_the_model_as_it_was(arrays):
    from tinyconv.data import DataLoader
    from tinyconv.train import evaluate

    model = tiny_net()
    before = model.state_dict()
    loader = DataLoader(arrays.test_images, arrays.test_labels, batch_size=50, prefetch=False)
    losses, correct = evaluate(model, loader)
    assert losses.shape == (120,) and correct.dtype == bool and model.training
    assert_same_state(before, model.state_dict())  # eval mode: BN running stats untouched


_DATA = os.environ.get("TINYCONV_DATA", "")
needs_data = pytest.mark.skipif(not (_DATA and (Path(_DATA) / "cifar-10-batches-py" / "test_batch").is_file()),
                                reason="TINYCONV_DATA is unset or has no cifar-10-batches-py/")


@needs_data
def test_real_cifar10_splits_and_run(tmp_path):
    """The CIFAR-10 path end to end with the tiny net: held-out rows are the last of data_batch_5."""
    cfg = config(tmp_path, epochs=1, subset=256, val_split=500, test_subset=1000, data=_DATA)
    result = train(cfg, model_fn=tiny_net)
    assert result.status == "complete" and result.iteration == 8
    row = result.history[0]
    assert row["test_error_pct"] == row["test1k_error_pct"] and row["val_error_pct"] is not None


@pytest.mark.slow
@needs_data
def test_cli_on_real_cifar10(tmp_path, capsys):
    args = ["--model", "resnet20", "--epochs", "1", "--subset", "256", "--batch-size", "64", "--val-split", "100",
            "--test-subset", "200", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["iterations"] == 4 and summary["parameters"] == 269722
    assert 0 <= summary["test_error_rows_0_999_pct"] <= 100
    assert "done: resnet20" in capsys.readouterr().err

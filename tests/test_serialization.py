"""tinyconv.save / tinyconv.load: pickle-free .npz round trips, atomic writes, clear errors."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinyconv
from tinyconv import nn, serialization
from tinyconv.serialization import SerializationError


def assert_same(a, b):
    """Deep equality that also checks container kinds, key order, array dtypes and scalar types."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_state_dict_round_trip_readable_by_plain_numpy(tmp_path):
    state = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
             "bn.running_var": np.ones(3, dtype=np.float64),
             "bn.num_batches_tracked": np.array(7, dtype=np.int64),
             "mask": np.array([True, False])}
    path = tmp_path / "weights.npz"
    tinyconv.save(state, path)
    assert_same(tinyconv.load(path), state)
    assert_same(tinyconv.load(str(path)), state)
    with np.load(path, allow_pickle=False) as plain:  # no pickle anywhere; keys are the state names
        assert sorted(plain.files) == sorted([*state, serialization.MANIFEST])
        np.testing.assert_array_equal(plain["conv.weight"], state["conv.weight"])
        for name in plain.files:
            assert plain[name].dtype != object
    assert os.listdir(tmp_path) == ["weights.npz"]  # no temporary file left behind


def test_nested_checkpoint_round_trip(tmp_path):
    checkpoint = {
        "model": {"fc.weight": tinyconv.Tensor(np.eye(2, dtype=np.float32))},
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.zeros(2)}, 1: {}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "nesterov": False, "params": [0, 1]}]},
        "rng": tinyconv.random.get_rng_state(),  # holds 128-bit integers
        "epoch": np.int64(12),
        "best": float("nan"),
        "note": "résumé",
        "nothing": None,
        "empty": [],
    }
    path = tmp_path / "ckpt.npz"
    tinyconv.save(checkpoint, path)
    loaded = tinyconv.load(path)
    expected = dict(checkpoint, model={"fc.weight": np.eye(2, dtype=np.float32)})
    assert_same(loaded, expected)
    assert isinstance(loaded["epoch"], np.int64)
    with np.load(path) as plain:
        assert "optimizer/state/0/exp_avg" in plain.files


def test_model_and_optimizer_round_trip(tmp_path, rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    optimizer = tinyconv.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = tinyconv.Tensor(rng.standard_normal((5, 3)).astype(np.float32))
    model(x).sum().backward()
    optimizer.step()
    tinyconv.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "c.npz")
    checkpoint = tinyconv.load(tmp_path / "c.npz")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    fresh.load_state_dict(checkpoint["model"])
    fresh_optimizer = tinyconv.optim.SGD(fresh.parameters(), lr=0.5, momentum=0.9)
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    model.eval(), fresh.eval()
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    assert fresh_optimizer.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(fresh_optimizer.state[fresh[0].weight]["momentum_buffer"],
                                  optimizer.state[model[0].weight]["momentum_buffer"])


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    tinyconv.save({"w": np.ones(3)}, path)
    original = path.read_bytes()

    def crash_midway(file, manifest, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # an interruption, not only an ordinary error

    monkeypatch.setattr(serialization, "_write_npz", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        tinyconv.save({"w": np.zeros(1000)}, path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(tinyconv.load(path)["w"], np.ones(3))


def test_failed_rename_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    tinyconv.save({"w": np.ones(3)}, path)

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(serialization.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        tinyconv.save({"w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    np.testing.assert_array_equal(tinyconv.load(path)["w"], np.ones(3))


def test_unreadable_files_give_errors_naming_the_file(tmp_path):
    good = tmp_path / "good.npz"
    tinyconv.save({"w": np.arange(1000.0)}, good)
    cases = {
        "garbage.npz": b"this is not an archive at all",
        "empty.npz": b"",
        "truncated.npz": good.read_bytes()[:len(good.read_bytes()) // 2],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    np.save(tmp_path / "single.npy", np.ones(2))
    for name in [*cases, "plain.npz", "single.npy"]:
        with pytest.raises(SerializationError, match=name):
            tinyconv.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        tinyconv.load(tmp_path / "missing.npz")


def test_corrupted_array_bytes_are_detected(tmp_path):
    path = tmp_path / "w.npz"
    tinyconv.save({"w": np.zeros(4096)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip bits inside the stored array: the zip CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match="w.npz.*corrupt"):
        tinyconv.load(path)


def test_manifest_with_a_wrong_format_or_version_is_rejected(tmp_path):
    for header in ['{"format": "other", "version": 1, "tree": {}}', '{"format": "tinyconv", "version": 99}']:
        path = tmp_path / "bad.npz"
        with open(path, "wb") as f:
            serialization._write_npz(f, np.frombuffer(header.encode(), dtype=np.uint8), {})
        with pytest.raises(SerializationError, match="bad.npz"):
            tinyconv.load(path)


def test_unsupported_values_are_refused_before_writing(tmp_path):
    path = tmp_path / "x.npz"
    for value, match in [({"a": {1, 2}}, "set"), ({"a": np.array([None])}, "object array"),
                         ({(1, 2): np.ones(1)}, "keys must be str or int"),
                         ({"a/b": np.ones(1), "a": {"b": np.ones(1)}}, "two values")]:
        with pytest.raises((TypeError, ValueError), match=match):
            tinyconv.save(value, path)
    assert not path.exists() and os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tinyconv.save({}, tmp_path / "no" / "such" / "dir.npz")


keys = st.one_of(st.text(alphabet="ab./1", min_size=1, max_size=3), st.integers(0, 2))
leaves = st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)),
    st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.text(max_size=5), st.booleans(), st.none())
trees = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=3), st.tuples(children, children),
                               st.dictionaries(keys, children, max_size=3)),
    max_leaves=8)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=trees)
def test_any_supported_tree_round_trips(tmp_path, tree):
    path = tmp_path / "tree.npz"
    try:
        tinyconv.save(tree, path)
    except ValueError as e:  # '/'-joined names can collide when keys are strings like "1" and ints like 1
        assert "two values" in str(e)
        return
    assert_same(tinyconv.load(path), tree)

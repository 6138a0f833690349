"""quantlib.io: uploads are read as data, never run as code; every bad file gets a plain-English UploadError."""

from __future__ import annotations

import io
import os
import pickle
import uuid
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from quantlib.io import UploadedTensors, UploadError, load_tensors, summary_rows


def torch_bytes(obj: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def state_dict() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "fc1.weight": torch.randn(8, 4, generator=gen),
        "fc1.bias": torch.randn(8, generator=gen),
        "conv.weight": torch.randn(4, 2, 3, 3, generator=gen),
        "norm.weight": torch.randn(4, generator=gen).half(),
    }


def assert_same_tensors(got: UploadedTensors, expected: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(expected)
    for name, t in expected.items():
        assert got[name].dtype == t.dtype
        assert torch.equal(got[name], t), name


# ---------------------------------------------------------------------------------------------- good files


def test_safetensors_round_trip_gives_equal_tensors():
    sd = state_dict()
    up = load_tensors(st_save(sd), "model.safetensors")
    assert up.format == "safetensors"
    assert_same_tensors(up, sd)
    assert up.skipped == () and up.nonfinite == ()


def test_pt_state_dict_round_trip_gives_equal_tensors():
    sd = state_dict()
    up = load_tensors(torch_bytes(sd), "model.pt")
    assert up.format == "pytorch"
    assert_same_tensors(up, sd)


def test_pth_and_bin_extensions_and_legacy_format_are_read():
    sd = state_dict()
    assert_same_tensors(load_tensors(torch_bytes(sd), "model.pth"), sd)
    assert_same_tensors(load_tensors(torch_bytes(sd), "pytorch_model.BIN"), sd)
    assert_same_tensors(load_tensors(torch_bytes(sd, _use_new_zipfile_serialization=False), "old.pt"), sd)


def test_nested_checkpoint_uses_its_state_dict_and_flattens_names():
    sd = state_dict()
    ckpt = {
        "epoch": 7,
        "optimizer": {"lr": 0.1, "exp_avg": torch.zeros(3)},
        "state_dict": {"encoder": {"fc1.weight": sd["fc1.weight"]}, "head": [sd["fc1.bias"]]},
    }
    up = load_tensors(torch_bytes(ckpt), "ckpt.pth")
    assert set(up) == {"encoder.fc1.weight", "head.0"}
    assert torch.equal(up["encoder.fc1.weight"], sd["fc1.weight"])
    assert torch.equal(up["head.0"], sd["fc1.bias"])


@pytest.mark.parametrize("key", ["model", "model_state_dict"])
def test_checkpoint_with_model_key_works(key):
    sd = state_dict()
    assert_same_tensors(load_tensors(torch_bytes({key: sd, "step": 3}), "ckpt.pt"), sd)


def test_integer_tensors_are_skipped_and_reported():
    sd = state_dict() | {"bn.num_batches_tracked": torch.tensor(5), "ids": torch.arange(4)}
    up = load_tensors(torch_bytes(sd), "model.pt")
    assert set(up) == set(state_dict())
    assert dict(up.skipped) == {"bn.num_batches_tracked": "not floating point (int64)", "ids": "not floating point (int64)"}
    assert "2 entries skipped" in up.notes()[0]


def test_tensors_with_nan_or_inf_are_kept_but_flagged():
    sd = {"ok": torch.ones(3), "nan": torch.tensor([1.0, float("nan")]), "inf": torch.tensor([float("-inf")])}
    up = load_tensors(st_save(sd), "model.safetensors")
    assert set(up) == set(sd)
    assert set(up.nonfinite) == {"nan", "inf"}
    rows = {r["name"]: r for r in up.rows()}
    assert rows["ok"]["finite"] and not rows["nan"]["finite"] and not rows["inf"]["finite"]
    assert any("NaN or infinite" in note for note in up.notes())


def test_summary_rows_list_name_shape_dtype_numel():
    up = load_tensors(st_save(state_dict()), "model.safetensors")
    rows = up.rows()
    assert [r["name"] for r in rows] == sorted(state_dict())
    conv = next(r for r in rows if r["name"] == "conv.weight")
    assert (conv["shape"], conv["dtype"], conv["numel"], conv["kind"]) == ((4, 2, 3, 3), "float32", 72, "kernel (Conv)")
    assert summary_rows(up.tensors) == rows
    assert up.total_values == sum(t.numel() for t in state_dict().values())


def test_low_precision_floats_are_kept():
    sd = {"bf": torch.ones(2, dtype=torch.bfloat16), "f8": torch.ones(2).to(torch.float8_e4m3fn)}
    up = load_tensors(st_save(sd), "m.safetensors")
    assert {r["dtype"] for r in up.rows()} == {"bfloat16", "float8_e4m3fn"}


# ----------------------------------------------------------------------------------------------- bad files


def test_file_over_the_size_limit_is_refused():
    data = st_save({"w": torch.zeros(1000)})
    with pytest.raises(UploadError, match="the limit is"):
        load_tensors(data, "big.safetensors", max_bytes=len(data) - 1)
    assert len(load_tensors(data, "big.safetensors", max_bytes=len(data))) == 1


@pytest.mark.parametrize(
    "data, filename",
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "cat.png"),
        (b"just some notes", "notes.txt"),
        (b"weights", "model"),
    ],
)
def test_wrong_extension_is_not_a_model_file(data, filename):
    with pytest.raises(UploadError, match="is not a model file"):
        load_tensors(data, filename)


@pytest.mark.parametrize("filename", ["model.pt", "model.bin"])
def test_png_or_text_renamed_to_pt_is_not_a_pytorch_file(filename):
    for data in (b"\x89PNG\r\n\x1a\n" + bytes(64), b"hello, this is plain text\n"):
        with pytest.raises(UploadError, match="not a PyTorch model file"):
            load_tensors(data, filename)


def test_random_bytes_named_safetensors_are_not_safetensors():
    with pytest.raises(UploadError, match="not a safetensors file"):
        load_tensors(b"hello, this is plain text\n", "model.safetensors")
    with pytest.raises(UploadError, match="not a safetensors file"):
        load_tensors(os.urandom(256), "model.safetensors")


def test_torch_file_named_safetensors_says_so():
    with pytest.raises(UploadError, match="rename it to .pt"):
        load_tensors(torch_bytes(state_dict()), "model.safetensors")


def test_empty_file_is_refused():
    with pytest.raises(UploadError, match="empty"):
        load_tensors(b"", "model.pt")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_safetensors_is_reported_as_truncated(cut):
    data = st_save(state_dict())
    with pytest.raises(UploadError, match="truncated"):
        load_tensors(data[: int(len(data) * cut)], "model.safetensors")


def test_safetensors_cut_inside_its_header_is_reported_as_truncated():
    with pytest.raises(UploadError, match="truncated"):
        load_tensors(st_save(state_dict())[:40], "model.safetensors")


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("cut", [0.3, 0.97])
def test_truncated_pt_is_reported_as_corrupt_or_truncated(cut, legacy):
    data = torch_bytes(state_dict(), _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UploadError, match="corrupt or truncated"):
        load_tensors(data[: int(len(data) * cut)], "model.pt")


def test_corrupted_byte_in_pt_gives_an_upload_error_not_a_crash():
    data = bytearray(torch_bytes(state_dict()))
    for pos in range(64, len(data), max(1, len(data) // 40)):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        try:
            load_tensors(bytes(bad), "model.pt")
        except UploadError:
            pass  # corrupt: a clear message. Loading fine (a flipped weight byte) is also acceptable.


def test_zip_that_is_not_a_torch_archive_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UploadError, match="not a PyTorch model file"):
        load_tensors(buf.getvalue(), "model.pt")


def test_zip_bomb_is_refused_before_decompressing():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (4 << 20))  # 4 MB of zeros compress to a few KB
    data = buf.getvalue()
    assert len(data) < 64 << 10
    with pytest.raises(UploadError, match="expands to"):
        load_tensors(data, "bomb.pt", max_bytes=1 << 20)


def test_only_integer_tensors_means_no_float_tensors():
    with pytest.raises(UploadError, match="no floating-point tensors"):
        load_tensors(st_save({"ids": torch.arange(10), "mask": torch.ones(3, dtype=torch.bool)}), "m.safetensors")
    with pytest.raises(UploadError, match="no floating-point tensors"):
        load_tensors(torch_bytes({"step": 3, "ids": torch.arange(10)}), "m.pt")


def test_too_many_tensors_is_refused_for_safetensors_and_pt():
    many = {f"t{i}": torch.zeros(1) for i in range(101)}
    with pytest.raises(UploadError, match="the limit is 100"):
        load_tensors(st_save(many), "many.safetensors", max_tensors=100)
    with pytest.raises(UploadError, match="the limit is 100"):
        load_tensors(torch_bytes(many), "many.pt", max_tensors=100)
    assert len(load_tensors(st_save(many), "many.safetensors", max_tensors=101)) == 101


def test_default_tensor_limit_is_ten_thousand():
    many = {f"t{i}": torch.zeros(1) for i in range(10_001)}
    with pytest.raises(UploadError, match="10001 tensors; the limit is 10000"):
        load_tensors(st_save(many), "many.safetensors")


# ------------------------------------------------------------------------------------- hostile pickles


def write_marker(path: str) -> None:
    """What a malicious pickle would run on load: here it only creates a file, which the test looks for."""
    Path(path).write_text("this code ran")


class WritesMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (write_marker, (self.path,))


class RunsShell:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / f"pwned_{uuid.uuid4().hex}"
    yield path
    path.unlink(missing_ok=True)


def test_the_crafted_pickle_really_runs_code_when_unpickled_normally(marker):
    # The hostile payload used below is real: plain pickle runs it. (Our own harmless function, in tmp_path.)
    pickle.loads(pickle.dumps({"w": WritesMarker(str(marker))}))
    assert marker.exists()


@pytest.mark.parametrize("payload", [WritesMarker, RunsShell])
@pytest.mark.parametrize("filename", ["evil.pt", "evil.pth", "pytorch_model.bin"])
def test_pickle_crafted_to_run_code_is_refused_and_does_not_run(payload, filename, marker):
    data = torch_bytes({"fc.weight": torch.ones(2, 2), "x": payload(str(marker))})
    with pytest.raises(UploadError, match="tried to load Python objects") as err:
        load_tensors(data, filename)
    assert "refused" in str(err.value)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_raw_pickle_with_code_is_refused_and_does_not_run(protocol, marker):
    data = pickle.dumps({"w": WritesMarker(str(marker))}, protocol=protocol)
    with pytest.raises(UploadError, match="Python objects") as err:
        load_tensors(data, "evil.pt")
    assert "refused" in str(err.value)
    assert not marker.exists()


def test_legacy_format_pickle_with_code_is_refused(marker):
    data = torch_bytes({"x": WritesMarker(str(marker))}, _use_new_zipfile_serialization=False)
    with pytest.raises(UploadError, match="tried to load Python objects"):
        load_tensors(data, "evil.pt")
    assert not marker.exists()


def test_upload_error_is_a_value_error():
    assert issubclass(UploadError, ValueError)


# ------------------------------------------------------------------------- small files that ask for a lot of work


def shared_list_bomb() -> bytes:
    """7.6 kB that describe 10^9 leaves: a list shared 1000 times by a list shared 1000 times, beside a tensor."""
    l1 = [0] * 1000
    l2 = [l1] * 1000
    l3 = [l2] * 1000
    return torch_bytes({"w": torch.ones(3), "x": l3})


def test_a_pickle_of_shared_lists_is_refused_after_a_bounded_walk(monkeypatch):
    import quantlib.io as qio

    visits = []
    walk = qio._flatten

    def counting(*args, **kwargs):
        visits.append(1)
        return walk(*args, **kwargs)

    monkeypatch.setattr(qio, "_flatten", counting)
    data = shared_list_bomb()
    assert len(data) < 10_000
    with pytest.raises(UploadError, match="object structure is too large") as err:
        load_tensors(data, "bomb.pt")
    assert "counts every time" in str(err.value) and "state_dict" in str(err.value)
    # the walk stopped at the node limit instead of visiting a billion leaves
    assert len(visits) <= qio.DEFAULT_MAX_NODES + 1


def test_shared_references_count_each_time_they_are_reached():
    row = [torch.zeros(1)] * 3
    # dict, w, x, and per reference to row: the list and its 3 tensors -> 3 + 4 * copies nodes
    with pytest.raises(UploadError, match="more than 11 values"):
        load_tensors(torch_bytes({"w": torch.ones(2), "x": [row] * 3}), "m.pt", max_nodes=11)
    assert len(load_tensors(torch_bytes({"w": torch.ones(2), "x": [row] * 2}), "m.pt", max_nodes=11)) == 7


def test_nesting_deeper_than_the_limit_is_refused():
    from quantlib.io import MAX_DEPTH

    deep: object = [torch.ones(2)]
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(UploadError, match=f"nested more than {MAX_DEPTH} levels"):
        load_tensors(torch_bytes({"w": torch.ones(2), "deep": deep}), "deep.pt")
    shallow: object = {"w": torch.ones(2)}
    for i in range(5):
        shallow = {f"level{i}": shallow}
    assert len(load_tensors(torch_bytes(shallow), "ok.pt")) == 1


def test_a_state_dict_of_many_tensors_is_within_the_walk_limits():
    many = {f"layer{i}.weight": torch.zeros(2) for i in range(3000)}
    up = load_tensors(torch_bytes({"state_dict": many, "epoch": 3}), "many.pt")
    assert len(up) == 3000


def test_a_view_that_repeats_one_value_billions_of_times_is_skipped_unread():
    # torch.save keeps an expanded view as it is: one stored float declared as 10^8 values (a small file).
    data = torch_bytes({"w": torch.zeros(1).expand(10**8), "b": torch.ones(3)})
    assert len(data) < 10_000
    up = load_tensors(data, "views.pt")
    assert list(up) == ["b"]
    reason = dict(up.skipped)["w"]
    assert "view repeating" in reason and "100,000,000 values" in reason
    assert up.total_values == 3


def test_many_views_of_the_same_data_are_refused_by_the_total_size():
    shared = torch.randn(256, 256)  # 256 kB stored once
    data = torch_bytes({f"t{i}": shared for i in range(64)})  # read as 64 x 256 kB = 16 MB of values
    assert len(data) < 400_000
    with pytest.raises(UploadError, match="views of the same") as err:
        load_tensors(data, "views.pt", max_bytes=4 << 20)
    assert "16.0 MB of values" in str(err.value)


def test_tied_weights_stored_once_are_still_read():
    emb = torch.randn(50, 8)
    up = load_tensors(torch_bytes({"embed.weight": emb, "head.weight": emb}), "tied.pt")
    assert set(up) == {"embed.weight", "head.weight"}
    assert torch.equal(up["embed.weight"], up["head.weight"])


@pytest.mark.parametrize(
    ("shape", "offsets"),
    [([2**32, 2**32], [0, 16]), ([2**62, 4], [0, 16]), ([10**9], [0, 16])],
)
def test_safetensors_declaring_a_huge_shape_over_few_bytes_is_refused(shape, offsets):
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": offsets}}).encode()
    data = struct.pack("<Q", len(header)) + header + b"\0" * 16
    with pytest.raises(UploadError, match="corrupt or truncated"):
        load_tensors(data, "huge.safetensors")

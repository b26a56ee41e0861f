"""Values and errors at the edges: `cytonet read` into TIFF/PNG for every data type,
`cytonet info` exit status, v2 arrays with the zlib compressor, and the Python module's
argument checks and error messages.

Fixtures are written at test time by zarr-python and tensorstore, never checked in.
"""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import tensorstore as ts
import tifffile
import zarr

TIFF_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


def values(shape, dtype, seed=0):
    """Random values over the type's whole range, with its extremes (and −9409) in them."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        data = (rng.normal(0, 1000, shape)).astype(dtype)
        data.flat[:4] = [np.finfo(dtype).min, np.finfo(dtype).max, -0.0, np.nan]
        return data
    info = np.iinfo(dtype)
    data = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    data.flat[:2] = [info.min, info.max]
    if info.min <= -9409:
        data.flat[2] = -9409
    return data


def write_zarr(path, data, chunks=(32, 32), **kwargs):
    arr = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, chunks=chunks, fill_value=0,
                            **kwargs)
    arr[:] = data
    return arr


# ---- cytonet read → TIFF / PNG ----

@pytest.mark.parametrize("dtype", TIFF_DTYPES)
def test_read_into_tiff_keeps_signed_and_float_values(cytonet, tmp_path, dtype):
    data = values((50, 70), dtype)
    write_zarr(tmp_path / "root" / "arr", data)
    out = tmp_path / "out.tif"
    cytonet.read(tmp_path / "root", "arr", out, box="5:45,10:60")
    got = tifffile.imread(out)
    assert got.dtype == data.dtype, got.dtype
    np.testing.assert_array_equal(got, data[5:45, 10:60])


@pytest.mark.parametrize("dtype,kind", [("int16", "signed"), ("int8", "signed"), ("float32", "floating-point"),
                                        ("uint32", "wider than 16-bit")])
def test_read_into_png_refuses_values_png_cannot_hold(cytonet, tmp_path, dtype, kind):
    write_zarr(tmp_path / "root" / "arr", values((40, 40), dtype))
    out = tmp_path / "out.png"
    result = cytonet.run(cytonet.cli, "read", tmp_path / "root", "--array", "arr", "--out", out, check=False)
    assert result.returncode == 2, result
    assert f"PNG cannot hold {kind} values" in result.stderr, result.stderr
    assert ".tif" in result.stderr and ".raw" in result.stderr, result.stderr
    assert str(out) in result.stderr, result.stderr
    assert not out.exists()  # refused before reading or writing anything


def test_read_into_png_still_writes_uint16(cytonet, tmp_path):
    write_zarr(tmp_path / "root" / "arr", values((40, 40), "uint16"))
    out = tmp_path / "out.png"
    cytonet.read(tmp_path / "root", "arr", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- cytonet info ----

def test_info_exits_non_zero_after_an_error_line(cytonet, tmp_path):
    root = tmp_path / "root"
    write_zarr(root / "good", values((40, 40), "int16"))
    (root / "bad").mkdir(parents=True)
    (root / "bad" / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [10, 10], "chunks": [5, 5], "dtype": "<u2", "compressor": {"id": "lzma"},
        "fill_value": 0, "order": "C", "filters": None}))
    result = cytonet.run(cytonet.cli, "info", root, check=False)
    assert result.returncode != 0, result
    assert "ERROR" in result.stdout and "lzma" in result.stdout, result.stdout
    assert "good  int16 [40, 40]" in result.stdout, result.stdout  # the rest is still listed
    assert "1 error" in result.stderr, result.stderr
    # A healthy tree still exits 0.
    (root / "bad" / ".zarray").unlink()
    assert cytonet.run(cytonet.cli, "info", root).returncode == 0


# ---- the zlib compressor ----

def read_raw(cytonet, root, path, tmp_path):
    out = tmp_path / "out.raw"
    cytonet.read(root, path, out)
    return out.read_bytes()


@pytest.mark.parametrize("dtype,separator", [("int16", "."), ("uint8", "/"), ("float64", ".")])
def test_we_read_zarr_python_v2_zlib(cytonet, tmp_path, dtype, separator):
    import numcodecs
    data = values((130, 250), dtype, seed=2)
    root = tmp_path / "root"
    write_zarr(root / "arr", data, chunks=(50, 60), zarr_format=2, compressors=numcodecs.Zlib(level=1),
               chunk_key_encoding={"name": "v2", "separator": separator})
    assert json.loads((root / "arr" / ".zarray").read_text())["compressor"] == {"id": "zlib", "level": 1}
    assert read_raw(cytonet, root, "arr", tmp_path) == data.tobytes()


def test_we_read_tensorstore_v2_zlib(cytonet, tmp_path):
    data = values((100, 90), "int16", seed=3)
    root = tmp_path / "root"
    store = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(root / "arr")}, "create": True,
                     "metadata": {"shape": list(data.shape), "chunks": [32, 64], "dtype": "<i2",
                                  "compressor": {"id": "zlib", "level": 6}}}).result()
    store.write(data).result()
    assert read_raw(cytonet, root, "arr", tmp_path) == data.tobytes()


def test_we_read_zarr_python_v3_numcodecs_zlib(cytonet, tmp_path):
    from zarr.codecs.numcodecs import Zlib
    data = values((70, 80), "uint16", seed=4)
    root = tmp_path / "root"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "numcodecs codecs are not in the Zarr v3 specification"
        write_zarr(root / "arr", data, compressors=[Zlib(level=5)])
    assert read_raw(cytonet, root, "arr", tmp_path) == data.tobytes()


# ---- the Python module ----

@pytest.fixture(scope="module")
def module(cytonet):
    """The Python module, from the build tree the tests were given."""
    sys.path.insert(0, str(cytonet.cli.parent.parent / "python"))
    return importlib.import_module("cytonet")


def make_dataset(root, dtype, brain="B01", section="0001"):
    """A schema-1 dataset of one section with one level, written by zarr-python (no index/)."""
    zarr.open_group(str(root), mode="w").attrs["cytonet"] = {
        "schema_version": 1, "brains": [{"name": brain, "sections": [section]}]}
    group = zarr.open_group(str(root / "sections" / brain / section), mode="w")
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}]}]}
    data = values((128, 128), dtype, seed=6)
    arr = group.create_array("0", shape=data.shape, dtype=dtype, chunks=(32, 32), shards=(64, 64), fill_value=0,
                             dimension_names=["y", "x"])
    arr[:] = data
    group.attrs["cytonet"] = {"ingest": {"complete": True, "levels": [{
        "shape": [128, 128], "chunks_stored": 16, "chunks_skipped": 0, "shards_stored": 4, "bytes_stored": 0}]}}
    return data


@pytest.mark.parametrize("cache_mb", [2**50, (2**40 >> 20) + 1, -1])
def test_open_refuses_cache_sizes_out_of_range(module, tmp_path, cache_mb):
    make_dataset(tmp_path, "uint8")
    with pytest.raises(ValueError, match="cache_mb"):
        module.open(str(tmp_path), cache_mb=cache_mb)
    module.open(str(tmp_path), cache_mb=2**40 >> 20)  # the largest allowed is fine


@pytest.mark.parametrize("argument,value", [("threads", 100000), ("threads", 0), ("ring_depth", 0),
                                            ("ring_depth", 100000)])
def test_loader_refuses_thread_and_ring_counts_out_of_range(module, tmp_path, argument, value):
    make_dataset(tmp_path, "uint8")
    ds = module.open(str(tmp_path))
    with pytest.raises(ValueError, match=argument):
        ds.loader(batch_size=2, patch_size=8, **{argument: value})


def test_error_messages_keep_non_utf8_file_names(module, tmp_path):
    missing = os.fsencode(tmp_path) + b"/no-such-\xff-dataset"
    with pytest.raises(KeyError) as error:
        module.open(missing)
    message = error.value.args[0]
    assert "no-such-\\xff-dataset" in message, repr(message)


def test_read_box_names_a_level_that_is_not_uint8(module, tmp_path):
    make_dataset(tmp_path / "ds", "int16")
    ds = module.open(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match=r"B01/0001 level 0 is int16; read_box reads uint8"):
        ds.read_box("B01", "0001", level=0, box=(0, 0, 16, 16))
    with pytest.raises(ValueError, match="level 0 is int16; patches are uint8"):
        ds.read("B01", "0001", level=0, centre=(20.0, 20.0), size=16)


# Reads a box, truncates its shard in place, and reads the box again.
TRUNCATE_CHILD = """
import os, sys
sys.path.insert(0, sys.argv[1])
import cytonet
ds = cytonet.open(sys.argv[2], map_files=sys.argv[3] == "1")
ds.read_box("B01", "0001", level=0, box=(0, 0, 64, 64))
os.truncate(sys.argv[4], 0)
try:
    ds.read_box("B01", "0001", level=0, box=(0, 0, 64, 64))
except Exception as error:
    print(type(error).__name__, error)
    sys.exit(3)
print("read a truncated shard")
"""


def test_map_files_false_turns_a_shard_truncated_in_place_into_an_error(module, cytonet, tmp_path):
    data = make_dataset(tmp_path / "ds", "uint8")
    ds = module.open(str(tmp_path / "ds"), map_files=False)
    np.testing.assert_array_equal(ds.read_box("B01", "0001", level=0, box=(0, 0, 128, 128)), data)
    assert "map_files" in module.open.__doc__ and "SIGBUS" in module.open.__doc__
    shard = tmp_path / "ds" / "sections" / "B01" / "0001" / "0" / "c" / "0" / "0"
    assert shard.is_file()

    def run(map_files):
        copy = tmp_path / f"ds{map_files}"
        shutil.copytree(tmp_path / "ds", copy)
        target = copy / shard.relative_to(tmp_path / "ds")
        return subprocess.run([sys.executable, "-c", TRUNCATE_CHILD, str(cytonet.cli.parent.parent / "python"),
                               str(copy), map_files, str(target)], capture_output=True, text=True, timeout=120)

    unmapped = run("0")
    assert unmapped.returncode == 3, unmapped
    assert "truncated" in unmapped.stdout and "c/0/0" in unmapped.stdout, unmapped.stdout
    # The documented hazard of the default: the mapped pages are gone, the process dies.
    mapped = run("1")
    assert mapped.returncode == -signal.SIGBUS, mapped


def test_open_refuses_a_folder_that_is_not_a_cytonet_dataset(module, tmp_path):
    zarr.open_group(str(tmp_path / "plain"), mode="w")  # a Zarr group, but not ours
    for folder in (tmp_path, tmp_path / "plain"):
        with pytest.raises(KeyError, match="is not a cytonet dataset"):
            module.open(str(folder))


def test_open_refuses_a_newer_schema_version(module, tmp_path):
    make_dataset(tmp_path, "uint8")
    group = zarr.open_group(str(tmp_path), mode="r+")
    group.attrs["cytonet"] = {**group.attrs["cytonet"], "schema_version": 99}
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        module.open(str(tmp_path))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "uint64"])
def test_open_array_reads_what_zarr_python_wrote_element_for_element(module, tmp_path, dtype):
    """Any array, not only a dataset's: values, dtype and C-order strides as zarr-python has them
    (sharded and not, a box that passes the array's end reads the fill value there)."""
    rng = np.random.default_rng(5)
    data = (rng.integers(-1000, 1000, (300, 200)) if dtype != "uint8" else rng.integers(0, 255, (300, 200))).astype(dtype)
    for name, shards in (("sharded", (128, 128)), ("plain", None)):
        array = zarr.create_array(str(tmp_path / name), shape=data.shape, chunks=(64, 64), shards=shards, dtype=dtype,
                                  fill_value=7)
        array[:] = data
        ours = module.open_array(str(tmp_path), name)
        assert ours.shape == [300, 200] and ours.dtype == np.dtype(dtype)
        got = ours.read((250, 10), (60, 150))
        assert got.dtype == np.dtype(dtype) and got.strides == (150 * data.itemsize, data.itemsize)
        np.testing.assert_array_equal(got[:50], data[250:300, 10:160])
        assert (got[50:] == 7).all()


def test_reads_release_the_gil_so_other_python_threads_run_meanwhile(module, tmp_path):
    """With forced GIL switches off (a switch interval of 1000 s), a thread that yields the GIL
    after every step can only take a step while the main thread gives the GIL up: during read
    calls that release it, never during calls that hold it. Deterministic, whatever the load."""
    rng = np.random.default_rng(9)
    zarr.create_array(str(tmp_path / "big"), shape=(4096, 4096), chunks=(512, 512), shards=(2048, 2048),
                      dtype="uint8", fill_value=255)[:] = rng.integers(0, 255, (4096, 4096), dtype=np.uint8)
    array = module.open_array(str(tmp_path), "big")
    array.read((0, 0), (4096, 4096))  # the first read also starts the thread pool
    stop, steps = threading.Event(), [0]

    def stepper():
        while not stop.is_set():
            steps[0] += 1
            time.sleep(0)  # gives the GIL up; takes it back only when the main thread lets go

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    thread = threading.Thread(target=stepper)
    try:
        thread.start()
        time.sleep(0.01)  # the main thread blocks: the stepper runs
        during = 0
        for _ in range(20):
            before = steps[0]
            array.read((0, 0), (4096, 4096))
            during += steps[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        thread.join()
    assert during > 20, f"the other thread took {during} steps during 20 reads: the reads held the GIL"


def test_read_arrays_reuse_freed_memory_and_never_share_live_memory(module, tmp_path):
    """Arrays that reads return come from a pool: a freed array's memory serves the next read
    (no page faults per read), and an array still alive is never handed out again."""
    data = np.random.default_rng(6).integers(0, 255, (256, 256), dtype=np.uint8)
    zarr.create_array(str(tmp_path / "a"), shape=data.shape, chunks=(64, 64), shards=(128, 128), dtype="uint8",
                      fill_value=0)[:] = data
    array = module.open_array(str(tmp_path), "a")
    first = array.read((0, 0), (200, 200))
    address = first.__array_interface__["data"][0]
    kept = array.read((10, 10), (200, 200))
    assert kept.__array_interface__["data"][0] != address
    del first
    again = array.read((20, 20), (200, 200))
    assert again.__array_interface__["data"][0] == address  # the freed one, reused
    np.testing.assert_array_equal(kept, data[10:210, 10:210])  # untouched by the later reads
    np.testing.assert_array_equal(again, data[20:220, 20:220])
    assert again.flags["C_CONTIGUOUS"] and again.flags["WRITEABLE"] and again.flags["OWNDATA"] is False


def test_read_shapes_that_are_negative_or_too_large_are_clear_errors(module, tmp_path):
    zarr.create_array(str(tmp_path / "a"), shape=(64, 64), chunks=(32, 32), dtype="uint8", fill_value=0)[:] = 1
    array = module.open_array(str(tmp_path), "a")
    with pytest.raises(ValueError, match=r"read shape \(-4, 4\) has a negative extent"):
        array.read((0, 0), (-4, 4))
    with pytest.raises(ValueError, match="too large"):
        array.read((0, 0), (1 << 40, 1 << 40))

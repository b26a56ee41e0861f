"""Byte-level interop with zarr-python 3 and tensorstore, both directions.

Fixtures are written at test time by the other libraries (or by us), never checked in.
"""
import json

import numpy as np
import pytest
import tensorstore as ts
import zarr
import zarr.codecs as zc

DTYPES = ["uint8", "uint16", "int32", "float32", "float64"]


def sample(shape, dtype, seed=0):
    """Blobs on a bright background with an empty band, cast to `dtype`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = 200 - 150 * np.exp(-(((y % 37) - 18) ** 2 + ((x % 41) - 20) ** 2) / 60.0)
    img = img + rng.normal(0, 4, shape)
    img[:, : shape[1] // 5] = 0  # background that stays unstored
    return img.astype(dtype)


def inner_codecs(kind, dtype):
    endian = {"name": "bytes", "configuration": {"endian": "little"}}
    size = np.dtype(dtype).itemsize
    compressors = {
        "blosc": {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle" if size == 1 else "shuffle", "typesize": size, "blocksize": 0}},
        "blosc_zstd": {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3, "shuffle": "shuffle", "typesize": size, "blocksize": 0}},
        "zstd": {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
        "gzip": {"name": "gzip", "configuration": {"level": 5}},
        "crc32c": {"name": "crc32c"},
    }
    return [endian, compressors[kind]]


def v3_metadata(shape, chunks, dtype, codecs, inner=None, index_location="end", fill=0):
    if inner:
        codecs = [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": inner, "codecs": codecs,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": index_location}}]
    return {"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": fill, "codecs": codecs, "dimension_names": ["y", "x"]}


def write_ours(cytonet, tmp_path, metadata, data, path="arr", tile=None):
    (tmp_path / "meta.json").write_text(json.dumps(metadata))
    data.tofile(tmp_path / "data.raw")
    args = [cytonet.helper, "write", tmp_path / "root", path, tmp_path / "meta.json", tmp_path / "data.raw"]
    if tile:
        args.append(tile)
    cytonet.run(*args)
    return tmp_path / "root"


def read_ours(cytonet, root, path, shape, dtype, tmp_path, box=None):
    out = tmp_path / "out.raw"
    cytonet.read(root, path, out, box)
    return np.fromfile(out, dtype=dtype).reshape(shape)


def read_tensorstore(root, path, zarr_format=3):
    driver = "zarr3" if zarr_format == 3 else "zarr"
    store = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(root / path)}}).result()
    return store.read().result()


# ---- we write, they read ----

WRITE_CASES = [
    ("sharded_end_blosc", "blosc", [64, 64], "end"),
    ("sharded_start_blosc", "blosc", [32, 64], "start"),
    ("sharded_zstd", "zstd", [64, 32], "end"),
    ("sharded_gzip", "gzip", [64, 64], "start"),
    ("sharded_crc32c", "crc32c", [64, 64], "end"),
    ("unsharded_blosc_zstd", "blosc_zstd", None, None),
    ("unsharded_gzip", "gzip", None, None),
]


@pytest.mark.parametrize("name,kind,inner,location", WRITE_CASES, ids=[c[0] for c in WRITE_CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_they_read_what_we_write(cytonet, tmp_path, name, kind, inner, location, dtype):
    data = sample((300, 450), dtype)
    meta = v3_metadata([300, 450], [128, 128], dtype, inner_codecs(kind, dtype), inner, location or "end")
    root = write_ours(cytonet, tmp_path, meta, data, tile=100 if inner else None)
    np.testing.assert_array_equal(zarr.open_array(root / "arr", mode="r")[:], data)
    np.testing.assert_array_equal(read_tensorstore(root, "arr"), data)
    # And back through our reader, with a box partly outside the array.
    got = read_ours(cytonet, root, "arr", (100, 100), dtype, tmp_path, box="250:350,400:500")
    expected = np.zeros((100, 100), dtype)
    expected[:50, :50] = data[250:300, 400:450]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("separator", [".", "/"])
@pytest.mark.parametrize("compressor", [
    {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    {"id": "zstd", "level": 3},
    {"id": "gzip", "level": 4},
    None,
])
def test_they_read_our_v2(cytonet, tmp_path, separator, compressor):
    data = sample((130, 250), "uint16")
    meta = {"zarr_format": 2, "shape": [130, 250], "chunks": [64, 64], "dtype": "<u2",
            "compressor": compressor, "fill_value": 0, "order": "C", "filters": None,
            "dimension_separator": separator}
    root = write_ours(cytonet, tmp_path, meta, data)
    np.testing.assert_array_equal(zarr.open_array(root / "arr", mode="r")[:], data)
    np.testing.assert_array_equal(read_tensorstore(root, "arr", zarr_format=2), data)


def test_they_read_our_v2_fortran_big_endian(cytonet, tmp_path):
    data = sample((70, 90), "uint16")
    meta = {"zarr_format": 2, "shape": [70, 90], "chunks": [32, 32], "dtype": ">u2",
            "compressor": {"id": "zstd", "level": 1}, "fill_value": 0, "order": "F", "filters": None}
    root = write_ours(cytonet, tmp_path, meta, data)
    written = json.loads((root / "arr" / ".zarray").read_text())
    assert (written["order"], written["dtype"]) == ("F", ">u2")
    np.testing.assert_array_equal(zarr.open_array(root / "arr", mode="r")[:], data)
    np.testing.assert_array_equal(read_tensorstore(root, "arr", zarr_format=2), data)


def test_fill_value_and_empty_chunks_match(cytonet, tmp_path):
    data = np.full((256, 256), 255, np.uint8)
    data[200:210, 200:210] = 7
    meta = v3_metadata([256, 256], [128, 128], "uint8", inner_codecs("blosc", "uint8"), [64, 64], fill=255)
    root = write_ours(cytonet, tmp_path, meta, data)
    shards = sorted(p.relative_to(root / "arr").as_posix() for p in (root / "arr" / "c").rglob("*") if p.is_file())
    assert shards == ["c/1/1"]  # all-fill shards are not stored
    np.testing.assert_array_equal(zarr.open_array(root / "arr", mode="r")[:], data)
    np.testing.assert_array_equal(read_tensorstore(root, "arr"), data)


# ---- they write, we read ----

ZARR_PY_CODECS = {
    "blosc": lambda: [zc.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
    "zstd": lambda: [zc.ZstdCodec(level=3, checksum=True)],
    "gzip": lambda: [zc.GzipCodec(level=5)],
    "crc32c": lambda: [zc.Crc32cCodec()],
}


@pytest.mark.parametrize("codec", sorted(ZARR_PY_CODECS))
@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "unsharded"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_we_read_zarr_python(cytonet, tmp_path, codec, sharded, dtype):
    data = sample((300, 450), dtype, seed=3)
    root = tmp_path / "root"
    arr = zarr.create_array(store=str(root / "arr"), shape=data.shape, dtype=dtype,
                            chunks=(64, 64), shards=(128, 128) if sharded else None,
                            compressors=ZARR_PY_CODECS[codec](), fill_value=0,
                            dimension_names=["y", "x"])
    arr[:] = data
    np.testing.assert_array_equal(read_ours(cytonet, root, "arr", data.shape, dtype, tmp_path), data)
    got = read_ours(cytonet, root, "arr", (77, 301), dtype, tmp_path, box="101:178,13:314")
    np.testing.assert_array_equal(got, data[101:178, 13:314])


@pytest.mark.parametrize("index_location", ["start", "end"])
def test_we_read_tensorstore_sharded(cytonet, tmp_path, index_location):
    data = sample((300, 450), "uint8", seed=4)
    root = tmp_path / "root"
    store = ts.open({
        "driver": "zarr3", "kvstore": {"driver": "file", "path": str(root / "arr")}, "create": True,
        "metadata": {
            "shape": list(data.shape), "data_type": "uint8", "dimension_names": ["y", "x"],
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [128, 128]}},
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [32, 64],
                "codecs": [{"name": "bytes"}, {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3, "shuffle": "bitshuffle", "typesize": 1}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": index_location}}],
        }}).result()
    store.write(data).result()
    np.testing.assert_array_equal(read_ours(cytonet, root, "arr", data.shape, "uint8", tmp_path), data)


@pytest.mark.parametrize("separator", [".", "/"])
@pytest.mark.parametrize("compressor", ["blosc", "zstd", "gzip", None])
def test_we_read_zarr_python_v2(cytonet, tmp_path, separator, compressor):
    import numcodecs
    compressors = {"blosc": numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE),
                   "zstd": numcodecs.Zstd(level=2), "gzip": numcodecs.GZip(level=3), None: None}
    data = sample((130, 250), "float32", seed=5)
    root = tmp_path / "root"
    arr = zarr.create_array(store=str(root / "arr"), shape=data.shape, dtype="float32", chunks=(50, 60),
                            zarr_format=2, compressors=compressors[compressor], fill_value=0,
                            chunk_key_encoding={"name": "v2", "separator": separator})
    arr[:] = data
    np.testing.assert_array_equal(read_ours(cytonet, root, "arr", data.shape, "float32", tmp_path), data)


def test_we_read_nan_fill_and_missing_chunks(cytonet, tmp_path):
    root = tmp_path / "root"
    arr = zarr.create_array(store=str(root / "arr"), shape=(100, 100), dtype="float32", chunks=(30, 30),
                            fill_value=float("nan"))
    arr[0:30, 0:30] = 1.5
    got = read_ours(cytonet, root, "arr", (100, 100), "float32", tmp_path)
    assert np.all(got[:30, :30] == 1.5)
    assert np.isnan(got[30:, 30:]).all()

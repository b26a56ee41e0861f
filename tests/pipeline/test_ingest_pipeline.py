"""Phantom → slides (ours, vips-converted, HDF5) → cytonet ingest → read back by
zarr-python, tensorstore and numpy oracles. Also: failures and kill -9 then resume."""
import importlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import cv2
import h5py
import numpy as np
import pytest
import tensorstore as ts
import tifffile
import zarr

SHARD, CHUNK = "512", "128"


def downsample(a: np.ndarray) -> np.ndarray:
    """The 2×2 rule of ingest/downsample.h: mean of the in-image pixels, half up."""
    h, w = a.shape
    total = np.zeros(((h + 1) // 2, (w + 1) // 2), np.int64)
    count = np.zeros_like(total)
    for dy in (0, 1):
        for dx in (0, 1):
            part = a[dy::2, dx::2].astype(np.int64)
            total[: part.shape[0], : part.shape[1]] += part
            count[: part.shape[0], : part.shape[1]] += 1
    return ((2 * total + count) // (2 * count)).astype(np.uint8)


def source_pixels(path: pathlib.Path) -> np.ndarray:
    """Level 0 of a slide, read by third-party code."""
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return f["image"][...]
    return tifffile.imread(path, level=0)


@pytest.fixture(scope="module")
def phantom(cytonet, tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    cytonet.run(cytonet.cli, "phantom", "--out", out, "--brains", 2, "--sections", 2, "--width", 2048,
                "--height", 1536, "--formats", "tiff,hdf5", "--tile", 256, "--seed", 5, "--quiet")
    return out


@pytest.fixture(scope="module")
def vips_study(phantom, tmp_path_factory):
    """The phantom's TIFF slides rewritten by vips (a pyramid we did not write), read
    through OpenSlide, plus the same files through our libtiff reader."""
    if shutil.which("vips") is None:
        pytest.fail("vips is missing: run scripts/setup.sh")
    study = json.loads((phantom / "study.json").read_text())
    out = tmp_path_factory.mktemp("vips")
    sections = []
    for s in study["sections"]:
        if s["format"] != "tiff":
            continue
        target = out / f"{s['brain']}_{s['section']}.tif"
        subprocess.run(["vips", "tiffsave", str(phantom / s["image"]), str(target), "--tile", "--pyramid",
                        "--compression", "deflate", "--tile-width", "256", "--tile-height", "256", "--bigtiff"],
                       check=True)
        for fmt in ("openslide", "tiff"):
            sections.append({"brain": s["brain"] + fmt.upper(), "section": s["section"], "image": str(target),
                             "format": fmt, "pixel_size_um": 1.0})
    (out / "study.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections}))
    return out / "study.json"


def ingest(cytonet, study, out, *extra, check=True):
    return cytonet.run(cytonet.cli, "ingest", study, "--out", out, "--shard", SHARD, "--chunk", CHUNK, "--quiet",
                       *extra, check=check)


@pytest.fixture(scope="module")
def dataset(cytonet, phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "dataset"
    ingest(cytonet, phantom / "study.json", out, "--no-sync")
    return out


def test_level0_equals_the_source_and_coarser_levels_are_exact_means(phantom, dataset):
    study = json.loads((phantom / "study.json").read_text())
    root = zarr.open_group(str(dataset), mode="r")
    assert {s["format"] for s in study["sections"]} == {"tiff", "hdf5"}
    for s in study["sections"]:
        image = root[f"sections/{s['brain']}/{s['section']}"]
        expected = source_pixels(phantom / s["image"])
        assert expected.shape == (1536, 2048)
        levels = sorted(image.array_keys(), key=int)
        assert levels == ["0", "1", "2"], levels  # 2048 → 1024 → 512 fits one shard
        for level in levels:
            np.testing.assert_array_equal(image[level][...], expected, err_msg=f"{s['image']} level {level}")
            expected = downsample(expected)


def test_tensorstore_reads_every_level_like_zarr_python(phantom, dataset):
    root = zarr.open_group(str(dataset), mode="r")
    for brain in root["sections"].group_keys():
        for section in root[f"sections/{brain}"].group_keys():
            for level in ("0", "1", "2"):
                path = dataset / "sections" / brain / section / level
                store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}).result()
                np.testing.assert_array_equal(store.read().result(), root[f"sections/{brain}/{section}/{level}"][...])


def test_ome_metadata_and_dataset_attributes(dataset):
    from ome_zarr_models.v05.image import Image

    root = json.loads((dataset / "zarr.json").read_text())["attributes"]["cytonet"]
    assert root["schema_version"] == 2
    assert [b["name"] for b in root["brains"]] == ["PB01", "PB02"]
    group = zarr.open_group(str(dataset), mode="r")[f"sections/PB01/{root['brains'][0]['sections'][0]}"]
    Image.from_zarr(group)
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    for k, d in enumerate(datasets):
        scale, translation = d["coordinateTransformations"]
        assert scale["scale"] == [2.0**k, 2.0**k]
        assert translation["translation"] == [(2**k - 1) / 2, (2**k - 1) / 2]
    manifest = group.attrs["cytonet"]["ingest"]
    assert manifest["complete"] is True
    assert manifest["levels"][0]["chunks_skipped"] > 0  # background chunks are not stored


def test_vips_pyramids_read_through_openslide_and_libtiff(cytonet, phantom, vips_study, tmp_path):
    out = tmp_path / "dataset"
    ingest(cytonet, vips_study, out, "--no-sync")
    root = zarr.open_group(str(out), mode="r")
    for s in json.loads(vips_study.read_text())["sections"]:
        original = phantom / s["brain"].replace("OPENSLIDE", "").replace("TIFF", "") / f"{s['section']}.tif"
        expected = source_pixels(original)
        got = root[f"sections/{s['brain']}/{s['section']}/0"][...]
        np.testing.assert_array_equal(got, expected, err_msg=f"{s['format']} reading {s['image']}")
        np.testing.assert_array_equal(root[f"sections/{s['brain']}/{s['section']}/1"][...], downsample(expected))


def test_failed_sections_are_reported_and_do_not_stop_the_others(cytonet, phantom, tmp_path):
    study = json.loads((phantom / "study.json").read_text())
    good = study["sections"][0]
    truncated = tmp_path / "truncated.tif"
    data = (phantom / good["image"]).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    sections = [dict(good, image=str(phantom / good["image"]), points=None, transform=None),
                {"brain": "BAD", "section": "0001", "image": str(tmp_path / "missing.tif")},
                {"brain": "BAD", "section": "0002", "image": str(truncated), "pixel_size_um": 1.0},
                dict(good, brain="BAD", section="0003", image=str(phantom / good["image"]), width=9999)]
    for s in sections:
        for key in ("points", "transform"):
            s.pop(key, None)
    (tmp_path / "study.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections}))
    result = ingest(cytonet, tmp_path / "study.json", tmp_path / "ds", "--no-sync", "--report", tmp_path / "r.json",
                    check=False)
    assert result.returncode == 3, result.stderr
    report = {f"{r['brain']}/{r['section']}": r for r in json.loads((tmp_path / "r.json").read_text())}
    assert report[f"{good['brain']}/{good['section']}"]["state"] == "ingested"
    assert "missing.tif" in report["BAD/0001"]["error"]
    assert "truncated.tif" in report["BAD/0002"]["error"]
    assert "9999" in report["BAD/0003"]["error"]
    assert "3 failed" in result.stdout
    brains = json.loads((tmp_path / "ds" / "zarr.json").read_text())["attributes"]["cytonet"]["brains"]
    assert [b["name"] for b in brains] == [good["brain"]]


def tree(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_kill_minus_9_at_any_moment_then_resume_gives_the_same_dataset(cytonet, tmp_path):
    slides = tmp_path / "slides"
    cytonet.run(cytonet.cli, "phantom", "--out", slides, "--brains", 1, "--sections", 3, "--width", 4096,
                "--height", 3072, "--tile", 256, "--seed", 9, "--masks", 0, "--quiet")
    study = slides / "study.json"
    reference = tmp_path / "reference"
    ingest(cytonet, study, reference, "--threads", "1")
    # Kill points are counted in writes (Put/Erase), not in seconds: each run dies at the
    # chosen point however loaded the machine is (the flaky timing version killed 2-3 times).
    writes = len(tree(reference))
    assert writes > 20, writes

    resumed = tmp_path / "resumed"
    args = [str(cytonet.cli), "ingest", str(study), "--out", str(resumed), "--shard", SHARD, "--chunk", CHUNK,
            "--quiet", "--threads", "1"]
    # Three sections of about writes/3 each: die before any write, after one, inside the first
    # section, then twice after one more section is complete (the re-run skips it).
    kill_points = [1, 2] + [max(3, int(writes * fraction)) for fraction in (0.2, 0.45, 0.45)]
    for point in kill_points:
        environment = dict(os.environ, CYTONET_TEST_KILL_BEFORE_WRITE=str(point))
        process = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
        assert process.returncode == -signal.SIGKILL, (point, process.returncode)
    result = ingest(cytonet, study, resumed, "--threads", "1")
    assert "0 failed" in result.stdout
    expected, got = tree(reference), tree(resumed)
    assert sorted(got) == sorted(expected)  # no leftover temporaries, nothing missing
    for name in expected:
        assert got[name] == expected[name], name


def test_mpirun_with_two_ranks_makes_the_same_dataset_as_one_process(cytonet, phantom, dataset, tmp_path):
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.fail("mpirun is missing: run scripts/setup.sh")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    out = tmp_path / "dataset"
    result = subprocess.run([mpirun, "-np", "2", str(cytonet.cli), "ingest", str(phantom / "study.json"), "--out",
                             str(out), "--shard", SHARD, "--chunk", CHUNK, "--quiet", "--no-sync"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 MPI ranks" in result.stdout
    assert result.stdout.count("ingested") >= 4  # one summary, from rank 0 only
    expected, got = tree(dataset), tree(out)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name


def numpy_transform(transform: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Section px → MNI mm, written from the transform file's definition."""
    a = np.array(transform["affine"], dtype=np.float64)
    mni = (a @ np.stack([x, y, np.ones_like(x)]))
    if "displacement" in transform:
        d = transform["displacement"]
        rows, cols = d["nodes"]
        sy, sx = d["spacing_px"]
        values = np.array(d["values_mm"], dtype=np.float64).reshape(rows, cols, 3)
        fx = np.clip(x / sx, 0, cols - 1)
        fy = np.clip(y / sy, 0, rows - 1)
        j0 = np.minimum(np.floor(fx).astype(int), max(cols - 2, 0))
        i0 = np.minimum(np.floor(fy).astype(int), max(rows - 2, 0))
        j1, i1 = np.minimum(j0 + 1, cols - 1), np.minimum(i0 + 1, rows - 1)
        tx, ty = (fx - j0)[:, None], (fy - i0)[:, None]
        mni += ((1 - ty) * ((1 - tx) * values[i0, j0] + tx * values[i0, j1])
                + ty * ((1 - tx) * values[i1, j0] + tx * values[i1, j1])).T
    return mni


def test_index_coordinates_equal_numpy_and_radius_queries_equal_brute_force(cytonet, phantom, dataset, tmp_path):
    ds = tmp_path / "dataset"
    shutil.copytree(dataset, ds)
    result = cytonet.run(cytonet.cli, "index", phantom / "study.json", "--dataset", ds, "--patch-size", 256)
    assert "dropped:" in result.stdout
    root = zarr.open_group(str(ds), mode="r")
    index = root["index"]
    attrs = index.attrs["cytonet"]["index"]
    sections = [(s["brain"], s["section"]) for s in attrs["sections"]]
    columns = {name: index[name][...] for name in index.array_keys()}
    n = attrs["rows"]
    assert n > 1000 and all(len(c) == n for c in columns.values())
    study = json.loads((phantom / "study.json").read_text())
    kept = 0
    for s in study["sections"]:
        sid = sections.index((s["brain"], s["section"]))
        rows = columns["section"] == sid
        kept += rows.sum()
        points = np.genfromtxt(phantom / s["points"], delimiter=",", names=True, dtype=None, encoding="utf-8")
        by_id = {int(p["point_id"]): p for p in points}
        ids = columns["point_id"][rows]
        x = np.array([by_id[i]["x_px"] for i in ids], dtype=np.float64)
        y = np.array([by_id[i]["y_px"] for i in ids], dtype=np.float64)
        np.testing.assert_array_equal(columns["x_px"][rows], x)
        expected = numpy_transform(json.loads((phantom / s["transform"]).read_text()), x, y)
        for axis, name in enumerate(("mni_x", "mni_y", "mni_z")):
            np.testing.assert_allclose(columns[name][rows], expected[axis], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(columns["area"][rows], [by_id[i]["area"] for i in ids])
        assert (columns["tissue_fraction"][rows] >= 0.5).all()
    assert kept == n
    stats = attrs["stats"]
    assert stats["kept"] == n
    assert stats["points_read"] == n + stats["dropped_low_tissue"]
    assert stats["dropped_low_tissue"] > 0  # displaced points and points at the brain's edge

    mni = np.stack([columns["mni_x"], columns["mni_y"], columns["mni_z"]], axis=1)
    centre = mni[n // 3]
    result = cytonet.run(cytonet.cli, "query", ds, "--mni", ",".join(map(str, centre)), "--radius", 4,
                         "--limit", 1000000)
    got = sorted(int(line.split()[0]) for line in result.stdout.splitlines()[2:])
    expected_rows = np.flatnonzero(np.linalg.norm(mni - centre, axis=1) <= 4)
    assert got == sorted(expected_rows.tolist()) and len(got) > 1


def test_index_bad_points_stop_with_an_error_or_are_counted(cytonet, phantom, dataset, tmp_path):
    ds = tmp_path / "dataset"
    shutil.copytree(dataset, ds)
    study = json.loads((phantom / "study.json").read_text())
    first = study["sections"][0]
    bad = tmp_path / "bad.points.csv"
    bad.write_text("point_id,x_px,y_px\n0,100.5,200.5\n1,nan,3\n2,99999,5\n")
    sections = [dict(first, image=str(phantom / first["image"]), points=str(bad),
                     transform=str(phantom / first["transform"])),
                {"brain": "GONE", "section": "0001", "image": str(tmp_path / "x.tif"), "points": str(bad)}]
    (tmp_path / "study.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections}))
    failed = cytonet.run(cytonet.cli, "index", tmp_path / "study.json", "--dataset", ds, check=False)
    assert failed.returncode != 0 and "bad.points.csv" in failed.stderr and "point 1" in failed.stderr
    dropped = cytonet.run(cytonet.cli, "index", tmp_path / "study.json", "--dataset", ds, "--drop-bad-points",
                          "--min-tissue", 0)
    assert "1 NaN" in dropped.stdout and "1 outside the image" in dropped.stdout
    assert "3 of sections not in the dataset" in dropped.stdout
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("x_px,y_px\n1,2\n3\n")
    sections[0]["points"] = str(malformed)
    (tmp_path / "study.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections[:1]}))
    broken = cytonet.run(cytonet.cli, "index", tmp_path / "study.json", "--dataset", ds, check=False)
    assert broken.returncode != 0 and "malformed.csv' line 3" in broken.stderr


def test_verify_finds_bad_checksums_undecodable_chunks_and_unfinished_sections(cytonet, dataset, tmp_path):
    ds = tmp_path / "dataset"
    shutil.copytree(dataset, ds)
    clean = cytonet.run(cytonet.cli, "verify", ds, "--decode")
    assert "0 damaged" in clean.stdout

    sections = sorted(p for p in (ds / "sections").glob("*/*") if p.is_dir())
    # 1. A flipped bit in a shard index's checksum.
    crc_shard = next((sections[0] / "0" / "c").rglob("*"))
    while crc_shard.is_dir():
        crc_shard = next(crc_shard.iterdir())
    data = bytearray(crc_shard.read_bytes())
    data[-1] ^= 0x01
    crc_shard.write_bytes(bytes(data))
    # 2. A garbled blosc header inside an inner chunk (index still valid).
    chunk_shard = next(p for p in (sections[1] / "0").rglob("*") if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk_shard.read_bytes())
    n = (int(SHARD) // int(CHUNK)) ** 2
    entries = np.frombuffer(bytes(data[-(16 * n + 4):-4]), dtype="<u8").reshape(n, 2)
    offset = int(next(e[0] for e in entries if e[0] != 2**64 - 1))
    data[offset:offset + 16] = b"\xff" * 16
    chunk_shard.write_bytes(bytes(data))
    # 3. A section whose ingest never finished.
    (sections[2] / "zarr.json").unlink()
    # 4. A lost shard (it would read as background): only the manifest's counts reveal it.
    lost = next(p for p in (sections[3] / "0" / "c").rglob("*") if p.is_file())
    lost.unlink()

    quick = cytonet.run(cytonet.cli, "verify", ds, check=False)
    assert quick.returncode == 3
    assert "checksum" in quick.stdout and crc_shard.name in quick.stdout
    assert "did not finish" in quick.stdout
    assert "lists " in quick.stdout  # the root lists the unfinished section
    assert "the manifest recorded" in quick.stdout
    full = cytonet.run(cytonet.cli, "verify", ds, "--decode", check=False)
    assert full.returncode == 3 and "inner chunk" in full.stdout and "4 damaged" in full.stdout


def test_verify_finds_complete_sections_the_root_does_not_list(cytonet, dataset, tmp_path):
    ds = tmp_path / "dataset"
    shutil.copytree(dataset, ds)
    root = json.loads((ds / "zarr.json").read_text())
    dropped = root["attributes"]["cytonet"]["brains"][0]["sections"].pop()
    (ds / "zarr.json").write_text(json.dumps(root))  # as if the job was killed before finalising
    result = cytonet.run(cytonet.cli, "verify", ds, check=False)
    assert result.returncode == 3 and f"does not list PB01/{dropped}" in result.stdout


def test_what_we_write_matches_the_schemas(cytonet, phantom, dataset, tmp_path):
    import jsonschema

    schemas = pathlib.Path(__file__).resolve().parents[2] / "schemas"
    load = lambda name: json.loads((schemas / name).read_text())  # noqa: E731
    study = json.loads((phantom / "study.json").read_text())
    jsonschema.validate(study, load("study.schema.json"))
    for s in study["sections"]:
        jsonschema.validate(json.loads((phantom / s["transform"]).read_text()), load("transform.schema.json"))
    ds = tmp_path / "dataset"
    shutil.copytree(dataset, ds)
    cytonet.run(cytonet.cli, "index", phantom / "study.json", "--dataset", ds, "--patch-size", 256)
    dataset_schema = load("dataset.schema.json")

    def check(instance, definition):
        jsonschema.validate(instance, {**dataset_schema, "$ref": f"#/$defs/{definition}"})

    root = zarr.open_group(str(ds), mode="r")
    check(root.attrs["cytonet"], "root")
    check(root["index"].attrs["cytonet"]["index"], "index")
    for brain in root["sections"].group_keys():
        for section in root[f"sections/{brain}"].group_keys():
            check(root[f"sections/{brain}/{section}"].attrs["cytonet"]["ingest"], "manifest")
    transform_schema = load("transform.schema.json")
    for brain in root["transforms"].group_keys():
        for section in root[f"transforms/{brain}"].group_keys():
            jsonschema.validate(root[f"transforms/{brain}/{section}"].attrs["cytonet"]["transform"], transform_schema)
    assert sum(1 for b in root["transforms"].group_keys() for _ in root[f"transforms/{b}"].group_keys()) == 4
    # The schemas reject what they should.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"cytonet_study": 1, "sections": [{"brain": "../x", "section": "1", "image": "a"}]},
                            load("study.schema.json"))
    with pytest.raises(jsonschema.ValidationError):
        check(dict(root["index"].attrs["cytonet"]["index"], units="cm"), "index")


def test_index_under_mpirun_writes_rows_with_mpi_io_identical_to_one_process(cytonet, phantom, dataset, tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    shutil.copytree(dataset, single)
    shutil.copytree(dataset, parallel)
    cytonet.run(cytonet.cli, "index", phantom / "study.json", "--dataset", single, "--patch-size", 256)
    for ranks in ("2", "3"):  # 3 ranks over 4 sections: uneven blocks
        result = subprocess.run([shutil.which("mpirun"), "-np", ranks, str(cytonet.cli), "index",
                                 str(phantom / "study.json"), "--dataset", str(parallel), "--patch-size", "256"],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"{ranks} MPI ranks" in result.stdout
        expected, got = tree(single), tree(parallel)
        assert sorted(got) == sorted(expected)
        for name in expected:
            assert got[name] == expected[name], name


def test_index_under_mpirun_refuses_a_symlinked_index_folder_and_writes_nothing_outside(cytonet, phantom, dataset,
                                                                                       tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    copy, outside = tmp_path / "dataset", tmp_path / "outside"
    shutil.copytree(dataset, copy)
    shutil.rmtree(copy / "index", ignore_errors=True)
    outside.mkdir()
    (copy / "index").symlink_to(outside, target_is_directory=True)
    result = subprocess.run([shutil.which("mpirun"), "-np", "2", str(cytonet.cli), "index", str(phantom / "study.json"),
                             "--dataset", str(copy), "--patch-size", "256"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    assert "symbolic link" in result.stdout + result.stderr, result.stderr
    assert not list(outside.rglob("*")), "index files were written through the link"


def test_rgb_jpeg_slides_read_the_same_through_libtiff_and_openslide(cytonet, phantom, tmp_path):
    """An RGB, JPEG-compressed tiled pyramid (what brightfield scanners write), made by vips:
    our libtiff path (JPEG YCbCr → RGB → BT.601 luma) and OpenSlide's must agree."""
    study = json.loads((phantom / "study.json").read_text())
    source = phantom / next(s for s in study["sections"] if s["format"] == "tiff")["image"]
    rgb = tmp_path / "rgb.v"
    subprocess.run(["vips", "colourspace", str(source), str(rgb), "srgb"], check=True)
    jpeg = tmp_path / "rgb-jpeg.tif"
    subprocess.run(["vips", "tiffsave", str(rgb), str(jpeg), "--tile", "--pyramid", "--compression", "jpeg",
                    "--Q", "90", "--tile-width", "256", "--tile-height", "256"], check=True)
    sections = [{"brain": f"RGB{fmt.upper()}", "section": "0001", "image": str(jpeg), "format": fmt,
                 "pixel_size_um": 1.0} for fmt in ("tiff", "openslide")]
    (tmp_path / "study.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections}))
    ingest(cytonet, tmp_path / "study.json", tmp_path / "ds", "--no-sync")
    root = zarr.open_group(str(tmp_path / "ds"), mode="r")
    ours = root["sections/RGBTIFF/0001/0"][...]
    openslide = root["sections/RGBOPENSLIDE/0001/0"][...]
    grey = source_pixels(source).astype(int)
    # JPEG at Q90 stays near the grey source; both readers decode the same JPEG data.
    assert np.abs(ours.astype(int) - grey).mean() < 3
    assert np.abs(ours.astype(int) - openslide.astype(int)).max() <= 1


def test_aperio_svs_reads_through_openslide_with_its_pixel_size(cytonet, phantom, tmp_path):
    """An Aperio SVS (JPEG RGB tiles, 'Aperio' description with MPP) made from the phantom with
    vips and libtiff's tiffset: OpenSlide must recognise the vendor and give the pixel size."""
    study = json.loads((phantom / "study.json").read_text())
    source = phantom / next(s for s in study["sections"] if s["format"] == "tiff")["image"]
    rgb = tmp_path / "rgb.v"
    subprocess.run(["vips", "colourspace", str(source), str(rgb), "srgb"], check=True)
    svs = tmp_path / "slide.svs"
    subprocess.run(["vips", "tiffsave", str(rgb), str(svs), "--tile", "--pyramid", "--compression", "jpeg", "--Q", "90",
                    "--tile-width", "256", "--tile-height", "256"], check=True)
    subprocess.run(["tiffset", "-s", "270", "Aperio Image Library v12.0.15\n2048x1536 [0,0 2048x1536] (256x256) "
                    "JPEG/RGB Q=90|AppMag = 20|MPP = 0.5", str(svs)], check=True)
    sections = [{"brain": "SVS", "section": "0001", "image": str(svs), "format": "openslide"},
                {"brain": "SVSTIFF", "section": "0001", "image": str(svs), "format": "tiff", "pixel_size_um": 0.5}]
    (tmp_path / "study.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections}))
    ingest(cytonet, tmp_path / "study.json", tmp_path / "ds", "--no-sync")
    root = zarr.open_group(str(tmp_path / "ds"), mode="r")
    image = root["sections/SVS/0001"]
    assert "aperio" in image.attrs["cytonet"]["ingest"]["reader"].lower()
    scale = image.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [0.5, 0.5]  # the MPP OpenSlide read from the file
    via_openslide = image["0"][...].astype(int)
    via_libtiff = root["sections/SVSTIFF/0001/0"][...].astype(int)
    assert np.abs(via_openslide - via_libtiff).max() <= 1
    assert np.abs(via_openslide - source_pixels(source).astype(int)).mean() < 3


def test_loader_commands_make_a_contact_sheet_and_time_the_loader(cytonet, phantom, dataset, tmp_path):
    ds = tmp_path / "dataset"
    shutil.copytree(dataset, ds)
    cytonet.run(cytonet.cli, "index", phantom / "study.json", "--dataset", ds, "--patch-size", 256)
    sheet = tmp_path / "sheet.png"
    result = cytonet.run(cytonet.cli, "sample", ds, "--out", sheet, "--count", 6, "--size", 96, "--level", 0,
                         "--seed", 5)
    assert "6 patches" in result.stdout
    # Decoded by OpenCV, and every cell checked against the Python module: the plain patch
    # of the sampled row on the left, the loader's augmented patch (same seed) on the right.
    image = cv2.imread(str(sheet), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8 and image.ndim == 2
    sys.path.insert(0, str(cytonet.cli.parent.parent / "python"))
    module = importlib.import_module("cytonet")
    reader = module.open(str(ds))
    batch = next(iter(reader.loader(batch_size=6, patch_size=96, level=0, seed=5, threads=1)))
    seen = np.zeros(image.shape, bool)
    columns = 2  # the sheet is near twice as wide as high: 2 columns of pairs for 6 patches
    for i, row in enumerate(batch["rows"]):
        y0, x0 = 8 + (i // columns) * (96 + 8), 8 + (i % columns) * (2 * 96 + 2 + 8)
        np.testing.assert_array_equal(image[y0:y0 + 96, x0:x0 + 96], reader.read_row(int(row), level=0, size=96))
        np.testing.assert_array_equal(image[y0:y0 + 96, x0 + 98:x0 + 194], batch["images"][i])
        seen[y0:y0 + 96, x0:x0 + 194] = True
    assert image.shape == (3 * 96 + 4 * 8, 2 * 194 + 3 * 8)
    assert (image[~seen] == 0).all()  # black gaps, nothing else drawn
    del batch
    bench = cytonet.run(cytonet.cli, "bench-loader", ds, "--size", 128, "--level", 0, "--batches", 3,
                        "--batch-size", 4)
    assert "patches/s" in bench.stdout and "per patch" in bench.stdout


def test_loader_memory_stays_under_its_documented_bound(cytonet, indexed):
    """bench-loader measures the anonymous memory the loader adds; it must not pass
    Loader::MemoryBound, and must hold at least one batch slot (the measurement is real)."""
    for extra in ([], ["--float"]):
        bench = cytonet.run(cytonet.cli, "bench-loader", indexed, "--size", 512, "--level", 0, "--batches", 12,
                            "--batch-size", 8, "--ring-depth", 3, "--threads", 2, *extra)
        added, bound = map(float, re.search(r"memory: ([\d.]+) MB added .* bound ([\d.]+) MB", bench.stdout).groups())
        slot_mb = 8 * 512 * 512 * (4 if extra else 1) / 1e6
        assert slot_mb <= added <= bound, bench.stdout


@pytest.fixture(scope="module")
def indexed(cytonet, phantom, dataset, tmp_path_factory):
    ds = tmp_path_factory.mktemp("indexed") / "dataset"
    shutil.copytree(dataset, ds)
    cytonet.run(cytonet.cli, "index", phantom / "study.json", "--dataset", ds, "--patch-size", 256)
    return ds


@pytest.fixture(scope="module")
def module(cytonet):
    """The Python module, from the build tree the tests were given."""
    sys.path.insert(0, str(cytonet.cli.parent.parent / "python"))
    import cytonet as cytonet_module
    return cytonet_module


def test_python_module_reads_equal_tensorstore_and_zarr_python(module, indexed):
    ds = module.open(str(indexed))
    root = zarr.open_group(str(indexed), mode="r")
    for name, column in ds.index.items():
        np.testing.assert_array_equal(column, root[f"index/{name}"][...], err_msg=name)
    brain, section = ds.index_sections[0]
    assert section in ds.brains()[brain]
    level1 = ts.open({"driver": "zarr3", "kvstore": {"driver": "file",
                      "path": str(indexed / "sections" / brain / section / "1")}}).result()
    rng = np.random.default_rng(0)
    for _ in range(20):
        y0, x0 = int(rng.integers(-50, 700)), int(rng.integers(-50, 950))
        got = ds.read_box(brain, section, level=1, box=(y0, x0, 64, 80))
        assert got.dtype == np.uint8 and got.shape == (64, 80)
        expected = np.full((64, 80), 255, np.uint8)  # outside the image: background
        ys, xs = slice(max(y0, 0), min(y0 + 64, 768)), slice(max(x0, 0), min(x0 + 80, 1024))
        if ys.start < ys.stop and xs.start < xs.stop:
            expected[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = level1[ys, xs].read().result()
        np.testing.assert_array_equal(got, expected)
    # A centred plain patch is the box around the centre (level-1 pixel centres).
    x, y = 401.0, 301.0  # level 0 → level 1: (x + 0.5)/2 − 0.5 = 200.25 → top-left round(200.25 − 15.5) = 185
    np.testing.assert_array_equal(ds.read(brain, section, level=1, centre=(x, y), size=32),
                                  ds.read_box(brain, section, level=1, box=(135, 185, 32, 32)))
    with pytest.raises(KeyError, match="NOPE"):
        ds.read("NOPE", "0001", level=1, centre=(1, 1), size=8)


def test_python_loader_batches_match_the_cpp_reader_and_are_deterministic(module, indexed):
    ds = module.open(str(indexed))
    loader = ds.loader(batch_size=4, patch_size=64, level=1, seed=5, threads=2, augment=False)
    count = 0
    for batch in loader:  # each batch (and its slot) is dropped before the next
        count += 1
        if count <= 5:
            for j, row in enumerate(batch["rows"]):
                np.testing.assert_array_equal(batch["images"][j], ds.read_row(int(row), level=1, size=64))
    assert count == loader.steps_per_epoch
    # Holding every slot's batch is an error, not a hang.
    held = ds.loader(batch_size=4, patch_size=64, ring_depth=2)
    kept = [next(held), next(held)]
    with pytest.raises(RuntimeError, match="ring slots are held"):
        next(held)
    del kept
    first = [b["images"].copy() for b in ds.loader(batch_size=4, patch_size=64, seed=5, threads=1, end_epoch=1)][:6]
    again = [b["images"].copy() for b in ds.loader(batch_size=4, patch_size=64, seed=5, threads=3, end_epoch=1)][:6]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    batch = next(iter(ds.loader(batch_size=4, patch_size=64, seed=5)))
    for params in batch["augmentation"]:
        assert -np.pi <= params["theta"] <= np.pi and 0 <= params["shift_mm"] <= 0.2
    # float output: the same pixels / 255.
    as_float = next(iter(ds.loader(batch_size=4, patch_size=64, seed=5, float_output=True)))
    assert as_float["images"].dtype == np.float32
    np.testing.assert_array_equal(as_float["images"], batch["images"].astype(np.float32) * np.float32(1 / 255))


def test_python_module_after_fork_refuses_the_parents_handles_and_reopens(module, indexed):
    import multiprocessing

    ds = module.open(str(indexed))
    brain, section = ds.index_sections[0]
    expected = ds.read(brain, section, level=1, centre=(401.0, 301.0), size=32)

    def child(queue):
        try:
            ds.read(brain, section, level=1, centre=(401.0, 301.0), size=32)
            queue.put("parent handle worked")
        except RuntimeError as error:
            reopened = module.open(str(indexed))
            patch = reopened.read(brain, section, level=1, centre=(401.0, 301.0), size=32)
            queue.put(("refused" if "forked child" in str(error) else str(error), patch.tobytes()))

    queue = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=child, args=(queue,))
    process.start()
    outcome = queue.get(timeout=60)
    process.join(timeout=60)
    assert outcome[0] == "refused", outcome
    assert outcome[1] == expected.tobytes()


def test_pixel_size_precedence_command_line_over_study_over_file_and_none_is_an_error(cytonet, tmp_path):
    """--pixel-size beats the study's pixel_size_um, which beats the file's resolution tags; a
    section with none of the three is an error naming its file."""
    pixels = np.random.default_rng(4).integers(0, 200, (300, 400), dtype=np.uint8)
    tagged, bare = tmp_path / "tagged.tif", tmp_path / "bare.tif"
    # 0.5 µm per pixel as the TIFF says it: 20000 pixels per centimetre.
    tifffile.imwrite(tagged, pixels, resolution=(20000, 20000), resolutionunit="CENTIMETER")
    tifffile.imwrite(bare, pixels)

    def scale_of(sections, *extra, name):
        (tmp_path / f"{name}.json").write_text(json.dumps({"cytonet_study": 1, "sections": sections}))
        result = ingest(cytonet, tmp_path / f"{name}.json", tmp_path / name, "--no-sync", *extra, check=False)
        if result.returncode != 0:
            return None, result.stdout + result.stderr
        group = zarr.open_group(str(tmp_path / name / "sections/B/0001"), mode="r")
        return group.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"], ""

    section = {"brain": "B", "section": "0001", "image": str(tagged), "format": "tiff"}
    assert scale_of([section], name="file")[0] == [0.5, 0.5]
    assert scale_of([dict(section, pixel_size_um=2.0)], name="study")[0] == [2.0, 2.0]
    assert scale_of([dict(section, pixel_size_um=2.0)], "--pixel-size", "1.25", name="cli")[0] == [1.25, 1.25]
    scale, said = scale_of([dict(section, image=str(bare))], name="none")
    assert scale is None and "bare.tif" in said and "pixel size" in said, said

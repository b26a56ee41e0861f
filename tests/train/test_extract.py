"""`cytonet extract` end to end on a small phantom: two ranks under mpirun write the same
array as one process, a kill -9 mid-extraction resumes to that array, zarr-python and the
`cytonet` module read it, the features equal PyTorch's on the same patches, and damaged
chunks, changed provenance and bad names are errors that name them."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

from test_train_cli import cli, dataset, train, write_config  # noqa: F401

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))
import cytonet_torch as ct  # noqa: E402

MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
# Small chunks: many units of work, so a kill lands between chunks and ranks share them.
COMMON = ["--chunk-rows", "32", "--torch-threads", "1", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def cytonet_module(request):
    build = pathlib.Path(request.config.getoption("--cytonet-bin")).resolve()
    sys.path.insert(0, str(build / "python"))
    import cytonet
    return cytonet


@pytest.fixture(scope="module")
def run_dir(cli, dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    train(cli, write_config(root / "c.json", dataset, root / "run", steps=4, checkpoint_every=4))
    return root / "run"


def extract(cli, dataset, name, *extra, check=True, ranks=0):
    args = [str(cli), "extract", "--dataset", str(dataset), "--name", name, *COMMON, *map(str, extra)]
    if ranks:
        args = [os.environ.get("MPIRUN", "mpirun"), "-np", str(ranks), *args]
    result = subprocess.run(args, capture_output=True, text=True, env=MPI_ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"extract failed ({result.returncode}): {result.stdout}\n{result.stderr}")
    return result


def shard(dataset, name):
    return pathlib.Path(dataset) / "features" / name / "c" / "0" / "0"


@pytest.fixture(scope="module")
def one_process(cli, dataset, run_dir):
    extract(cli, dataset, "one", "--checkpoint", run_dir)
    return shard(dataset, "one").read_bytes()


def test_two_ranks_write_the_array_of_one_process_and_zarr_python_reads_it(cli, dataset, run_dir, one_process,
                                                                         cytonet_module):
    result = extract(cli, dataset, "two", "--checkpoint", run_dir, ranks=2)
    assert "on 2 rank(s)" in result.stdout
    assert shard(dataset, "two").read_bytes() == one_process
    ours = cytonet_module.open(str(dataset)).features("two")
    peer = zarr.open_array(str(pathlib.Path(dataset) / "features" / "two"), mode="r")
    assert peer.dtype == np.float32 and peer.shape == ours.shape
    assert np.array_equal(peer[:], ours)
    assert not np.isnan(ours).any()
    assert ours.shape == (len(cytonet_module.open(str(dataset)).index["point_id"]), 512)
    provenance = dict(peer.attrs)["cytonet"]["features"]
    assert provenance["source"] == "checkpoint" and provenance["checkpoint_step"] == 4
    assert provenance["level"] == 1 and provenance["patch_size"] == 96
    assert "two" in cytonet_module.open(str(dataset)).feature_sets()


def test_features_equal_pytorch_on_the_same_patches(cli, dataset, run_dir, one_process, cytonet_module):
    ds = cytonet_module.open(str(dataset))
    features = ds.features("one")
    rows = np.linspace(0, len(features) - 1, 12).astype(int)
    patches = np.stack([ds.read_row(int(r), level=1, size=96) for r in rows])
    net = ct.CytoNetResNet(ct.ResNetConfig.small())
    state = torch.load(run_dir / "weights.pt")
    net.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    net.eval()
    with torch.no_grad():
        expected = net.features((torch.from_numpy(patches).float().unsqueeze(1) / 255 - 0.5) / 0.25).numpy()
    assert np.allclose(features[rows], expected, rtol=1e-4, atol=1e-5), np.abs(features[rows] - expected).max()


def test_kill_9_mid_extraction_resumes_to_the_same_array(cli, dataset, run_dir, one_process):
    args = [str(cli), "extract", "--dataset", str(dataset), "--name", "killed", "--checkpoint", str(run_dir),
            *COMMON]
    building = pathlib.Path(dataset) / "features" / "killed.extracting"
    launcher = subprocess.Popen(["mpirun", "-np", "2", *args], env=MPI_ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    # Wait until some chunks are written (their checksums no longer zero), then kill all.
    deadline = time.time() + 120
    chunk = 32 * 512 * 4 + 4
    while time.time() < deadline:
        data = (building / "c" / "0" / "0").read_bytes() if (building / "c" / "0" / "0").exists() else b""
        written = sum(1 for i in range(len(data) // chunk) if data[(i + 1) * chunk - 4:(i + 1) * chunk] != b"\0" * 4)
        if written >= 4:
            break
        time.sleep(0.02)
    # kill -9 of every rank (mpirun's children), as a node failure would.
    ranks = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    for pid in ranks:
        os.kill(int(pid), signal.SIGKILL)
    launcher.wait(timeout=60)
    assert written >= 4, "the extraction wrote nothing to kill in the middle of"
    assert not (pathlib.Path(dataset) / "features" / "killed").exists()  # readers see nothing half-done
    # Resumed by one process: the chunks already written are kept, the rest computed.
    result = extract(cli, dataset, "killed", "--checkpoint", run_dir)
    kept = int(result.stdout.split("kept ")[1].split()[0])
    assert kept >= 1, result.stdout
    assert shard(dataset, "killed").read_bytes() == one_process
    assert not building.exists()


def test_a_finished_array_is_kept_and_another_extraction_is_refused_unless_overwritten(cli, dataset, run_dir,
                                                                                      one_process):
    result = extract(cli, dataset, "one", "--checkpoint", run_dir)
    assert "already complete" in result.stdout
    refused = extract(cli, dataset, "one", "--level", "1", "--patch-size", "96", "--seed", "3", check=False)
    assert refused.returncode != 0
    assert "another extraction" in refused.stderr and "--overwrite" in refused.stderr, refused.stderr
    assert shard(dataset, "one").read_bytes() == one_process
    extract(cli, dataset, "replaced", "--checkpoint", run_dir)
    extract(cli, dataset, "replaced", "--level", "1", "--patch-size", "96", "--seed", "3", "--overwrite")
    provenance = json.loads((pathlib.Path(dataset) / "features" / "replaced" / "zarr.json").read_text())
    assert provenance["attributes"]["cytonet"]["features"]["source"] == "random_init"
    assert not (pathlib.Path(dataset) / "features" / "replaced.replaced").exists()


def test_a_flipped_byte_is_named_by_our_reader_and_by_zarr_python(cli, dataset, run_dir, cytonet_module):
    extract(cli, dataset, "flipped", "--checkpoint", run_dir)
    path = shard(dataset, "flipped")
    data = bytearray(path.read_bytes())
    data[5 * (32 * 512 * 4 + 4) + 100] ^= 0x10  # a value in the sixth chunk
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        cytonet_module.open(str(dataset)).features("flipped")
    with pytest.raises(Exception):
        zarr.open_array(str(pathlib.Path(dataset) / "features" / "flipped"), mode="r")[:]


def test_a_section_filter_leaves_other_rows_nan(cli, dataset, run_dir, one_process, cytonet_module):
    ds = cytonet_module.open(str(dataset))
    brain, section = ds.index_sections[1]
    extract(cli, dataset, "filtered", "--checkpoint", run_dir, "--sections", f"{brain}/{section}")
    features, full = ds.features("filtered"), ds.features("one")
    inside = ds.index["section"] == 1
    assert inside.any() and (~inside).any()
    # Other rows share the batches now: equal to float rounding (kernels vary with batch size).
    assert np.allclose(features[inside], full[inside], rtol=1e-5, atol=1e-6)
    assert np.isnan(features[~inside]).all()
    missing = extract(cli, dataset, "bad", "--checkpoint", run_dir, "--sections", "NOPE/0001", check=False)
    assert missing.returncode == 2 and "NOPE/0001" in missing.stderr


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", "", "x.extracting", "x.replaced"])
def test_bad_names_are_refused(cli, dataset, run_dir, name):
    result = extract(cli, dataset, name, "--checkpoint", run_dir, check=False)
    assert result.returncode != 0
    assert not (pathlib.Path(dataset).parent / "escape").exists()


def test_a_missing_checkpoint_and_a_dataset_without_index_are_named(cli, dataset, tmp_path):
    result = extract(cli, dataset, "x", "--checkpoint", tmp_path / "nothing.pt", check=False)
    assert result.returncode != 0 and "nothing.pt" in result.stderr
    result = extract(cli, tmp_path, "x", "--level", "1", "--patch-size", "96", check=False)
    assert result.returncode != 0 and str(tmp_path) in result.stderr


def test_many_shards_with_a_partial_last_one_read_back_equal(cli, dataset, run_dir, one_process, cytonet_module):
    ds = cytonet_module.open(str(dataset))
    rows = len(ds.index["point_id"])
    shard_rows = 96  # three chunks of 32; the row count is not a multiple of it
    assert rows % shard_rows != 0
    extract(cli, dataset, "sharded", "--checkpoint", run_dir, "--shard-rows", shard_rows)
    shards = sorted((pathlib.Path(dataset) / "features" / "sharded" / "c").glob("*/0"))
    assert len(shards) == -(-rows // shard_rows)
    expected = ds.features("one")
    assert np.array_equal(ds.features("sharded"), expected)
    peer = zarr.open_array(str(pathlib.Path(dataset) / "features" / "sharded"), mode="r")
    assert np.array_equal(peer[:], expected)
    assert np.array_equal(peer[rows - 5:], expected[rows - 5:])  # inside the partial last shard


def test_foreign_or_malformed_files_are_refused_by_name_and_overwritten_on_request(cli, dataset):
    random_init = ["--level", "1", "--patch-size", "96", "--seed", "4"]
    features = pathlib.Path(dataset) / "features"
    # An array of that name another tool wrote (no provenance of ours).
    (features / "foreign").mkdir(parents=True)
    (features / "foreign" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"}')
    result = extract(cli, dataset, "foreign", *random_init, check=False)
    assert result.returncode == 1 and "holds features of another extraction" in result.stderr, result.stderr
    # An unfinished extraction whose record is not JSON, then one with the wrong types.
    for record in ("{nope", '{"provenance": 5, "chunk_rows": "x"}'):
        (features / "broken.extracting").mkdir(parents=True, exist_ok=True)
        (features / "broken.extracting" / "extraction.json").write_text(record)
        result = extract(cli, dataset, "broken", *random_init, check=False)
        assert result.returncode == 1 and "extraction.json (unreadable)" in result.stderr, result.stderr
    extract(cli, dataset, "broken", *random_init, "--overwrite")
    assert (features / "broken" / "zarr.json").exists() and not (features / "broken.extracting").exists()

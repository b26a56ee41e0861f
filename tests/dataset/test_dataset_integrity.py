"""Dataset integrity from the outside: byte flips, swapped, deleted and truncated shards,
racing writers and symbolic links. Every reader (the Python module's reads, its loader and
index, `cytonet read`, `cytonet verify --decode`) must either give exactly the pristine
result or an error that names the damaged file: never different data without an error."""
import importlib
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

SHARD, CHUNK = "256", "64"
FLIPS_PER_KIND = 50  # four kinds: 200 flips


@pytest.fixture(scope="module")
def module(cytonet):
    sys.path.insert(0, str(cytonet.cli.parent.parent / "python"))
    return importlib.import_module("cytonet")


def ingest(cytonet, study, out, *extra, check=True):
    return cytonet.run(cytonet.cli, "ingest", study, "--out", out, "--shard", SHARD, "--chunk", CHUNK, "--quiet",
                       *extra, check=check)


def phantom_study(cytonet, slides, width, height, seed):
    """A phantom of one brain with two sections; returns its study file."""
    cytonet.run(cytonet.cli, "phantom", "--out", slides, "--brains", 1, "--sections", 2, "--width", width,
                "--height", height, "--tile", 256, "--seed", seed, "--masks", 0, "--quiet")
    return slides / "study.json"


@pytest.fixture(scope="module")
def small_study(cytonet, tmp_path_factory):
    return phantom_study(cytonet, tmp_path_factory.mktemp("slides"), 1024, 768, seed=3)


@pytest.fixture(scope="module")
def pristine(cytonet, small_study, tmp_path_factory):
    """A small indexed dataset: 1 brain, 2 sections of 1024 × 768, shards of 256² with 64² chunks."""
    slides = small_study.parent
    dataset = tmp_path_factory.mktemp("pristine") / "dataset"
    ingest(cytonet, slides / "study.json", dataset, "--threads", "1")
    cytonet.run(cytonet.cli, "index", slides / "study.json", "--dataset", dataset, "--patch-size", 128,
                "--drop-bad-points")
    return dataset


def sections_of(dataset):
    root = json.loads((dataset / "zarr.json").read_text())["attributes"]["cytonet"]
    return [(b["name"], s) for b in root["brains"] for s in b["sections"]]


def levels_of(dataset, brain, section):
    group = json.loads((dataset / "sections" / brain / section / "zarr.json").read_text())
    return [json.loads((dataset / "sections" / brain / section / str(k) / "zarr.json").read_text())["shape"]
            for k in range(len(group["attributes"]["ome"]["multiscales"][0]["datasets"]))]


def run(*args):
    """Runs a command; messages may quote damaged bytes, so they are decoded leniently."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, errors="backslashreplace")


class Readers:
    """Runs every reader over a dataset; each result is bytes or ("error", message)."""

    def __init__(self, cytonet, module, layout, scratch):
        self.cytonet, self.module, self.layout, self.scratch = cytonet, module, layout, scratch

    def python(self, dataset):
        out = {}
        try:
            ds = self.module.open(str(dataset))
            index = ds.index
            out["index"] = b"".join(np.ascontiguousarray(index[name]).tobytes() for name in sorted(index))
        except Exception as error:  # the module raises KeyError/ValueError/RuntimeError
            return {"python.open": ("error", str(error))}
        for (brain, section), shapes in self.layout.items():
            for k, (h, w) in enumerate(shapes):
                try:
                    out[f"python.read_box {brain}/{section}/{k}"] = ds.read_box(brain, section, level=k,
                                                                               box=(0, 0, h, w)).tobytes()
                except Exception as error:
                    out[f"python.read_box {brain}/{section}/{k}"] = ("error", str(error))
        try:
            images = [batch["images"].tobytes() for batch in
                      ds.loader(batch_size=4, patch_size=32, level=0, seed=1, threads=1, augment=False, end_epoch=1)]
            out["python.loader"] = b"".join(images)
        except Exception as error:
            out["python.loader"] = ("error", str(error))
        return out

    def cli(self, dataset):
        out = {}
        for (brain, section), shapes in self.layout.items():
            for k in range(len(shapes)):
                target = self.scratch / "level.raw"
                if target.exists():
                    target.unlink()
                result = run(self.cytonet.cli, "read", dataset, "--array", f"sections/{brain}/{section}/{k}", "--out", target)
                key = f"cli.read {brain}/{section}/{k}"
                out[key] = target.read_bytes() if result.returncode == 0 else ("error", result.stderr)
        return out

    def verify(self, dataset):
        result = run(self.cytonet.cli, "verify", dataset, "--decode")
        return result.returncode, result.stdout + result.stderr

    def all(self, dataset):
        return {**self.python(dataset), **self.cli(dataset)}


@pytest.fixture(scope="module")
def readers(cytonet, module, pristine, tmp_path_factory):
    layout = {(b, s): levels_of(pristine, b, s) for b, s in sections_of(pristine)}
    return Readers(cytonet, module, layout, tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def reference(readers, pristine):
    results = readers.all(pristine)
    assert not [k for k, v in results.items() if isinstance(v, tuple)], results
    code, text = readers.verify(pristine)
    assert code == 0, text
    return results


def names_the_place(message, relative, dataset):
    """An error must point at the damaged file: its path, its folder (a zarr.json's node),
    or, for the root's own metadata, the dataset."""
    parent = os.path.dirname(relative)
    if relative in message or (parent and parent in message):
        return True
    top = relative.split("/")[0]
    return relative == "zarr.json" and str(dataset) in message or top == "index" and "index" in message


def check_outcome(readers, reference, dataset, relative):
    """Returns what happened; fails on silent wrong data or an error that names no place."""
    results = readers.all(dataset)
    code, text = readers.verify(dataset)
    errors, changed = [], []
    for key, value in results.items():
        if isinstance(value, tuple):
            errors.append(key)
            assert names_the_place(value[1], relative, dataset), f"{relative}: {key} error names no place: {value[1]}"
        elif key in reference and value != reference[key]:
            changed.append(key)
    assert not changed, f"{relative}: silent wrong data from {changed}"
    # Every key of the pristine run is accounted for: a reader that could not open reports once.
    if "python.open" not in results:
        assert set(results) == set(reference), (relative, set(reference) ^ set(results))
    if code == 0:
        assert not errors, f"{relative}: verify --decode passed but {errors} failed"
    else:
        assert relative in text or os.path.dirname(relative) in text or relative == "zarr.json", (relative, text)
    return "error" if errors or code != 0 else "identical"


def shard_files(dataset):
    return sorted(p for p in dataset.glob("sections/*/*/*/c/*/*") if p.is_file())


def flip_targets(dataset, rng):
    """(relative path, offset) for 50 flips each in shard payloads, shard indexes, metadata
    and index columns. The shard index is the last 16 · chunks + 4 bytes."""
    index_bytes = 16 * (int(SHARD) // int(CHUNK)) ** 2 + 4
    shards = shard_files(dataset)
    metadata = sorted(p for p in dataset.rglob("zarr.json"))
    columns = sorted(p for p in dataset.glob("index/*/c/0"))
    targets = []
    for _ in range(FLIPS_PER_KIND):
        shard = rng.choice(shards)
        size = shard.stat().st_size
        targets.append((shard, rng.randrange(0, size - index_bytes)))
        targets.append((shard, rng.randrange(size - index_bytes, size)))
        meta = rng.choice(metadata)
        targets.append((meta, rng.randrange(0, meta.stat().st_size)))
        column = rng.choice(columns)
        targets.append((column, rng.randrange(0, column.stat().st_size)))
    return targets


def test_every_flipped_byte_is_an_error_naming_the_file_or_changes_nothing(readers, reference, pristine, tmp_path):
    rng = random.Random(2026)
    targets = flip_targets(pristine, rng)
    assert len(targets) == 4 * FLIPS_PER_KIND
    outcomes = {"error": 0, "identical": 0}
    for n, (path, offset) in enumerate(targets):
        relative = str(path.relative_to(pristine))
        work = tmp_path / f"flip{n}"
        shutil.copytree(pristine, work)
        damaged = work / relative
        data = bytearray(damaged.read_bytes())
        data[offset] ^= rng.randrange(1, 256)
        damaged.write_bytes(bytes(data))
        outcomes[check_outcome(readers, reference, work, relative)] += 1
        shutil.rmtree(work)
    print(f"200 flips: {outcomes['error']} errors naming the file, {outcomes['identical']} identical results")
    # Shard payload and index flips are never harmless (every byte is under a CRC-32C).
    assert outcomes["error"] >= 2 * FLIPS_PER_KIND


def damaged_copy(pristine, tmp_path, name):
    work = tmp_path / name
    shutil.copytree(pristine, work)
    return work


def test_swapped_shards_are_errors(readers, reference, pristine, tmp_path):
    work = damaged_copy(pristine, tmp_path, "swapped")
    level0 = [p for p in shard_files(work) if p.parts[-4] == "0"]
    first, second = level0[0], level0[1]
    assert first.read_bytes() != second.read_bytes()
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    assert check_outcome(readers, reference, work, str(first.relative_to(work))) == "error"


def test_deleted_shard_is_an_error_not_background(readers, reference, pristine, tmp_path):
    work = damaged_copy(pristine, tmp_path, "deleted")
    shard = shard_files(work)[0]
    shard.unlink()
    assert check_outcome(readers, reference, work, str(shard.relative_to(work))) == "error"


def test_shard_truncated_in_place_is_an_error(readers, reference, pristine, tmp_path):
    work = damaged_copy(pristine, tmp_path, "truncated")
    shard = shard_files(work)[0]
    os.truncate(shard, shard.stat().st_size // 2)
    assert check_outcome(readers, reference, work, str(shard.relative_to(work))) == "error"


def test_extra_shard_is_an_error(readers, reference, pristine, tmp_path):
    """A shard file where ingest stored none (all background) must not be read as pixels."""
    work = damaged_copy(pristine, tmp_path, "extra")
    (brain, section), shapes = next(iter(readers.layout.items()))
    level = work / "sections" / brain / section / "0"
    h, w = shapes[0]
    rows, columns = -(-h // int(SHARD)), -(-w // int(SHARD))
    absent = [(r, c) for r in range(rows) for c in range(columns) if not (level / "c" / str(r) / str(c)).exists()]
    # Inside the grid it would read as pixels; outside it only verify sees it.
    r, c = absent[0] if absent else (rows + 2, columns + 2)
    (level / "c" / str(r)).mkdir(parents=True, exist_ok=True)
    shutil.copy(shard_files(work)[0], level / "c" / str(r) / str(c))
    assert check_outcome(readers, reference, work, f"sections/{brain}/{section}/0/c/{r}/{c}") == "error"


@pytest.fixture(scope="module")
def slow_study(cytonet, tmp_path_factory):
    """Slides large enough that an ingest is still running when a second one starts."""
    return phantom_study(cytonet, tmp_path_factory.mktemp("race-slides"), 2048, 1536, seed=4)


def test_a_second_ingest_is_refused_while_one_runs(cytonet, slow_study, tmp_path):
    dataset = tmp_path / "dataset"
    lock = dataset / ".cytonet-locks" / "root.lock"
    args = [str(cytonet.cli), "ingest", str(slow_study), "--out", str(dataset), "--shard", SHARD, "--chunk", CHUNK,
            "--quiet", "--force", "--no-sync"]
    for pair in range(20):
        first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Freeze the first writer once it holds the lock: the second then surely meets it.
        deadline = time.monotonic() + 60
        while f"pid {first.pid} " not in (lock.read_text() if lock.exists() else ""):
            assert first.poll() is None, f"pair {pair}: the first ingest ended before it was seen holding the lock"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        first.send_signal(signal.SIGSTOP)
        try:
            second = subprocess.run(args, capture_output=True, text=True, timeout=120)
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode != 0, f"pair {pair}: the second ingest was not refused"
        assert f"in use by pid {first.pid}" in second.stderr, second.stderr
        assert first.wait(timeout=300) == 0, first.stderr.read()
        verified = cytonet.run(cytonet.cli, "verify", dataset, "--decode", check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    # A holder killed with -9 leaves no stale lock: the kernel drops it with the process.
    killed = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, CYTONET_TEST_KILL_BEFORE_WRITE="5"))
    assert killed.wait(timeout=300) == -signal.SIGKILL
    assert f"pid {killed.pid} " in lock.read_text()  # its note is still there, its lock is not
    cytonet.run(*args)


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_symlinked_brain_folder_is_refused_and_nothing_outside_is_touched(cytonet, pristine, small_study, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(pristine, dataset)
    brain = sections_of(dataset)[0][0]
    outside = tmp_path / "outside"
    shutil.move(str(dataset / "sections" / brain), outside)
    (dataset / "sections" / brain).symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    result = ingest(cytonet, small_study, dataset, "--force", check=False)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "symbolic link" in said or "outside the store root" in said, said
    assert tree(outside) == before, "files outside the dataset changed"


def test_a_symlink_inside_a_section_is_removed_as_a_link_on_redo(cytonet, pristine, small_study, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(pristine, dataset)
    brain, section = sections_of(dataset)[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    (dataset / "sections" / brain / section / "0" / "planted").symlink_to(outside, target_is_directory=True)
    ingest(cytonet, small_study, dataset, "--force")
    assert (outside / "precious").read_bytes() == b"keep me"
    assert not (dataset / "sections" / brain / section / "0" / "planted").exists()


def test_a_rerun_removes_temporaries_that_killed_metadata_writes_left(cytonet, pristine, small_study, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(pristine, dataset)
    brain = sections_of(dataset)[0][0]
    planted = [dataset / "zarr.json.tmp.99999.0", dataset / "sections" / "zarr.json.tmp.99999.1",
               dataset / "sections" / brain / "zarr.json.tmp.99999.2",
               next((dataset / "transforms").rglob("zarr.json")).with_name("zarr.json.tmp.99999.3"),
               dataset / "index" / "zarr.json.tmp.99999.4"]
    for path in planted:
        path.write_bytes(b"half a write")
    result = ingest(cytonet, small_study, dataset)
    assert "skipped" in result.stdout
    assert not [p for p in planted if p.exists()]
    assert run(cytonet.cli, "verify", dataset, "--decode").returncode == 0


def test_a_rerun_over_a_complete_dataset_writes_nothing(cytonet, pristine, small_study, tmp_path):
    """So it also succeeds on a read-only dataset (tests run as root, which ignores modes:
    the check is that no file is rewritten, the condition a read-only folder needs)."""
    dataset = tmp_path / "dataset"
    shutil.copytree(pristine, dataset)
    shutil.rmtree(dataset / ".cytonet-locks", ignore_errors=True)
    before = {p: p.stat().st_mtime_ns for p in dataset.rglob("*") if p.is_file()}
    ingest(cytonet, small_study, dataset)
    after = {p: p.stat().st_mtime_ns for p in dataset.rglob("*") if p.is_file() and ".cytonet-locks" not in str(p)}
    assert after == before, "a re-run over a complete dataset rewrote files"

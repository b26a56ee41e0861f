"""`cytonet train` end to end on a small phantom: resume after kill -9 and after SIGTERM gives
bit-identical weights, a damaged checkpoint is named and skipped, bad configurations are
errors naming the key, a second run on the same folder is refused."""
import json
import os
import pathlib
import signal
import struct
import subprocess
import time

import pytest
import torch

PREEMPTED = 75


@pytest.fixture(scope="module")
def cli(request):
    build = pathlib.Path(request.config.getoption("--cytonet-bin")).resolve()
    tool = build / "cli" / "cytonet"
    if not tool.exists():
        pytest.fail(f"{tool} is missing: build the project first")
    return tool


@pytest.fixture(scope="module")
def dataset(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    run = lambda *a: subprocess.run([str(cli), *map(str, a)], check=True, capture_output=True)  # noqa: E731
    run("phantom", "--out", root / "study", "--brains", "2", "--sections", "2", "--width", "4096", "--height", "3072")
    run("ingest", root / "study" / "study.json", "--out", root / "ds", "--quiet", "--no-sync")
    run("index", root / "study" / "study.json", "--dataset", root / "ds", "--patch-size", "256")
    return root / "ds"


def write_config(path, dataset, run_dir, **overrides):
    config = {"dataset": str(dataset), "run_dir": str(run_dir), "model": "small", "patch_size": 96, "level": 1,
              "batch_size": 8, "steps": 10, "checkpoint_every": 2, "keep_last": 2, "torch_threads": 1,
              "loader_threads": 1, "base_lr": 0.5, "seed": 5, "schedule": "cosine", "warmup_steps": 2}
    config.update(overrides)
    path.write_text(json.dumps(config))
    return path


def train(cli, config, *extra, check=True):
    result = subprocess.run([str(cli), "train", "--config", str(config), *extra], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"train failed ({result.returncode}): {result.stderr}")
    return result


def weights(run_dir):
    return torch.load(pathlib.Path(run_dir) / "weights.pt")


def assert_identical(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def uninterrupted(cli, dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    train(cli, write_config(root / "c.json", dataset, root / "run"))
    return weights(root / "run")


def test_a_run_writes_metrics_checkpoints_and_weights_python_loads(cli, dataset, tmp_path, uninterrupted):
    out = train(cli, write_config(tmp_path / "c.json", dataset, tmp_path / "run"))
    assert "step 10/10" in out.stdout
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == list(range(1, 11))
    for key in ("epoch", "loss", "lr", "patches_per_s", "data_wait_fraction"):
        assert all(key in l for l in lines), key
    assert lines[0]["lr"] < lines[1]["lr"]  # warm-up
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*.pt")) == [
        "checkpoint-000000008.pt", "checkpoint-000000010.pt"]
    # The same configuration twice gives the same weights (a fresh folder each time).
    assert_identical(weights(tmp_path / "run"), uninterrupted)
    assert any(k.startswith("head.") for k in uninterrupted)


def test_kill_9_then_resume_gives_the_uninterrupted_weights(cli, dataset, tmp_path, uninterrupted):
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run")
    process = subprocess.Popen([str(cli), "train", "--config", str(config)], stdout=subprocess.PIPE, text=True)
    # Kill it once it has passed step 5: checkpoint 4 exists, steps after it are lost.
    for line in process.stdout:
        if line.startswith("step 5/"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "weights.pt").exists()
    # What a kill during a checkpoint's write leaves: its temporary, which resume ignores.
    (tmp_path / "run" / "checkpoint-000000006.pt.tmp.99999").write_bytes(b"half a checkpoint")
    out = train(cli, config)
    assert not list((tmp_path / "run").glob("*.tmp.*"))
    assert "resuming from" in out.stderr
    assert_identical(weights(tmp_path / "run"), uninterrupted)
    steps = [json.loads(l)["step"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))  # the lost steps' lines were dropped, then run again


def test_sigterm_checkpoints_exits_75_and_resumes_to_the_same_weights(cli, dataset, tmp_path, uninterrupted):
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", checkpoint_every=100)
    process = subprocess.Popen([str(cli), "train", "--config", str(config)], stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step 3/"):
            process.send_signal(signal.SIGTERM)
            break
    process.stdout.read()
    assert process.wait() == PREEMPTED
    assert list((tmp_path / "run").glob("checkpoint-*.pt")), "no checkpoint at the stop"
    assert not (tmp_path / "run" / "weights.pt").exists()
    train(cli, config)
    assert_identical(weights(tmp_path / "run"), uninterrupted)


def test_a_damaged_checkpoint_is_named_and_the_previous_one_is_used(cli, dataset, tmp_path, uninterrupted):
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", keep_last=3)
    train(cli, config)
    newest = tmp_path / "run" / "checkpoint-000000010.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x40  # one flipped bit inside the tensors
    newest.write_bytes(bytes(data))
    (tmp_path / "run" / "weights.pt").unlink()
    out = train(cli, config)  # resumes from step 8 and runs steps 9 and 10 again
    assert "checkpoint-000000010.pt is damaged" in out.stderr
    assert "resuming from" in out.stderr and "checkpoint-000000008.pt" in out.stderr
    assert_identical(weights(tmp_path / "run"), uninterrupted)


def test_under_the_cosine_schedule_a_changed_step_count_is_refused(cli, dataset, tmp_path):
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run")
    train(cli, config, "--steps", "2")
    out = train(cli, config, check=False)
    assert out.returncode != 0 and "its steps is 2" in out.stderr, out.stderr


def test_a_changed_configuration_is_refused_on_resume(cli, dataset, tmp_path):
    train(cli, write_config(tmp_path / "c.json", dataset, tmp_path / "run"), "--steps", "2")
    out = train(cli, write_config(tmp_path / "c2.json", dataset, tmp_path / "run", seed=6), check=False)
    assert out.returncode != 0 and "seed" in out.stderr and "cannot resume" in out.stderr


@pytest.mark.parametrize("change, named", [
    ({"batch_sizes": 8}, "unknown key \"batch_sizes\""),
    ({"batch_size": 1}, "batch_size must be in"),
    ({"model": "resnet18"}, "model must be one of"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"augment": "yes"}, "augment must be true or false"),
])
def test_bad_configurations_are_errors_naming_the_key(cli, dataset, tmp_path, change, named):
    out = train(cli, write_config(tmp_path / "c.json", dataset, tmp_path / "run", **change), check=False)
    assert out.returncode == 2 and named in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


def test_malformed_json_names_the_file(cli, tmp_path):
    (tmp_path / "c.json").write_text('{"dataset": ')
    out = train(cli, tmp_path / "c.json", check=False)
    assert out.returncode != 0 and "c.json" in out.stderr


def test_a_second_run_on_the_same_folder_is_refused(cli, dataset, tmp_path):
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", steps=400, checkpoint_every=400)
    first = subprocess.Popen([str(cli), "train", "--config", str(config)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().startswith("step 1/")
        second = train(cli, config, check=False)
        assert second.returncode != 0 and "in use" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate()
    assert first.returncode == PREEMPTED


def test_only_cytonet_train_loads_libtorch(cli):
    # Every other command starts in milliseconds; LibTorch's libraries take about half a second.
    linked = subprocess.run(["ldd", str(cli)], capture_output=True, text=True, check=True).stdout
    assert "libtorch" not in linked and "libc10" not in linked
    trainer = subprocess.run(["ldd", str(cli.parent / "cytonet-train")], capture_output=True, text=True).stdout
    assert "libtorch" in trainer


def test_the_schema_file_is_the_parsers_own_and_they_agree(cli, dataset, tmp_path):
    import jsonschema
    generated = json.loads(subprocess.run([str(cli), "train", "--print-schema"], capture_output=True, text=True,
                                          check=True).stdout)
    schema_file = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "train.schema.json"
    assert json.loads(schema_file.read_text()) == generated, "regenerate: cytonet train --print-schema"
    base = {"dataset": str(dataset), "run_dir": str(tmp_path / "run")}
    cases = [{}, {"model": "small", "steps": 5}, {"batch_size": 1}, {"batch_sizes": 8}, {"model": "resnet18"},
             {"steps": 2.5}, {"augment": "yes"}, {"temperature": 0}, {"level": 17}, {"device": "tpu"},
             {"seed": -1}, {"run_dir": ""}, {"keep_last": 1000}, {"base_lr": "0.1"}, {"loss": "nt_xent"},
             {"loss": "nt_xent", "views": 2}, {"views": 3}, {"views": 0}, {"sections": []}, {"sections": [""]},
             {"brains": "PB01"}, {"loss": "nt_xent", "views": 2, "augment": False}]
    for change in cases:
        config = {**base, **change}
        path = write_config(tmp_path / "c.json", dataset, tmp_path / "run")
        path.write_text(json.dumps(config))
        ours = subprocess.run([str(cli), "train", "--config", str(path), "--check"], capture_output=True, text=True)
        try:
            jsonschema.validate(config, generated)
            theirs = True
        except jsonschema.ValidationError:
            theirs = False
        assert (ours.returncode == 0) == theirs, (change, ours.stderr)
    missing = dict(base)
    del missing["run_dir"]
    (tmp_path / "m.json").write_text(json.dumps(missing))
    ours = subprocess.run([str(cli), "train", "--config", str(tmp_path / "m.json"), "--check"], capture_output=True,
                          text=True)
    assert ours.returncode == 2 and "run_dir is required" in ours.stderr
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, generated)


def test_a_folder_given_as_the_configuration_is_an_error(cli, tmp_path):
    out = train(cli, tmp_path, check=False)
    assert out.returncode == 2 and "is not a file" in out.stderr, out.stderr


def test_when_no_checkpoint_reads_the_run_stops_and_keeps_them(cli, dataset, tmp_path):
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", steps=4, keep_last=1)
    train(cli, config)
    only = tmp_path / "run" / "checkpoint-000000004.pt"
    only.write_bytes(only.read_bytes()[:1000])  # truncated
    damaged = only.read_bytes()
    (tmp_path / "run" / "weights.pt").unlink()
    out = train(cli, config, check=False)
    assert out.returncode != 0 and "checkpoint-000000004.pt is damaged" in out.stderr
    assert "none of the 1 checkpoints" in out.stderr, out.stderr
    assert only.read_bytes() == damaged  # nothing overwritten


def test_pruning_never_removes_the_checkpoint_just_written(cli, dataset, tmp_path):
    # An unreadable checkpoint from the future (named past every step of this run) is
    # skipped on resume and must not count among the keep_last newest.
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", keep_last=1, schedule="constant")
    train(cli, config, "--steps", "6")
    future = tmp_path / "run" / "checkpoint-000000050.pt"
    future.write_bytes(b"unreadable")
    out = train(cli, config)  # resumes from 6 and writes 8 and 10
    assert "checkpoint-000000050.pt is damaged" in out.stderr and "checkpoint-000000006.pt" in out.stderr
    names = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*.pt"))
    assert names == ["checkpoint-000000010.pt", "checkpoint-000000050.pt"]


def yaml_config(path, text):
    path.write_text(text)
    return path


def test_a_yaml_configuration_gives_the_json_runs_weights(cli, dataset, tmp_path, uninterrupted):
    json_config = json.loads(write_config(tmp_path / "c.json", dataset, tmp_path / "run").read_text())
    lines = [f"{key}: {json.dumps(value)}" for key, value in json_config.items()]  # JSON scalars are YAML
    lines[0] = f"# a comment\ndataset: {dataset}"  # a plain (unquoted) path
    train(cli, yaml_config(tmp_path / "c.yaml", "\n".join(lines) + "\n"))
    assert_identical(weights(tmp_path / "run"), uninterrupted)


@pytest.mark.parametrize("text, named", [
    ("dataset: x\nrun_dir: y\nsteps: [1\n", "c.yaml:4:1"),                   # syntax: file, line, column
    ("dataset: x\nrun_dir: y\nsteps: 3\nsteps: 4\n", "\"steps\" is given twice"),
    ("dataset: x\nrun_dir: y\nbase_lr: '0.5'\n", "base_lr must be a number"),  # quoted: a string
    ("dataset: x\nrun_dir: y\naugment: yes\n", "augment must be true or false"),  # YAML 1.2: not a bool
    ("dataset: x\nrun_dir: y\nbatchsize: 8\n", "unknown key \"batchsize\""),
    ("dataset: x\nrun_dir: y\n---\nsteps: 3\n", "holds 2 YAML documents"),
    ("dataset: x\nrun_dir: y\nsteps: !!int 3\n", "the tag tag:yaml.org,2002:int is not supported"),
    ("dataset: x\nrun_dir: y\nmodel: !!str 5\n", "model must be one of"),  # !!str: a string
    ("- dataset\n", "must be a JSON object (a YAML mapping)"),
])
def test_yaml_mistakes_are_errors_naming_the_file_and_key(cli, tmp_path, text, named):
    out = train(cli, yaml_config(tmp_path / "c.yaml", text), "--check", check=False)
    assert out.returncode == 2 and named in out.stderr, out.stderr


def test_sections_restrict_training_and_an_unknown_one_is_named(cli, dataset, tmp_path):
    brain = sorted(p.name for p in (dataset / "sections").iterdir() if p.is_dir())[0]
    section = sorted(p.name for p in (dataset / "sections" / brain).iterdir() if p.is_dir())[0]
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", steps=3, sections=[f"{brain}/{section}"])
    train(cli, config)
    out = train(cli, write_config(tmp_path / "d.json", dataset, tmp_path / "run2", steps=3,
                                  sections=[f"{brain}/{section}", f"{brain}/9999"]), check=False)
    assert out.returncode != 0 and f"'{brain}/9999'" in out.stderr, out.stderr


def test_nt_xent_trains_on_two_views_and_needs_them(cli, dataset, tmp_path):
    train(cli, write_config(tmp_path / "c.json", dataset, tmp_path / "run", steps=3, loss="nt_xent", views=2,
                            temperature=0.1))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(0 < loss < 10 for loss in losses)
    out = train(cli, write_config(tmp_path / "d.json", dataset, tmp_path / "run2", loss="nt_xent"), "--check",
                check=False)
    assert out.returncode == 2 and "views must be 2" in out.stderr, out.stderr


def test_gradient_checkpointing_gives_the_same_weights(cli, dataset, tmp_path, uninterrupted):
    train(cli, write_config(tmp_path / "c.json", dataset, tmp_path / "run", gradient_checkpointing=True))
    assert_identical(weights(tmp_path / "run"), uninterrupted)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_the_loss_in_fp32(cli, dataset, tmp_path, precision):
    train(cli, write_config(tmp_path / "c.json", dataset, tmp_path / "run", precision=precision, steps=3))
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2, 3]
    assert all(l["loss"] == l["loss"] and 0 < l["loss"] < 20 for l in lines), lines
    if precision == "fp16":  # the dynamic loss scale is logged
        assert all(l["loss_scale"] > 0 and l["skipped_steps"] >= 0 for l in lines), lines
    state = weights(tmp_path / "run")
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())  # weights stay fp32


def test_augmentation_on_the_device_trains_on_the_same_samples(cli, dataset, tmp_path):
    # The loader hands over source boxes; the warp, intensity and filter run in torch (on CPU
    # here). The patches differ from the CPU loader's by rounding only
    # (tests/train/device_augmentation_test.cc), so the first loss is nearly the same.
    on_cpu = write_config(tmp_path / "cpu.json", dataset, tmp_path / "cpu", steps=2, warmup_steps=0)
    on_device = write_config(tmp_path / "device.json", dataset, tmp_path / "device", steps=2, warmup_steps=0,
                             augment_on_device=True)
    train(cli, on_cpu)
    train(cli, on_device)
    first = [json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0])["loss"] for d in ("cpu", "device")]
    assert first[0] != first[1]  # a different path was taken
    assert abs(first[0] - first[1]) < 0.01 * first[0], first


def test_the_nccl_backend_is_linked_from_the_wheel(cli):
    # The NCCL path compiles and links against the torch wheel; its NCCL is the wheel's own.
    trainer = cli.parent / "cytonet-train"
    undefined = subprocess.run(["nm", "-D", "--undefined-only", "-C", str(trainer)], capture_output=True, text=True,
                               check=True).stdout
    assert "c10d::ProcessGroupNCCL::ProcessGroupNCCL" in undefined
    assert "c10d::ProcessGroupGloo::ProcessGroupGloo" in undefined
    linked = subprocess.run(["ldd", str(trainer)], capture_output=True, text=True).stdout
    nccl = [line for line in linked.splitlines() if "libnccl" in line]
    assert len(nccl) == 1 and "/nvidia/nccl/lib/" in nccl[0], nccl


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_a_checkpoint_from_before_a_new_key_resumes_when_the_key_has_its_default(cli, dataset, tmp_path):
    # A checkpoint written by an older cytonet, whose configuration lacks keys added since
    # (here: precision), still resumes when the configuration leaves them at their default.
    config = write_config(tmp_path / "c.json", dataset, tmp_path / "run", steps=4, schedule="constant",
                          warmup_steps=0, checkpoint_every=2)
    train(cli, config, "--steps", "2")
    path = tmp_path / "run" / "checkpoint-000000002.pt"
    entries = torch.load(path)
    saved = json.loads(bytes(entries["config"].tolist()).decode())
    assert saved.pop("precision") == "fp32"
    text = json.dumps(saved).encode()
    entries["config"] = torch.tensor(list(text), dtype=torch.uint8)
    # Re-checksum the entry as train/checkpoint.cc does: CRC32C of key, dtype, shape and of the bytes.
    row = sorted(k for k in entries if k != "checksums").index("config")
    head = b"config\0" + struct.pack("<3q", 0, 1, len(text))  # uint8 is ScalarType 0
    entries["checksums"][row] = torch.tensor([crc32c(head), crc32c(text)])
    torch.save(entries, path)
    out = train(cli, config)
    assert "resuming from" in out.stderr and "step 2" in out.stderr, out.stderr
    changed = write_config(tmp_path / "c2.json", dataset, tmp_path / "run", steps=6, schedule="constant",
                           warmup_steps=0, checkpoint_every=2, precision="bf16")
    refused = train(cli, changed, check=False)
    assert refused.returncode != 0 and "precision" in refused.stderr, refused.stderr

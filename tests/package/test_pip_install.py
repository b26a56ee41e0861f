"""The Python package as users install it: `pip install <checkout>` into a fresh virtual
environment (pyproject.toml, scikit-build-core), then a read of an array zarr-python wrote."""
import pathlib
import subprocess
import sys

import numpy as np
import zarr

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pip_install_into_a_fresh_venv_then_read(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True,
                             timeout=1800)
    assert install.returncode == 0, install.stdout + install.stderr

    data = np.random.default_rng(2).integers(0, 255, (300, 200), dtype=np.uint8)
    zarr.create_array(str(tmp_path / "array"), shape=data.shape, chunks=(64, 64), shards=(128, 128), dtype="uint8",
                      fill_value=255)[:] = data
    script = (
        "import sys, cytonet\n"
        "a = cytonet.open_array(sys.argv[1], 'array')\n"
        "region = a.read((10, 20), (100, 150))\n"
        "print(cytonet.__version__, cytonet.__file__, region.shape, int(region.astype('int64').sum()))\n")
    # From another folder, so nothing of the checkout or its build can be imported by accident.
    result = subprocess.run([str(python), "-c", script, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    version, location, *rest = result.stdout.split(" ", 2)
    expected_version = next(line.split("VERSION")[1].split()[0] for line in (ROOT / "CMakeLists.txt").read_text().splitlines()
                            if line.startswith("project(cytonet"))
    assert version == expected_version
    assert str(venv) in location and str(ROOT / "build") not in location
    assert rest[0].strip() == f"(100, 150) {int(data[10:110, 20:170].astype(np.int64).sum())}"

"""OME-Zarr multiscale groups: ours read by zarr-python, theirs (0.5 and 0.4) read by us."""
import json

import numpy as np
import zarr
from ome_zarr_models.v05 import Image

from test_zarr_interop import read_ours, sample, v3_metadata, inner_codecs


def test_they_read_our_ome_zarr_05(cytonet, tmp_path):
    levels = [sample((256, 384), "uint8"), sample((128, 192), "uint8", seed=1)]
    args = [cytonet.helper, "write-ome", tmp_path / "root", "sections/b01/s0001", "1.0"]
    for k, data in enumerate(levels):
        meta = v3_metadata(list(data.shape), [128, 128], "uint8", inner_codecs("blosc", "uint8"), [64, 64])
        (tmp_path / f"m{k}.json").write_text(json.dumps(meta))
        data.tofile(tmp_path / f"d{k}.raw")
        args += [tmp_path / f"m{k}.json", tmp_path / f"d{k}.raw"]
    cytonet.run(*args)
    group = zarr.open_group(tmp_path / "root" / "sections/b01/s0001", mode="r")
    Image.from_zarr(group)  # validates against the OME-Zarr 0.5 models (raises if invalid)
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["y", "x"]
    assert all(a["unit"] == "micrometer" for a in ms["axes"])
    for k, dataset in enumerate(ms["datasets"]):
        scale, translation = dataset["coordinateTransformations"]
        assert scale["scale"] == [2.0**k, 2.0**k]
        assert translation["translation"] == [(2**k - 1) / 2] * 2
        arr = group[dataset["path"]]
        assert arr.metadata.dimension_names == ("y", "x")
        np.testing.assert_array_equal(arr[:], levels[k])


def test_we_read_their_ome_zarr(cytonet, tmp_path):
    data = sample((200, 300), "uint16")
    for version in ("0.5", "0.4"):
        root = tmp_path / version
        fmt = 3 if version == "0.5" else 2
        group = zarr.open_group(root / "img", mode="w", zarr_format=fmt)
        datasets = []
        for k in range(2):
            level = data[:: 2**k, :: 2**k]
            kwargs = {"dimension_names": ["y", "x"]} if fmt == 3 else {}
            arr = group.create_array(str(k), shape=level.shape, dtype="uint16", chunks=(64, 64), **kwargs)
            arr[:] = level
            datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [0.5 * 2**k] * 2}]})
        ms = {"axes": [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space", "unit": "micrometer"}],
              "datasets": datasets}
        if fmt == 3:
            group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
        else:
            group.attrs["multiscales"] = [{"version": "0.4", **ms}]
        info = cytonet.run(cytonet.cli, "info", root).stdout
        assert f"OME-Zarr {version} image, 2 levels" in info, info
        np.testing.assert_array_equal(read_ours(cytonet, root, "img/1", (100, 150), "uint16", tmp_path), data[::2, ::2])

"""What the patch benchmarks (random_access.py, loader_bench.py) share: the options that
name the build, the dataset and the patches, and importing the built `cytonet` module."""
import argparse
import pathlib
import sys


def patch_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="CMake build directory (its python/ holds cytonet)")
    parser.add_argument("--dataset", required=True, help="dataset root, ingested and indexed")
    parser.add_argument("--size", type=int, default=2048, help="patch side in pixels of the level")
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--out", help="write the results as JSON here")
    return parser


def import_cytonet(build: str):
    """The module of this build tree, whatever the virtual environment's path says."""
    sys.path.insert(0, str(pathlib.Path(build).resolve() / "python"))
    import cytonet

    return cytonet


def import_cytonet_torch():
    """python/cytonet_torch.py of this checkout (the PyTorch twins of train/)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "python"))
    import cytonet_torch

    return cytonet_torch

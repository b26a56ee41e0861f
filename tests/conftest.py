"""Fixtures for the interop tests: our binaries, and helpers to run them."""
import pathlib
import subprocess

import pytest


def pytest_addoption(parser):
    parser.addoption("--cytonet-bin", default="build", help="CMake build directory")


class Cytonet:
    """Runs our command-line tools; every failure shows their stderr."""

    def __init__(self, build: pathlib.Path):
        self.cli = build / "cli" / "cytonet"
        self.helper = build / "tests" / "interop_helper"

    def run(self, *args, check=True):
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{args[0]} failed ({result.returncode}): {result.stderr}")
        return result

    def read(self, root, array_path, out, box=None):
        args = [self.cli, "read", root, "--array", array_path, "--out", out]
        if box:
            args += ["--box", box]
        return self.run(*args)


@pytest.fixture(scope="session")
def cytonet(request):
    build = pathlib.Path(request.config.getoption("--cytonet-bin")).resolve()
    tools = Cytonet(build)
    for tool in (tools.cli, tools.helper):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: build the project first")
    return tools

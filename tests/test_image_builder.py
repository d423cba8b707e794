"""Pure parts of docker/build_local_image.py (the image build itself is in
test_container_pipeline)."""
from __future__ import annotations

import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location(
    "build_local_image", os.path.join(HERE, "..", "docker", "build_local_image.py"))
builder = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(builder)


def test_mirror_comes_from_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# http://old.example/debian\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n")
    assert builder.configured_debian_mirror(str(tmp_path)) == "http://mirror.example/debian"


def test_mirror_comes_from_one_line_sources(tmp_path):
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.example/ubuntu jammy main\n"
        "deb http://archive.example/debian/ bookworm main\n")
    assert builder.configured_debian_mirror(str(tmp_path)) == "http://archive.example/debian/"


def test_no_debian_archive_is_a_clear_error(tmp_path):
    (tmp_path / "sources.list").write_text("# nothing here\n")
    with pytest.raises(builder.BuildError, match="set DEBIAN_MIRROR"):
        builder.configured_debian_mirror(str(tmp_path))

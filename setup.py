"""Build steps pyproject.toml cannot express: ship ``lm_eval_erank_autoload.pth`` at the top of
site-packages, in the wheel and in an editable install (``pip install -e .``), so that lm-eval
finds the plugin without a wrapper command (see ``lm_eval_erank_autoload.py``)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH_NAME = "lm_eval_erank_autoload.pth"
# One line; site.py executes lines that start with "import". A missing module (a half-removed
# install) must not print a traceback at every interpreter start.
PTH_LINE = "import sys; exec('try: import lm_eval_erank_autoload\\nexcept ImportError: pass')\n"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib, PTH_NAME)
        target.write_text(PTH_LINE)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib, PTH_NAME))]


class EditableWheelWithPth(editable_wheel):
    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
        result = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        Path(unpacked_wheel, PTH_NAME).write_text(PTH_LINE)
        return result


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})

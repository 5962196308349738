"""lm_eval_erank.testing.tiny, the builders the tests, the studies and the example share: its
examples run (in a temporary folder, with a tokenizer trained on the fixture texts)."""

from __future__ import annotations

import doctest

from lm_eval_erank.testing import tiny


def test_the_examples_run(make_tokenizer, tmp_path):
    runner = doctest.DocTestRunner()
    globs = {"tmp": tmp_path, "tokenizer": make_tokenizer(add_bos=False)}
    ran = set()
    for test in doctest.DocTestFinder().find(tiny, globs=dict(vars(tiny), **globs)):
        if test.examples:
            assert runner.run(test, out=lambda text: None).failed == 0, test.name
            ran.add(test.name.rsplit(".", 1)[-1])
    public = {name for name, value in vars(tiny).items()
              if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == tiny.__name__}
    assert public and public <= ran, public - ran

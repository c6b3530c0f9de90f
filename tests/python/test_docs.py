"""docs/PYTHON.md runs: its ```python blocks, in order, in one namespace (as a reader would type them)."""

import os
import re
import unittest


class DocsTest(unittest.TestCase):
    def test_python_md_snippets_run(self):
        source = os.environ.get("TP_SOURCE_DIR")
        if not source:
            self.skipTest("TP_SOURCE_DIR is not set (run through ctest)")
        with open(os.path.join(source, "docs", "PYTHON.md")) as f:
            text = f.read()
        blocks = re.findall(r"```python\n(.*?)```", text, re.S)
        self.assertGreaterEqual(len(blocks), 6)
        namespace = {"__name__": "docs"}
        for i, block in enumerate(blocks):
            with self.subTest(block=i):
                exec(compile(block, "PYTHON.md block %d" % i, "exec"), namespace)


if __name__ == "__main__":
    unittest.main()

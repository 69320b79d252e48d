"""Run vugrad's own test suite against tapegrad, with only its import line changed.

    python experiments/vugrad_suite.py PATH_TO_VUGRAD_CHECKOUT      # e.g. a clone of dlvu/vugrad

The suite (tests/tests.py of the checkout) is copied into a temporary folder, `import vugrad as vg`
becomes `import tapegrad as vg`, and it runs under unittest; the script prints the counts and exits
with unittest's status. The suite imports torch (it uses none of it): install it first. With numpy
2.4 or newer, three of its tests fail for vugrad and tapegrad alike (they call float() on a
one-element array, which numpy 2.4 refuses); use numpy < 2.4 to see them pass.
"""

import os
import shutil
import subprocess
import sys
import tempfile


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__)
    source = os.path.join(argv[0], "tests", "tests.py")
    if not os.path.isfile(source):
        sys.exit(f"vugrad_suite: no tests/tests.py under {argv[0]!r}; give the folder of a vugrad checkout")
    with tempfile.TemporaryDirectory() as tmp:
        with open(source) as f:
            code = f.read()
        if "import vugrad as vg" not in code:
            sys.exit("vugrad_suite: the suite has no line 'import vugrad as vg' to change")
        with open(os.path.join(tmp, "tests.py"), "w") as f:
            f.write(code.replace("import vugrad as vg", "import tapegrad as vg"))
        with open(os.path.join(tmp, "_context.py"), "w") as f:
            f.write("")  # vugrad's _context puts its own package on sys.path; tapegrad is installed
        shutil.copymode(source, os.path.join(tmp, "tests.py"))
        return subprocess.call([sys.executable, "-m", "unittest", "-v", "tests"], cwd=tmp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``python -m smtgrad.fuzz``: the differential fuzzer's old entry point.

The fuzzer itself is a developer tool in the source checkout (``tools/fuzz.py``, run
as ``python -m tools.fuzz``) and is not installed with the package; this module
forwards to it when run from a checkout.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from tools.fuzz import main as fuzz_main
    except ImportError:
        sys.stderr.write("smtgrad: the fuzzer lives in tools/fuzz.py of the source checkout; "
                         "run `python -m tools.fuzz` from the repository root\n")
        return 2
    return fuzz_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

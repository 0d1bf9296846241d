"""`python -m bench.micro NAME SCALE OUT`: one micro-benchmark, its result as JSON in OUT.

Started by `bench.micro.run_one` in a fresh process; not meant to be run by hand.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from bench.micro import MICRO_BENCHMARKS
from bench.micro.scale import SCALES


def main(argv: list[str]) -> int:
    name, scale, out = argv
    module = importlib.import_module(MICRO_BENCHMARKS[name])
    result = module.measure(SCALES[scale])
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

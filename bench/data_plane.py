"""The data-plane benchmark; the same as `enrgdaq bench` (see docs/benchmarks.md).

python bench/data_plane.py [--quick] [--json]
"""

import sys

from enrgdaq.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

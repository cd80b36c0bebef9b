"""Rollout-engine and CEM speed at the PETS shape (same as ``mbrl bench speed``).

Usage: python scripts/bench_rollout.py [--device cuda] [--repeats 5]
"""

import sys

from mbrl.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "speed", *sys.argv[1:]]))

"""``python -m mbrl.export RUN_DIR --what policy|planner --out FILE.pt2`` (= ``mbrl export``)."""

import sys

from mbrl.commands.export import cli

if __name__ == "__main__":
    sys.exit(cli())

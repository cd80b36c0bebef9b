"""``python -m mbrl.imagination --env ID --steps N [--seed S] [--out DIR]``: the imagination
actor-critic loop (what ``mbrl dyna --algo imagine`` runs once wired)."""

import argparse
import sys

from mbrl.imagination.loop import ImagineLoopConfig, main_from_args


def main() -> int:
    """Parse the flags and run the loop; bad input exits with code 2."""
    defaults = ImagineLoopConfig()
    parser = argparse.ArgumentParser(prog="python -m mbrl.imagination", description=__doc__)
    parser.add_argument("--env", default=defaults.env_id)
    parser.add_argument("--steps", type=int, default=defaults.total_steps, help="real env steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-every", type=int, default=defaults.steps_per_round)
    parser.add_argument("--out", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true")
    try:
        return main_from_args(parser.parse_args())
    except (ValueError, TypeError) as err:
        print(f"python -m mbrl.imagination: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks.

- :mod:`mbrl.bench.suite`: suites (grids of envs x models x planners x seeds, TOML files in
  ``mbrl/bench/suites``), validated before anything runs and run resumably
  (``mbrl bench --suite NAME --out DIR``);
- :mod:`mbrl.bench.cells`: one cell (a :class:`~mbrl.agents.loop.RunConfig` run in isolation,
  checkpointed in its own run directory where the workers share the driver's disk) and its
  stored results;
- :mod:`mbrl.bench.watch`: episode-level progress of the running cells, read from their run
  directories;
- :mod:`mbrl.bench.executors`: where cells run (local process pool, Ray, inline);
- :mod:`mbrl.bench.report`: figures and ranking tables (``mbrl report DIR``);
- :mod:`mbrl.bench.speed`: rollout throughput vs a bare forward pass and planner latency
  (``mbrl bench speed``).
"""

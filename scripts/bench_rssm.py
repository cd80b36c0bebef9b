"""RSSM training throughput at PlaNet's sizes: train steps per second on ``--device``.

Defaults are PlaNet's (batch 50 x chunk 50, 200-unit GRU, 30-d stochastic state, 200-unit MLPs,
conv depth 32 on 64 x 64 images). Synthetic data, one Adam step per iteration (forward through
the whole chunk, backward, clip, update), timed after warm-up with the device synchronised.

    python scripts/bench_rssm.py --device cpu --obs image --steps 3
    python scripts/bench_rssm.py --device cuda --obs image --steps 50
"""

from __future__ import annotations

import argparse
import time

import torch

from mbrl.data.sequence_buffer import random_sequence_batch
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.networks import RSSMConfig
from mbrl.seeding import make_generator, resolve_device


def bench(args: argparse.Namespace) -> float:
    """Train steps per second for the settings in ``args``."""
    device = resolve_device(args.device)
    torch.manual_seed(0)
    obs_shape = (args.image_size, args.image_size, 3) if args.obs == "image" else (args.obs_dim,)
    cfg = RSSMConfig(
        deter_size=args.deter, stoch_size=args.stoch, hidden_size=args.hidden,
        embed_size=args.hidden, cnn_depth=args.cnn_depth,
    )  # fmt: skip
    model = RSSM(obs_shape, args.action_dim, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    gen = make_generator(0, device)
    batch = random_sequence_batch(obs_shape, args.action_dim, args.batch, args.chunk, gen)

    def step() -> None:
        loss, _ = model.loss(batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    rate = args.steps / (time.perf_counter() - start)
    print(
        f"device={device} threads={torch.get_num_threads()} obs={args.obs}{obs_shape} "
        f"batch={args.batch}x{args.chunk} gru={args.deter} stoch={args.stoch} "
        f"hidden={args.hidden} -> {rate:.3f} train steps/s ({1e3 / rate:.0f} ms/step)"
    )
    return rate


def main() -> None:
    """Parse flags and print train steps/s."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    p.add_argument("--obs", choices=["image", "vector"], default="image")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--obs-dim", type=int, default=3, help="vector observation size")
    p.add_argument("--action-dim", type=int, default=1)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--deter", type=int, default=200)
    p.add_argument("--stoch", type=int, default=30)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--cnn-depth", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bench(args)


if __name__ == "__main__":
    main()

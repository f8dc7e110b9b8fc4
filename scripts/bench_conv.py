"""Convolution inside a training loop on CPU: haiku's `hk.Conv2D` beside `networks.Conv2D`.

XLA's CPU convolution runs several times slower inside a loop body than outside one
(jax-ml/jax#12868), and every training step of ours runs inside a `lax.scan`. `networks.Conv2D`
(the conv torso's layer) has `hk.Conv2D`'s parameters but computes the convolution on CPU as
patches times a matrix. This times both, side by side in one process: `--steps` SGD steps of the
default conv torso (`networks.ConvTorso`: one 3x3 conv of 16 channels for MinAtar's 10x10xC
frames, the Nature-DQN stack for 84x84 frames, then a dense layer of `--hidden` units) on
batches of `--batch` frames, all in one `lax.scan`, and one step alone (no loop). Repetitions
alternate the two; medians.

    python scripts/bench_conv.py [--frame 10,10,4] [--batch 128] [--steps 32] [--reps 5]

Ends with `lax.conv/patches time per step in a scan: X.XX`.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import haiku as hk
import jax
import jax.numpy as jnp

from inject_rl.agents import networks


class _HaikuConvTorso(networks.ConvTorso):
    """`networks.ConvTorso` with `hk.Conv2D` layers (`lax.conv` everywhere)."""

    def __call__(self, x):
        lead = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:])).astype(jnp.float32)
        big = min(x.shape[1:3]) >= 36
        layers = ((32, 8, 4), (64, 4, 2), (64, 3, 1)) if big else ((16, 3, 1),)
        for i, (channels, kernel, stride) in enumerate(layers):
            conv = hk.Conv2D(channels, kernel, stride, padding="VALID", name=f"c{i}")
            x = jax.nn.relu(conv(x))
        x = x.reshape((*lead, -1))
        return networks.MLP(self.hidden, activation=self.activation, name="mlp")(x)


def _programs(torso_cls, hidden, xs):
    net = hk.without_apply_rng(hk.transform(lambda x: (torso_cls(hidden, name="t")(x) ** 2).sum()))
    params = net.init(jax.random.key(0), xs[0])
    grad = jax.grad(net.apply)

    def sgd(p, x):
        return jax.tree.map(lambda a, b: a - 1e-6 * b, p, grad(p, x))

    @jax.jit
    def scanned(p, xs):
        return jax.lax.scan(lambda p, x: (sgd(p, x), None), p, xs)[0]

    one = jax.jit(sgd)
    jax.block_until_ready((scanned(params, xs), one(params, xs[0])))  # compile
    return params, scanned, one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frame", default="10,10,4", help="H,W,C of a frame")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32, help="gradient steps in the scan")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    frame = tuple(int(v) for v in args.frame.split(","))
    if len(frame) != 3 or min(frame) < 1 or min(args.batch, args.steps, args.reps) < 1:
        ap.error(f"--frame must be H,W,C and the sizes >= 1, got {args.frame=}")
    xs = jax.random.uniform(jax.random.key(1), (args.steps, args.batch, *frame))
    variants = {
        "lax.conv (hk.Conv2D)": _programs(_HaikuConvTorso, (args.hidden,), xs),
        "patches (networks.Conv2D)": _programs(networks.ConvTorso, (args.hidden,), xs),
    }
    print(
        f"# {datetime.date.today()} {platform.machine()}, jax {jax.__version__} "
        f"{jax.default_backend()}; frames {frame}, batch {args.batch}, {args.steps} steps per "
        f"scan, median of {args.reps}"
    )
    in_scan = {k: [] for k in variants}
    alone = {k: [] for k in variants}
    for _ in range(args.reps):
        for name, (params, scanned, one) in variants.items():
            t = time.perf_counter()
            jax.block_until_ready(scanned(params, xs))
            in_scan[name].append((time.perf_counter() - t) / args.steps)
            t = time.perf_counter()
            for x in xs:
                jax.block_until_ready(one(params, x))
            alone[name].append((time.perf_counter() - t) / args.steps)
    print(f"{'variant':28s} {'in a scan (ms/step)':>20s} {'alone (ms/step)':>16s}")
    for name in variants:
        print(
            f"{name:28s} {statistics.median(in_scan[name]) * 1e3:20.2f} "
            f"{statistics.median(alone[name]) * 1e3:16.2f}"
        )
    conv, patches = (statistics.median(in_scan[k]) for k in variants)
    print(f"lax.conv/patches time per step in a scan: {conv / patches:.2f}")


if __name__ == "__main__":
    main()

"""Cost of the grokking DMFT (dmft/grokking.py): where an iteration's time goes, and the whole
solve side by side with the N -> infinity simulation it predicts.

Part 1 (phases): one fixed-point iteration at n time points, M paths, M_R response paths and
bulk rank r is split into its phases (kernels, mixing, bulk solves, path march, responses,
averages; `dmft.grokking_cost.iteration_work` counts their flops and bytes from the shapes);
each phase is compiled alone and timed on the same inputs, and its achieved flop/s is printed as
a fraction of the float64 matmul rate measured in the same run (a 1024 x 1024 product).

Part 2 (side by side): for each D, one alpha at P/D = 5, eps = 0.02, t_max = 80 D,
lr_scale = D / 20: wall time of `lazyrich.sweep("grokking", dynamics="infinite")` over 8 seeds
(compilation included, as a user pays it) against `dmft.grokking.solve` with the given settings,
measured one after the other in this process, with the theory's relative L2 error of the
seed-mean test loss, its grokking time and its train-to-test delay against that simulation.
With --reference-tol, the same solve is repeated (untimed) to that tighter tolerance and the
timed solve's distance from it is printed: what the looser `tol` of the timed solve costs in
accuracy (relative L2 of the test loss, relative change of the grokking time and the delay).

    python benchmarks/dmft_cost.py [--points 337] [--samples 1000] [--response 64] [--rank 48]
        [--dims 100 200] [--solve anderson=5 n_samples=400 ...] [--skip-phases]
        [--grid uniform adaptive] [--reference-tol 1e-7]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dmft import grokking
from dmft import grokking_paths as paths_
from dmft import grokking_response as response_
from dmft.grokking_agreement import parse_solve_settings
from dmft.grokking_cost import iteration_work
from dmft.grokking_timing import delay, grokking_time


def _best_seconds(function, *args, repeats: int = 3) -> float:
    """Fastest of `repeats` timed calls of the compiled function (after one warm-up call)."""
    compiled = jax.jit(function)
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(size: int = 1024) -> float:
    """Achieved float64 flop/s of a size x size matrix product on this machine, now."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)))
    return 2 * size**3 / _best_seconds(lambda x: x @ x, a)


def phase_seconds(n: int, samples: int, response: int, rank: int) -> dict:
    """{phase: seconds} of one iteration at these sizes (alpha = 1, eps = 0.02, lam = 5,
    D = 100), from a state two iterations away from zero (so every array is populated), and the
    whole compiled iteration under 'whole'."""
    p = {"alpha": 1.0, "eps": 0.02, "lam": 5.0, "ds": 0.24, "dim": 100, "scale": 1.0}
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=samples))
    mixing = jnp.asarray(np.linalg.qr(rng.normal(size=(samples, samples)))[0])
    state = (jnp.zeros((samples, n, 2)), jnp.zeros((n, n, 2, 2)), jnp.zeros((n, n)),
             jnp.zeros((n, n)), jnp.zeros((n, n)), jnp.zeros(n), jnp.zeros((samples, n)))
    step = jax.jit(lambda s: grokking._iterate(s, p, z, mixing, response, rank))
    for _ in range(2):
        state = step(state)[0]
    forces, resp, resp_g, noise_g, xi, rho, lagged = state
    c, lam = 2 * p["ds"] / p["lam"], p["lam"]

    def kernels(resp, resp_g, noise_g):
        bulk, initial = paths_.bulk_kernel(resp_g, c, lam)
        covariance = jnp.outer(initial, initial) + c**2 * lam * bulk @ noise_g @ bulk.T
        return paths_.weight_kernel(resp, c, lam), bulk, paths_.low_rank_factor(covariance,
                                                                                rank)[0]

    kernel, bulk, factor = kernels(resp, resp_g, noise_g)

    def mix(kernel, forces):
        weights = jnp.einsum("kjab,mjb->mka", kernel, forces)
        return c * jnp.sqrt(lam) * jnp.einsum("nm,mka->nka", mixing, weights)

    chi = mix(kernel, forces)
    rows = paths_.bulk_rows(factor, bulk, lagged, p)
    a2 = paths_.spike_seed_variance(xi, rho, p["ds"], p)
    _, delta, nu, a, m, _ = paths_.paths(chi, z, kernel, bulk, factor, a2, p, rows=rows)

    def responses(a, m, delta, rows):
        def accumulate(totals, args):
            one, one_g = response_.path_response(*args, nu, kernel, bulk, p)
            return (totals[0] + one, totals[1] + one_g), None
        picked = (a[:response], m[:response], delta[:response], rows[:response], z[:response])
        return jax.lax.scan(accumulate, (jnp.zeros((n, n, 2, 2)), jnp.zeros((n, n))),
                            picked)[0]

    def averages(delta, rows):
        weighted = delta[:, :, None] * rows
        return (jnp.einsum("mkr,mjr->kj", weighted, weighted),
                jnp.einsum("m,mkr,mjr->kj", z**2, weighted, weighted),
                response_.local_jacobian(a, m, z, nu, p))

    return {
        "kernels": _best_seconds(kernels, resp, resp_g, noise_g),
        "mixing": _best_seconds(mix, kernel, forces),
        "bulk solves": _best_seconds(lambda f, b, d: paths_.bulk_rows(f, b, d, p), factor,
                                     bulk, lagged),
        "path march": _best_seconds(lambda x, y: paths_.paths(x, z, kernel, bulk, factor, a2,
                                                              p, rows=y), chi, rows),
        "responses": _best_seconds(responses, a, m, delta, rows),
        "averages": _best_seconds(averages, delta, rows),
        "whole": _best_seconds(step, state),
    }


def print_phases(n: int, samples: int, response: int, rank: int) -> None:
    jax.config.update("jax_enable_x64", True)
    rate = matmul_rate()
    seconds = phase_seconds(n, samples, response, rank)
    work = iteration_work(n, samples, response, rank)
    print(f"one iteration, n = {n}, M = {samples}, M_R = {response}, r = {rank} (float64); "
          f"matmul rate in this run {rate / 1e9:.1f} Gflop/s")
    print(f"{'phase':>12} {'seconds':>8} {'Gflop':>8} {'MB':>8} {'Gflop/s':>8} "
          f"{'of matmul':>9} {'GB/s':>6}")
    for phase, (flops, bytes_) in work.items():
        t = seconds[phase]
        print(f"{phase:>12} {t:>8.3f} {flops / 1e9:>8.2f} {bytes_ / 1e6:>8.0f} "
              f"{flops / t / 1e9:>8.2f} {flops / t / rate:>9.1%} {bytes_ / t / 1e9:>6.1f}")
    total = sum(f for f, _ in work.values())
    print(f"{'whole':>12} {seconds['whole']:>8.3f} {total / 1e9:>8.2f} {'':>8} "
          f"{total / seconds['whole'] / 1e9:>8.2f} {total / seconds['whole'] / rate:>9.1%}; "
          f"sum of phases {sum(v for k, v in seconds.items() if k != 'whole'):.3f} s")


def _teacher_scales(seeds, dim: int, P: int) -> list[float]:
    import lazyrich
    from lazyrich.experiments import grokking as experiment

    params = lazyrich.get_experiment("grokking").defaults(D=dim, P=P, N=1, n_test=1,
                                                          dynamics="infinite")
    return [float(np.sum(np.asarray(experiment.init(jax.random.key(s), params)["data"]["beta"],
                                    np.float64) ** 2) / dim) for s in seeds]


def _test_loss_change(curves, reference) -> dict:
    """Relative L2 distance of two solves' test-loss curves and the relative change of their
    grokking times and delays (same grid)."""
    t = reference.time.values
    (test, train), (test_ref, train_ref) = (
        [c.isel(alpha=0, eps=0, target_scale=0)[v].values for v in ("test_loss", "train_loss")]
        for c in (curves, reference))
    return {"ref L2": np.linalg.norm(test - test_ref) / np.linalg.norm(test_ref),
            "ref grok": grokking_time(t, test) / grokking_time(t, test_ref) - 1,
            "ref delay": delay(t, train, test) / delay(t, train_ref, test_ref) - 1}


def side_by_side(dim: int, settings: dict, seeds: int = 8, grid: str = "uniform",
                 reference_tol: float | None = None) -> dict:
    """Wall seconds of the 8-seed N -> infinity simulation and of one DMFT solve at D = dim
    (P = 5 D, alpha = 1, eps = 0.02, t_max = 80 D), and the theory's errors against it.
    grid "adaptive": `grokking.adaptive_times` with the implicit scheme instead of the default
    uniform grid. reference_tol: also solve (untimed) to this tolerance and report the timed
    solve's distance from it (`_test_loss_change`)."""
    import lazyrich

    lr_scale, t_max = dim / 20, 80.0 * dim
    start = time.perf_counter()
    sim = lazyrich.sweep("grokking", alpha=1.0, eps=0.02, D=dim, P=5 * dim, N=1, n_test=10,
                         lr_scale=lr_scale, steps=1600, log_every=10, dynamics="infinite",
                         seed=list(range(seeds)), progress=False)
    simulated_seconds = time.perf_counter() - start
    scale = float(np.mean(_teacher_scales(range(seeds), dim, 5 * dim)))
    horizon = ({"t_max": t_max} if grid == "uniform" else
               {"times": grokking.adaptive_times(t_max, dim, 5.0, 1.0, 0.02),
                "scheme": "implicit"})
    start = time.perf_counter()
    theory = grokking.solve(1.0, 0.02, 5.0, lr_scale, D=dim, target_scale=scale,
                            progress=False, **{**horizon, **settings})
    theory_seconds = time.perf_counter() - start
    against_reference = {}
    if reference_tol is not None:
        reference = grokking.solve(1.0, 0.02, 5.0, lr_scale, D=dim, target_scale=scale,
                                   progress=False,
                                   **{**horizon, **settings, "tol": reference_tol})
        against_reference = _test_loss_change(theory, reference)
    t = sim.time.values
    sim_test = sim.test_loss_population.mean("seed").values
    sim_train = sim.train_loss.mean("seed").values
    one = theory.isel(alpha=0, eps=0, target_scale=0)
    test, train = (one[v].interp(time=t).values for v in ("test_loss", "train_loss"))
    return {"D": dim, "sim s": simulated_seconds, "theory s": theory_seconds,
            "iterations": theory.attrs["iterations"], "points": theory.time.size,
            "test L2": np.linalg.norm(test - sim_test) / np.linalg.norm(sim_test),
            "grok": grokking_time(t, test) / grokking_time(t, sim_test) - 1,
            "delay": delay(t, train, test) / delay(t, sim_train, sim_test) - 1,
            **against_reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=337)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--response", type=int, default=64)
    parser.add_argument("--rank", type=int, default=48)
    parser.add_argument("--dims", type=int, nargs="*", default=[100, 200])
    parser.add_argument("--solve", nargs="*", default=[],
                        help="solve settings as name=value (e.g. anderson=0 bulk_rank=16)")
    parser.add_argument("--skip-phases", action="store_true")
    parser.add_argument("--grid", choices=("uniform", "adaptive"), nargs="+",
                        default=["uniform"], help="the DMFT's time grid(s) in the side by side: "
                        "uniform (default_dt, explicit) and/or adaptive (adaptive_times, "
                        "implicit)")
    parser.add_argument("--reference-tol", type=float, default=None,
                        help="also solve to this tighter tol (untimed) and print how far the "
                        "timed solve is from it")
    args = parser.parse_args()
    if not args.skip_phases:
        print_phases(args.points, args.samples, args.response, args.rank)
    settings = parse_solve_settings(args.solve)
    jnp.zeros(()).block_until_ready()   # start the backend here, not in the first timed run
    if args.dims:
        print(f"side by side, solve settings {settings or 'defaults'}; errors against the "
              f"simulation's seed mean (grok, delay: relative)")
        print(f"{'D':>4} {'grid':>8} {'sim s':>7} {'theory s':>9} {'ratio':>6} {'iters':>5} "
              f"{'n':>4} {'test L2':>8} {'grok':>7} {'delay':>7}"
              + (f"   vs tol={args.reference_tol:g}: {'L2':>8} {'grok':>8} {'delay':>8}"
                 if args.reference_tol is not None else ""))
    for dim in args.dims:
        for grid in args.grid:
            row = side_by_side(dim, settings, grid=grid, reference_tol=args.reference_tol)
            print(f"{row['D']:>4} {grid:>8} {row['sim s']:>7.1f} {row['theory s']:>9.1f} "
                  f"{row['theory s'] / row['sim s']:>6.2f} {row['iterations']:>5} "
                  f"{row['points']:>4} {row['test L2']:>8.1%} {row['grok']:>+7.1%} "
                  f"{row['delay']:>+7.1%}"
                  + (f"   {'':>{len(f'vs tol={args.reference_tol:g}:')}} {row['ref L2']:>8.1e} "
                     f"{row['ref grok']:>+8.1e} {row['ref delay']:>+8.1e}"
                     if args.reference_tol is not None else ""), flush=True)


if __name__ == "__main__":
    main()

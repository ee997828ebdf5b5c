"""Bad input to the theory (`dmft`): a catalogue of cases over every public function.

Each case checks that the call raises the stated type (`ValueError` for a wrong value,
`TypeError` for a wrong kind of value) before any work, and that the message names the argument
(and, where the value is a scalar, the value received).
"""

import numpy as np
import pytest

from dmft import committee, grokking, kernel, linear

NAN, INF = float("nan"), float("inf")
EYE2, EYE3 = np.eye(2), np.eye(3)
SOLVE = {"alpha": 1.0, "eps": 0.1, "P_over_D": 3.0, "t_max": 100.0, "dt": 5.0, "D": 20,
         "n_samples": 200, "n_response": 4, "progress": False}
ADAPTIVE = {"t_max": 1000.0, "D": 30, "P_over_D": 3.0, "alpha": 1.0, "eps": 0.05}
CURVES = {"kernel_train": EYE3, "kernel_test_train": np.ones((1, 3)), "y_train": np.ones(3),
          "y_test": np.ones(1), "steps": [1], "learning_rate": 0.1}
ODE = {"lr": 0.5, "Q": EYE2, "R": EYE2, "T": EYE2, "t_max": 1.0, "dt": 0.1}
X = np.ones((4, 3))


def _nan_at(array, index=0):
    array = np.array(array, dtype=float)
    array.flat[index] = NAN
    return array


# (function, base keywords, changed keywords, error type, regex the message must match)
CASES = {
    "response_paths bad sampling": (grokking.response_paths, {"z": [0.1, -1.0], "n_response": 1},
                                    {"sampling": "random"}, ValueError, r"'random'"),
    "response_paths too many": (grokking.response_paths, {"z": [0.1, -1.0], "n_response": 1},
                                {"n_response": 3}, ValueError, r"n_response=3"),
    "response_paths zero": (grokking.response_paths, {"z": [0.1, -1.0], "n_response": 1},
                            {"n_response": 0}, ValueError, r"n_response"),
    "response_paths nan z": (grokking.response_paths, {"z": [0.1, -1.0], "n_response": 1},
                             {"z": [NAN, 1.0]}, ValueError, r"finite"),
    "implicit_step_tolerance dtype": (grokking.implicit_step_tolerance, {"dtype": "float64"},
                                      {"dtype": "float16"}, ValueError, r"'float16'"),
    "solve alpha nan": (grokking.solve, SOLVE, {"alpha": NAN}, ValueError, r"alpha=nan"),
    "solve alpha negative": (grokking.solve, SOLVE, {"alpha": -1.0}, ValueError, r"alpha=-1"),
    "solve alpha empty": (grokking.solve, SOLVE, {"alpha": []}, TypeError, r"alpha=\[\]"),
    "solve alpha 2-d": (grokking.solve, SOLVE, {"alpha": [[1.0]]}, TypeError, r"alpha="),
    "solve alpha text": (grokking.solve, SOLVE, {"alpha": "big"}, TypeError, r"alpha='big'"),
    "solve eps inf in list": (grokking.solve, SOLVE, {"eps": [0.1, INF]}, ValueError,
                              r"eps=\[0.1, inf\]"),
    "solve eps negative": (grokking.solve, SOLVE, {"eps": -0.1}, ValueError, r"eps=-0.1"),
    "solve target_scale zero": (grokking.solve, SOLVE, {"target_scale": 0.0}, ValueError,
                                r"target_scale=0"),
    "solve target_scale nan": (grokking.solve, SOLVE, {"target_scale": [1.0, NAN]},
                               ValueError, r"target_scale="),
    "solve P_over_D negative": (grokking.solve, SOLVE, {"P_over_D": -1.0}, ValueError,
                                r"P_over_D=-1"),
    "solve P_over_D nan": (grokking.solve, SOLVE, {"P_over_D": [3.0, NAN]}, ValueError,
                           r"P_over_D="),
    "solve lr_scale list": (grokking.solve, SOLVE, {"lr_scale": [0.5, 1.0]}, TypeError,
                            r"lr_scale=\[0.5, 1.0\] is a sequence"),
    "solve lr_scale zero": (grokking.solve, SOLVE, {"lr_scale": 0.0}, ValueError,
                            r"lr_scale=0"),
    "solve t_max inf": (grokking.solve, SOLVE, {"t_max": INF}, ValueError, r"t_max=inf"),
    "solve t_max below dt": (grokking.solve, SOLVE, {"t_max": 4.0}, ValueError,
                             r"t_max=4.0 must be at least dt=5.0"),
    "solve dt zero": (grokking.solve, SOLVE, {"dt": 0.0}, ValueError, r"dt=0"),
    "solve dt nan": (grokking.solve, SOLVE, {"dt": NAN}, ValueError, r"dt=nan"),
    "solve dt unstable": (grokking.solve, SOLVE, {"dt": 1e3, "t_max": 1e4}, ValueError,
                          r"dt=1000.0 is beyond .* stability limit"),
    "solve D one": (grokking.solve, SOLVE, {"D": 1}, ValueError, r"D=1"),
    "solve D fractional": (grokking.solve, SOLVE, {"D": 20.5}, TypeError, r"D=20.5"),
    "solve n_samples small": (grokking.solve, SOLVE, {"n_samples": 4}, ValueError,
                              r"n_samples=4"),
    "solve n_response zero": (grokking.solve, SOLVE, {"n_response": 0}, ValueError,
                              r"n_response=0"),
    "solve n_response above n_samples": (grokking.solve, SOLVE, {"n_response": 300},
                                         ValueError, r"n_response=300 .* n_samples=200"),
    "solve bulk_rank zero": (grokking.solve, SOLVE, {"bulk_rank": 0}, ValueError,
                             r"bulk_rank=0"),
    "solve damping zero": (grokking.solve, SOLVE, {"damping": 0.0}, ValueError, r"damping=0"),
    "solve damping above one": (grokking.solve, SOLVE, {"damping": 1.5}, ValueError,
                                r"damping=1.5"),
    "solve tol negative": (grokking.solve, SOLVE, {"tol": -1.0}, ValueError, r"tol=-1"),
    "solve max_iter zero": (grokking.solve, SOLVE, {"max_iter": 0}, ValueError,
                            r"max_iter=0"),
    "solve seed fractional": (grokking.solve, SOLVE, {"seed": 1.7}, TypeError, r"seed=1.7"),
    "solve seed negative": (grokking.solve, SOLVE, {"seed": -1}, ValueError, r"seed=-1"),
    "estimate_cost t_max negative": (grokking.estimate_cost, {}, {"t_max": -1.0}, ValueError,
                                     r"t_max=-1"),
    "estimate_cost dt zero": (grokking.estimate_cost, {}, {"dt": 0.0}, ValueError, r"dt=0"),
    "stability limit P_over_D zero": (grokking.stability_limit_dt, {"D": 100},
                                      {"P_over_D": 0.0}, ValueError, r"P_over_D=0"),
    "default dt t_max nan": (grokking.default_dt, {"D": 100, "P_over_D": 5.0},
                             {"t_max": NAN}, ValueError, r"t_max=nan"),
    "adaptive times alpha zero": (grokking.adaptive_times, ADAPTIVE, {"alpha": 0.0},
                                  ValueError, r"alpha=0"),
    "adaptive times t_max nan": (grokking.adaptive_times, ADAPTIVE, {"t_max": NAN},
                                 ValueError, r"t_max=nan"),
    "adaptive times D one": (grokking.adaptive_times, ADAPTIVE, {"D": 1}, ValueError, r"D=1"),
    "solve times nan": (grokking.solve, SOLVE, {"times": [0.0, NAN, 2.0], "dt": None,
                                                "t_max": None}, ValueError,
                        r"times has 1 NaN"),
    "curves kernel_train nan": (kernel.learning_curves, CURVES,
                                {"kernel_train": _nan_at(EYE3)}, ValueError,
                                r"kernel_train has 1 NaN"),
    "curves kernel_train shape": (kernel.learning_curves, CURVES, {"kernel_train": EYE2},
                                  ValueError, r"kernel_train has shape \(2, 2\)"),
    "curves kernel_test_train inf": (kernel.learning_curves, CURVES,
                                     {"kernel_test_train": np.full((1, 3), INF)}, ValueError,
                                     r"kernel_test_train has 3 NaN or infinite"),
    "curves y_train nan": (kernel.learning_curves, CURVES, {"y_train": _nan_at(np.ones(3))},
                           ValueError, r"y_train has 1 NaN"),
    "curves y_test 2-d": (kernel.learning_curves, CURVES, {"y_test": np.ones((1, 1))},
                          ValueError, r"y_test has shape \(1, 1\)"),
    "curves y_test complex": (kernel.learning_curves, CURVES, {"y_test": np.ones(1) * 1j},
                              TypeError, r"y_test is complex"),
    "curves steps negative": (kernel.learning_curves, CURVES, {"steps": [-1]}, ValueError,
                              r"steps=\[-1.\]"),
    "curves steps nan": (kernel.learning_curves, CURVES, {"steps": [NAN]}, ValueError,
                         r"steps has 1 NaN"),
    "curves learning_rate negative": (kernel.learning_curves, CURVES, {"learning_rate": -0.1},
                                      ValueError, r"learning_rate=-0.1"),
    "curves learning_rate nan": (kernel.learning_curves, CURVES, {"learning_rate": NAN},
                                 ValueError, r"learning_rate=nan"),
    "curves learning_rate unstable": (kernel.learning_curves, CURVES, {"learning_rate": 10.0},
                                      ValueError, r"learning_rate=10.0 is beyond"),
    "lazy steps negative": (kernel.grokking_lazy_curves, {}, {"steps": -10}, ValueError,
                            r"steps=-10"),
    "lazy steps zero": (kernel.grokking_lazy_curves, {}, {"steps": 0}, ValueError, r"steps=0"),
    "lazy log_every zero": (kernel.grokking_lazy_curves, {}, {"log_every": 0}, ValueError,
                            r"log_every=0"),
    "lazy log_every not dividing": (kernel.grokking_lazy_curves, {},
                                    {"steps": 10, "log_every": 3}, ValueError,
                                    r"log_every=3 does not divide steps=10"),
    "lazy seed fractional": (kernel.grokking_lazy_curves, {}, {"seed": 1.7}, TypeError,
                             r"seed=1.7"),
    "lazy seed negative in list": (kernel.grokking_lazy_curves, {}, {"seed": [0, -1]},
                                   ValueError, r"seed=-1"),
    "lazy seed 2**32": (kernel.grokking_lazy_curves, {}, {"seed": 2**32}, ValueError,
                        r"seed=4294967296"),
    "lazy seed empty": (kernel.grokking_lazy_curves, {}, {"seed": []}, TypeError, r"seed=\[\]"),
    "lazy N zero": (kernel.grokking_lazy_curves, {}, {"N": 0}, ValueError, r"N=0"),
    "lazy N text": (kernel.grokking_lazy_curves, {}, {"N": "wide"}, ValueError,
                    r"N='wide'.*'infinite'"),
    "lazy D zero": (kernel.grokking_lazy_curves, {}, {"D": 0}, ValueError, r"D=0"),
    "lazy P fractional": (kernel.grokking_lazy_curves, {}, {"P": 2.5}, TypeError, r"P=2.5"),
    "lazy n_test zero": (kernel.grokking_lazy_curves, {}, {"n_test": 0}, ValueError,
                         r"n_test=0"),
    "lazy eps nan": (kernel.grokking_lazy_curves, {}, {"eps": NAN}, ValueError, r"eps=nan"),
    "lazy lr_scale negative": (kernel.grokking_lazy_curves, {}, {"lr_scale": -1.0}, ValueError,
                               r"lr_scale=-1"),
    "lazy init_scale inf": (kernel.grokking_lazy_curves, {}, {"init_scale": INF}, ValueError,
                            r"init_scale=inf"),
    "infinite kernel x1 nan": (kernel.grokking_infinite_width_kernel, {"x2": X, "eps": 0.1},
                               {"x1": _nan_at(X)}, ValueError, r"x1 has 1 NaN"),
    "infinite kernel x2 dimension": (kernel.grokking_infinite_width_kernel,
                                     {"x1": X, "eps": 0.1}, {"x2": np.ones((4, 2))},
                                     ValueError, r"x2 has shape \(4, 2\)"),
    "infinite kernel eps nan": (kernel.grokking_infinite_width_kernel, {"x1": X, "x2": X},
                                {"eps": NAN}, ValueError, r"eps=nan"),
    "finite kernel weights nan": (kernel.grokking_finite_width_kernel,
                                  {"x1": X, "x2": X, "eps": 0.1},
                                  {"weights": _nan_at(np.ones((5, 3)))}, ValueError,
                                  r"weights has 1 NaN"),
    "finite kernel weights dimension": (kernel.grokking_finite_width_kernel,
                                        {"x1": X, "x2": X, "eps": 0.1},
                                        {"weights": np.ones((5, 2))}, ValueError,
                                        r"weights has shape \(5, 2\)"),
    "ode log_every zero": (committee.solve, ODE, {"log_every": 0}, ValueError,
                           r"log_every=0"),
    "ode log_every negative": (committee.solve, ODE, {"log_every": -1}, ValueError,
                               r"log_every=-1"),
    "ode log_every fractional": (committee.solve, ODE, {"log_every": 1.5}, TypeError,
                                 r"log_every=1.5"),
    "ode progress not bool": (committee.solve, ODE, {"progress": "yes"}, TypeError,
                              r"progress='yes'"),
    "ode dt inf": (committee.solve, ODE, {"dt": INF}, ValueError, r"dt=inf"),
    "ode t_max not a multiple": (committee.solve, ODE, {"t_max": 1.05}, ValueError,
                                 r"t_max=1.05 must be a multiple of dt"),
    "ode t_max nan": (committee.solve, ODE, {"t_max": NAN}, ValueError, r"t_max=nan"),
    "ode lr nan": (committee.solve, ODE, {"lr": NAN}, ValueError, r"lr=nan"),
    "ode lr negative in list": (committee.solve, ODE, {"lr": [0.5, -1.0]}, ValueError,
                                r"lr=\[0.5, -1.0\]"),
    "ode Q nan": (committee.solve, ODE, {"Q": _nan_at(EYE2)}, ValueError, r"Q has 1 NaN"),
    "ode R inf": (committee.solve, ODE, {"R": np.full((2, 2), INF)}, ValueError,
                  r"R has 4 NaN or infinite"),
    "ode T nan": (committee.solve, ODE, {"T": _nan_at(EYE2, 3)}, ValueError, r"T has 1 NaN"),
    "ode output_scale zero": (committee.solve, ODE, {"output_scale": 0.0}, ValueError,
                              r"output_scale=0"),
    "ode batch_size zero": (committee.solve, ODE, {"batch_size": 0}, ValueError,
                            r"batch_size=0"),
    "ode inconsistent shapes": (committee.solve, ODE, {"R": np.ones((2, 1))}, ValueError,
                                r"inconsistent overlap shapes Q"),
    "linear W1 nan": (linear.initial_kernel_matrix, {"W2": np.ones(2)},
                      {"W1": _nan_at(np.ones((2, 3)))}, ValueError, r"W1 has 1 NaN"),
    "linear W2 size": (linear.initial_kernel_matrix, {"W1": np.ones((2, 3))},
                       {"W2": np.ones(3)}, ValueError, r"W1 has shape \(2, 3\) and W2 \(3,\)"),
    "alignment M0 not square": (linear.kernel_alignment, {"w": np.ones(3)},
                                {"M0": np.ones((3, 2))}, ValueError, r"M0 has shape \(3, 2\)"),
    "alignment M0 nan": (linear.kernel_alignment, {"w": np.ones(3)}, {"M0": _nan_at(EYE3)},
                         ValueError, r"M0 has 1 NaN"),
    "alignment M0 zero": (linear.kernel_alignment, {"w": np.ones(3)},
                          {"M0": np.zeros((3, 3))}, ValueError, r"M0 is zero"),
    "alignment w nan": (linear.kernel_alignment, {"M0": EYE3}, {"w": _nan_at(np.ones(3))},
                        ValueError, r"w has 1 NaN"),
    "alignment w dimension": (linear.kernel_alignment, {"M0": EYE3}, {"w": np.ones(2)},
                              ValueError, r"w has shape \(2,\)"),
    "alignment w zero": (linear.kernel_alignment, {"M0": EYE3}, {"w": np.zeros(3)},
                         ValueError, r"w has a zero task vector"),
    "expected alignment d mismatch": (linear.expected_kernel_alignment, {"M0": EYE3},
                                      {"d": 4}, ValueError, r"d=4 does not match M0"),
    "expected alignment d zero": (linear.expected_kernel_alignment, {"M0": EYE3}, {"d": 0},
                                  ValueError, r"d=0"),
    "rank_curve rank zero": (linear.rank_curve, {}, {"rank": [0]}, ValueError, r"rank=0"),
    "rank_curve rank too large": (linear.rank_curve, {}, {"rank": [100]}, ValueError,
                                  r"rank=100 is out of range"),
    "rank_curve rank scalar": (linear.rank_curve, {}, {"rank": 5}, TypeError, r"rank=5"),
    "rank_curve seed fractional": (linear.rank_curve, {"rank": [1]}, {"seed": [1.5]},
                                   TypeError, r"seed=1.5"),
    "rank_curve sigma zero": (linear.rank_curve, {"rank": [1]}, {"sigma": 0.0}, ValueError,
                              r"sigma=0"),
    "rank_curve d zero": (linear.rank_curve, {"rank": [1]}, {"d": 0}, ValueError, r"d=0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_naming_the_argument(case):
    """The call raises the stated error type, and the message names the argument (with the
    value received where it is a scalar or short list)."""
    function, base, change, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        function(**{**base, **change})


def test_catalogue_covers_every_public_function():
    """Every public function of the theory's modules has at least one case. Exempt: the
    jittable Gaussian integrals and ODE right-hand side of `committee` (they take traced arrays,
    not user input) and the byte counts the entry points call with validated sizes."""
    exempt = {"integral_i3", "integral_i4", "derivatives", "output_bytes", "curves_bytes",
              "lazy_curves_bytes", "Cost"}
    covered = {function.__name__ for function, *_ in CASES.values()}
    for module in (grokking, kernel, committee, linear):
        public = set(getattr(module, "__all__", [])) or {
            name for name in dir(module) if not name.startswith("_")
            and getattr(getattr(module, name), "__module__", "") == module.__name__}
        public = {name for name in public if callable(getattr(module, name))}
        missing = public - covered - exempt
        assert not missing, f"{module.__name__}: no bad-input case for {sorted(missing)}"
    assert len(CASES) >= 40

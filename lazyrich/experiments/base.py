"""The experiment protocol and the registry every experiment joins.

An experiment is one object that tells the engine (a) which parameters it takes, with their
defaults, types and whether they change array shapes, and (b) how to simulate one run as pure
functions over pytrees:

    state0 = experiment.init(key, params)           # params: dict name -> scalar
    state1 = experiment.step(state0, params)        # one optimisation step
    logged = experiment.metrics(state, params)      # dict of scalars, logged every log_every
    once = experiment.run_metrics(state, params)    # dict of scalars computed once per run

`params` mixes Python values (static parameters: they fix shapes and code paths and trigger one
compilation per value) and traced scalars (batched parameters: a whole grid of them runs in one
`jax.vmap`). The engine never looks inside the state.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

PARAMETER_KINDS = ("float", "int", "bool", "choice")
SEED_MAXIMUM = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter of an experiment.

    Attributes:
        default: value used when the caller does not give the parameter.
        kind: "float", "int", "bool" or "choice".
        static: True when the value changes array shapes or code paths (one compilation per
            value); False when runs with different values can be batched under `jax.vmap`.
        doc: one line saying what the parameter is, with units.
        minimum: smallest allowed value (numbers only), or None.
        exclusive_minimum: if True the minimum itself is not allowed ("> minimum").
        maximum: largest allowed value (numbers only, inclusive), or None.
        choices: allowed values for kind "choice".
        sweepable: False for parameters that fix the shape of the whole result (e.g. `steps`),
            which may only be given as scalars.
    """

    default: Any
    kind: str
    static: bool
    doc: str
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    choices: tuple = ()
    sweepable: bool = True

    def __post_init__(self):
        if self.kind not in PARAMETER_KINDS:
            raise ValueError(f"Parameter kind must be one of {PARAMETER_KINDS}, got {self.kind!r}")

    def allowed(self) -> str:
        """A human-readable description of the allowed values."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "True or False"
        noun = "an integer" if self.kind == "int" else "a real number"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:.0f}" if self.kind == "int"
                          else f"<= {self.maximum:g}")
        return " ".join([noun, " and ".join(bounds)]) if bounds else noun

    def validate(self, name: str, value: Any) -> Any:
        """Return `value` converted to the parameter's Python type, or raise.

        Raises:
            TypeError: the value has the wrong type (e.g. a string for a float).
            ValueError: the value has the right type but is out of range / not a choice.
        """
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{name}={value!r} is not allowed; "
                                 f"{name} must be {self.allowed()}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{name}={value!r} has type {type(value).__name__}; "
                                f"{name} must be {self.allowed()}")
            return bool(value)
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}={value!r} has type {type(value).__name__}; "
                            f"{name} must be {self.allowed()}")
        if self.kind == "int":
            if not isinstance(value, numbers.Integral):
                if float(value).is_integer():
                    value = int(value)
                else:
                    raise TypeError(f"{name}={value!r} is not an integer; "
                                    f"{name} must be {self.allowed()}")
            value = int(value)
        else:
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"{name}={value!r} is not finite; {name} must be {self.allowed()}")
        if self.minimum is not None:
            too_small = value <= self.minimum if self.exclusive_minimum else value < self.minimum
            if too_small:
                raise ValueError(f"{name}={value!r} is out of range; "
                                 f"{name} must be {self.allowed()}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{name}={value!r} is out of range; {name} must be {self.allowed()}")
        return value


@dataclasses.dataclass(frozen=True)
class Output:
    """A variable an experiment writes into the result Dataset.

    Attributes:
        doc: what the variable is, with its normalisation.
        per_step: True for curves logged every `log_every` steps (dims: axes..., step); False for
            one value per run (dims: axes...).
        when: name of a boolean parameter that must be True for the output to exist, or None.
        dims: names of the output's own trailing dimensions when it is an array rather than a
            scalar (e.g. ("student", "teacher") for an overlap matrix); () for scalars.
        at_ntk_steps: True for costly values computed by the experiment's `ntk_metrics` at the
            steps chosen with `sweep(..., ntk_steps=)` (dims: axes..., ntk_step); `per_step` is
            then ignored.
    """

    doc: str
    per_step: bool = True
    when: str | None = None
    dims: tuple[str, ...] = ()
    at_ntk_steps: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """An experiment: parameters, outputs, and the pure functions that simulate one run.

    Attributes:
        name: registry name, used as `lazyrich.sweep(name, ...)`.
        doc: one paragraph on what is simulated and where it comes from.
        parameters: name -> Parameter, in the order they are documented. Every experiment has
            `seed` (batched int), `steps` and `log_every` (scalar-only ints).
        outputs: name -> Output.
        init: (key, params) -> state.
        step: (state, params) -> state, one optimisation step.
        metrics: (state, params) -> dict of scalar arrays logged every `log_every` steps.
        run_metrics: (state0, params) -> dict of scalars computed once per run from the initial
            state, or None.
        check: (static_params) -> None, cross-parameter validation of the static parameters'
            Python values before any compilation (e.g. an option that needs another); raises
            ValueError.
        time_scale: how steps convert to the experiment's time, added as a `time` coordinate:
            the name of a parameter (`time = step * value`, e.g. the learning rate; a 2-d
            coordinate when that parameter is swept), or a function of the scalar parameters
            returning the time per step, whose docstring describes it (no coordinate when a
            parameter it reads is swept); or None.
        loss: name of the logged metric whose turning NaN/inf marks a run as diverged.
        ntk_metrics: (state, reference, params) -> dict of scalars for the outputs with
            `at_ntk_steps=True`, computed at the steps chosen with `sweep(ntk_steps=)`
            (default: first and last; see `lazyrich.core.ntk_steps`); or None.
        ntk_reference: (state0, params) -> pytree computed once per run and passed to
            `ntk_metrics` as `reference` (e.g. the initial kernel); None passes state0 itself.
        check_batched: (static_params, values) -> None, validation before any compilation of
            batched parameters against static ones (e.g. rank <= N); `values` maps every
            batched parameter to the tuple of values it takes in the sweep; raises ValueError.
        resolved_attrs: (static parameters of every static point, in grid order) -> dict of
            Dataset attrs recording choices the experiment makes from them (e.g. what
            `dynamics="auto"` runs); or None.
    """

    name: str
    doc: str
    parameters: Mapping[str, Parameter]
    outputs: Mapping[str, Output]
    init: Callable
    step: Callable
    metrics: Callable
    run_metrics: Callable | None = None
    check: Callable | None = None
    time_scale: str | Callable | None = None
    loss: str = "train_loss"
    ntk_metrics: Callable | None = None
    ntk_reference: Callable | None = None
    check_batched: Callable | None = None
    resolved_attrs: Callable | None = None

    def defaults(self, **overrides) -> dict[str, Any]:
        """Every parameter at its default, with `overrides` validated and applied.

        The result is the `params` dict that `init`, `step` and `metrics` take for one run.
        """
        unknown = sorted(set(overrides) - set(self.parameters))
        if unknown:
            raise ValueError(f"{unknown} are not parameters of {self.name!r}; its parameters are "
                             f"{list(self.parameters)}")
        params = {k: p.default for k, p in self.parameters.items()}
        params.update({k: self.parameters[k].validate(k, v) for k, v in overrides.items()})
        return params

    def active_outputs(self, params: Mapping[str, Any]) -> dict[str, Output]:
        """The outputs that exist for these (scalar, validated) parameter values."""
        return {k: o for k, o in self.outputs.items() if o.when is None or params.get(o.when)}

    def describe(self) -> str:
        """A table of the parameters: name, default, batched/static, allowed values, doc."""
        lines = [f"{self.name}: {self.doc}", ""]
        for key, p in self.parameters.items():
            mode = "static" if p.static else "batched"
            if not p.sweepable:
                mode = "scalar"
            lines.append(f"  {key:<16} default={p.default!r:<10} {mode:<8} {p.doc} "
                         f"({p.allowed()})")
        return "\n".join(lines)


def step_parameters(steps: int, log_every: int) -> dict[str, Parameter]:
    """`steps` and `log_every` with an experiment's own defaults (scalar-only, static)."""
    return {
        "steps": Parameter(steps, "int", static=True, minimum=0, exclusive_minimum=True,
                           sweepable=False, doc="number of optimisation steps"),
        "log_every": Parameter(log_every, "int", static=True, minimum=0, exclusive_minimum=True,
                               sweepable=False,
                               doc="steps between logged values; must divide steps"),
    }


COMMON_PARAMETERS: dict[str, Parameter] = {
    # jax.random.key keeps 32 bits of a seed: a larger one would silently repeat a smaller one
    "seed": Parameter(0, "int", static=False, minimum=0, maximum=SEED_MAXIMUM,
                      doc="seed of the run's PRNG key (data, teacher and initialisation)"),
    **step_parameters(1000, 10),
}

_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry (its parameters get the common ones appended)."""
    if experiment.name in _REGISTRY:
        raise ValueError(f"an experiment named {experiment.name!r} is already registered")
    parameters = dict(experiment.parameters)
    for key, p in COMMON_PARAMETERS.items():
        parameters.setdefault(key, p)
    experiment = dataclasses.replace(experiment, parameters=parameters)
    _REGISTRY[experiment.name] = experiment
    return experiment


def get_experiment(name: str | Experiment) -> Experiment:
    """Look an experiment up by name (or pass an Experiment through)."""
    if isinstance(name, Experiment):
        return name
    if not isinstance(name, str):
        raise TypeError(f"experiment={name!r} has type {type(name).__name__}; "
                        f"experiment must be a name, one of {sorted(_REGISTRY)}")
    if name not in _REGISTRY:
        raise ValueError(f"experiment={name!r} is unknown; known experiments: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def registered() -> dict[str, Experiment]:
    """All registered experiments, by name."""
    return dict(_REGISTRY)

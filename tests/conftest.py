import os

from hypothesis import HealthCheck, settings

# JAX runs eagerly (each new shape compiles its small kernels), so examples are slow to
# start: no deadline.  NNCORE_HYPOTHESIS_PROFILE=thorough runs ten times more examples.
settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# CI (CI=true) draws the same examples on every run, so that a submission's result does not
# depend on luck; the exploring is done by "thorough" runs, whose finds Hypothesis replays.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
default = "ci" if os.environ.get("CI") == "true" else "default"
settings.load_profile(os.environ.get("NNCORE_HYPOTHESIS_PROFILE", default))

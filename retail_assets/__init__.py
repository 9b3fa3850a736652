"""Retail MLOps platform: the Dagster code location and everything it runs."""

import os

# LightGBM's OpenMP threads busy-wait at every barrier by default; on a 2-core machine with a
# second busy process (another Dagster step, dbt, a benchmark) they spin away each other's
# time and training slows ~30x. Sleeping waits cost nothing when the machine is idle. It must
# be set before lightgbm (libgomp) loads, hence here, at the top of the package.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

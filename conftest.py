"""pytest's environment for every test path (tests/ and the nbval runs of notebooks/)."""

import os

# No progress bars in a test run, CI or not: nbval's kernels inherit this environment, and a
# bar would be an output that the committed notebooks do not have.
os.environ["NEUROMOD_PROGRESS"] = "0"

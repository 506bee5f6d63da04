"""clinicbot: a patient-education chatbot for aesthetic clinics that answers only from vetted explainers."""

import os as _os

# Numerical libraries must not start spinning thread pools that fight the embedder's threads for the
# machine's cores: with them, per-message latency doubles. Torch's own thread count is set from settings.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_name, "1")

__all__ = ["__version__"]
__version__ = "0.1.0"

"""Turning what a run shows into named values, split at the process boundary.

* :mod:`.kernel` (with :mod:`.streams` and :mod:`.figures`): runs inside every kernel, standard
  library only at module level;
* :mod:`.outputs`: the driver's decoding of a run's outputs;
* :mod:`.protocol`: what the one sends the other.

Nothing is imported here: a kernel importing :mod:`.kernel` must not pay for the driver side.
"""

"""Samplers: which points a sweep runs. ``grid`` (every point), ``random``, ``optuna`` (TPE).

Each proposes points (:meth:`~ploomber_like.samplers.base.Sampler.ask`) and is told how they
went (:meth:`~ploomber_like.samplers.base.Sampler.tell`); the sweep driver does the rest.
"""

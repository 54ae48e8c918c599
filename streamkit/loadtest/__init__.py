"""``streamkit bench``: load-testing an OpenAI-compatible server or the local model.

The pieces, each with one job: ``schedule`` (when requests are sent, sans-IO),
``workload`` (what is sent), ``client`` (one timed request), ``metrics``
(samples and their statistics), ``runner`` (closed and open loops, sweeps),
``workers`` (several processes), ``report``, ``plots`` and ``compare`` (what
the user reads).
"""

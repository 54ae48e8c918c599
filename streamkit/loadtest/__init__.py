"""``streamkit bench``: load-testing an OpenAI-compatible server or the local model.

The pieces, each with one job: ``schedule`` (when requests are sent, ramps and
think times, sans-IO), ``workload`` (what is sent), ``conversations`` and
``trace`` (multi-turn datasets and arrival traces, parsed sans-IO),
``client`` and ``rawhttp`` (one timed request), ``metrics`` (samples and
their statistics), ``runner`` (closed and open loops), ``sessions``
(multi-turn users) and ``tracesessions`` (a trace's sessions as
conversations), ``workers`` (several processes), ``plan`` (which runs,
which options conflict), ``capacity`` and ``repeats`` (searching and
repeating, sans-IO), ``promscrape`` and ``server_metrics`` (the server's
Prometheus view), ``bench`` (the command's body), and what the user reads:
``report``, ``summary``, ``plots``, ``htmlreport``, ``compare`` and
``verdict`` (the CI gate).
"""

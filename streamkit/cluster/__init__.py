"""Past one machine: batches, score batches and bench on a Ray cluster.

The streamkit process stays the driver: it reads the input, writes the
output and decides what runs where. Each node runs one actor that drives the
same Trio code as one machine does (``pipeline.batch.LineWork``, the score
engine, ``loadtest.runner.Runner``) in a long-lived Trio loop of its own. Ray
is imported only here, and only on the ``--ray`` path.
"""

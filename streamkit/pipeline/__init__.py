"""The wiring: producers, consumers and tools put together in one nursery per command.

``stream`` fans one producer out to its consumers; ``turn``, ``toolloop`` and
``session`` build conversations on it; ``batch``, ``score`` and ``relay`` run
many requests at once; ``command`` and ``interrupts`` turn a command's end
(errors, Ctrl-C, SIGTERM) into an exit code.
"""

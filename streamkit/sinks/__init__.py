"""Consumers of the event stream: the printer, the log recorder, stats and progress."""

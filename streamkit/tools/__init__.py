"""Tools the model may call: the registry, the built-ins, and dispatch."""

"""Shared pieces of the ML producers: the in-process ONNXRuntime session."""

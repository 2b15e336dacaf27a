"""Helpers shared by tests in several folders (importable as ``support``)."""

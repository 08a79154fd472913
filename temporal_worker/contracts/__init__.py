"""Every type that crosses Temporal or the channel layer, and the names both sides use.

Imports nothing but the standard library: the workflow sandbox loads these modules, and
the web, the worker and the tests all read the same definitions. Every workflow,
activity, update and query takes one dataclass and returns one.

No `from __future__ import annotations` in these modules: with real annotation
objects, Temporal's converter does not compile every field's type from a string on
each conversion (a measured 2.6 -> 0.9 ms per step).
"""

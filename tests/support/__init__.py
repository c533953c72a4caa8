"""Builders behind the fixtures of ``tests/conftest.py`` (tiny networks, triplets, X-ray files, configs).

Test modules use the fixtures, never these modules or each other: the builders live here rather than in
``conftest.py`` only to keep one concept per module.
"""

"""Alembic migrations of the store, shipped in the package and run by `keel.store.upgrade`.

A package (not a plain folder) so that setuptools ships env.py and versions/ with Keel.
"""

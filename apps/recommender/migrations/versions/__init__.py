"""Revision files of the ``recommend`` branch."""

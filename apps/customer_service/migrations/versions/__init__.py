"""Revision files of the ``support`` branch."""

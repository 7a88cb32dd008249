"""Revision files of the ``core`` migration branch."""

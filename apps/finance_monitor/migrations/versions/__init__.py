"""Revision files of the ``finance`` branch."""

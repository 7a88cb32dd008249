"""Tests of the finance monitor app."""

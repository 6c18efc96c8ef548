"""Tests of runio: atomic writes and run directories."""

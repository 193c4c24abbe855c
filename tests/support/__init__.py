"""Test support: a real ZenML server on loopback and helpers around it."""

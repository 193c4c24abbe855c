"""Trigger ZenML pipeline runs from GitHub workflows and report them back."""

"""Reusable pieces of the stacks: one logical unit each."""

"""Profiles: one per person, behavioural aggregates, traits and identity resolution."""

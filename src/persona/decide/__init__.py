"""Decisions: choosing a variant or arm for a unit, by experiment split or by bandit."""

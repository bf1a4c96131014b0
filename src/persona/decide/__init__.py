"""Decisions: choosing a variant or arm for a unit, by deterministic experiment assignment
(``assignment``) or by bandit (``bandits``), and logging what was chosen."""

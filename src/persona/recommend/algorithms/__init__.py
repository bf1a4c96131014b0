"""Collaborative scoring algorithms: the candidate sources' engines and the baselines."""

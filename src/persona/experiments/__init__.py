"""Experiments: what the decision log says about each placement's variants (results, and the
statistics behind every number). Assignment to variants is an allocation policy of ``decide``."""

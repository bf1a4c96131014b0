"""The HTTP shell over the domains."""

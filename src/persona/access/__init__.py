"""Access: API keys with scopes."""

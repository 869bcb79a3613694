"""Implementation of ember.data; nothing here is public API."""

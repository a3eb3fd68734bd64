"""tasteprint."""

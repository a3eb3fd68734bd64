"""Services over one store, composed by the `Tasteprint` facade: each owns the state it uses."""

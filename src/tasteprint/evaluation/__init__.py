"""Offline evaluation through the public API: splits (`split`), per-method evaluation (`methods`), the
driver (`runner`) and the written report (`report`)."""

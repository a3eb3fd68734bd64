"""Stage 2, profile: facts computed from a user's history (`facts`), the LLM draft confined to them
(`draft`, `summary`), claim verification (`verify`), segments of profiled users (`segments`) and batch
profiling (`batch`)."""

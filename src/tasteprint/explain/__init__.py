"""Stage 4, explain: the history items a pick may cite (`evidence`), the LLM rerank (`rerank`), reasons
worded by the model and checked against the data (`reasons`), explaining any item (`item`), and the one
chain of LLM stages that serving, fitting, evaluation and batch jobs all call (`chain`)."""

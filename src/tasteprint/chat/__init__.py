"""The chat front end: what a line asks for (`intents`) and the session that answers it (`session`)."""

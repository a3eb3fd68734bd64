"""Storage, below every stage: the store's SQLite database (`sqlite`, `profiles`, `responses`), sentence
embeddings (`embeddings`) and the Chroma vector store (`vectors`, the only module importing chromadb)."""

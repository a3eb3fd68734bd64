"""Stage 3, recommend: retrievers over one interaction matrix (`retrievers`), validation cases
(`validation`), the ranking stage (`ranking`), ranking metrics (`metrics`) and the fitted `Recommender`.
Nothing here calls a language model."""

"""SOS knowledge: the dataset catalog, retrieval over it, grounding a question in it, and its
prose made speakable. Nothing here knows about language models, audio or sessions; everything
above builds on it (see docs/architecture.md)."""

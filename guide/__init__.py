"""The AI shopping guide's knowledge: answers from the catalog, reviews and shop policy; reply drafts."""

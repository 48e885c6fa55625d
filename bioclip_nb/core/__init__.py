"""The search core: an atlas opened, validated and searched (FAISS index, DuckDB metadata,
scope-aware probing, re-ranking with full vectors, folding copies), its derived data, and
which atlas to open. Owns every fact about how a query becomes hits; knows no widgets, no HTTP
and no words for people beyond its exceptions' messages."""

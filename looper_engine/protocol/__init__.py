"""The XML tool language: call models, the streaming parser, canonical rendering."""

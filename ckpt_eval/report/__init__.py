"""Facts to prose, charts and the two renderings of the report (templates are package data)."""

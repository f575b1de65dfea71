"""The Jinja templates of the post-incident report (`incident_report.*.j2` and their `_*.j2` partials),
shipped as package data.

Nothing to import here: `keyresponse.report` reads the files through `importlib.resources`, so an
installed wheel and the source tree are read the same way.
"""

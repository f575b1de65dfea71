"""The Athena query files (`<name>.sql`, and `ddl/cloudtrail.sql`), shipped as package data.

Nothing to import here: `keyresponse.queries` reads the files through `importlib.resources`, so an
installed wheel and the source tree are read the same way.
"""

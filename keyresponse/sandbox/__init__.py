"""The embedded AWS sandbox: a moto server on 127.0.0.1, a seeded account, and an attack simulator.

Nothing here is used in production; it is the default world of the demo, the tests and CI.
"""

from keyresponse.sandbox.server import MotoSandbox

__all__ = ["MotoSandbox"]

"""keyresponse: incident response for an exposed AWS access key.

The AWS IAM credential-compromise playbook (NIST SP 800-61 phases) as Prefect 3 flows.
The plain library lives here; `flows/`, `tasks/`, `queries/` and `reports/` sit beside it, as packages
of their own (docs/architecture.md shows the layers).
"""

__version__ = "0.1.0"

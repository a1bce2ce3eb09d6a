"""Vendor modules: one per vendor, each with its log parsers (and, later, its API client, verbs and probes).

Importing this package registers every log format with `casefile.formats`.
"""

from connectors import (  # noqa: F401  (registration side effects)
    aws,
    entra,
    envoy,
    github,
    google,
    haproxy,
    keycloak,
    kong,
    nginx,
    oauth,
    oidc,
    okta,
    salesforce,
    vault,
)

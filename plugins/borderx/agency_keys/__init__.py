"""Keys only agencies hold: an agency changes its keys with a request signed by its current signing key, and the
hub verifies and applies it.

`request` is the signed document (made on the agency's machine), `accept` the hub's checks and what it writes,
`agency_file` the edit of config/agencies/AGENCY.yaml. First enrolment stays by hand: the operator pastes the
public keys an agency sends (README, "Adding an agency").
"""

from borderx.agency_keys.accept import Acceptance, AcceptedRequests, accept_request
from borderx.agency_keys.request import NAMESPACE, KeyRequest, make_request, read_request, write_request

__all__ = ["NAMESPACE", "Acceptance", "AcceptedRequests", "KeyRequest", "accept_request", "make_request",
           "read_request", "write_request"]

"""Node cases we do not run, each with its reason.  No patterns: one name, one reason."""

SKIPS: dict[str, str] = {}

# Cases that fail today because the op or semantics is not implemented yet (tracked by the
# conformance issue).  They run as strict xfails: when one starts passing, the test fails until
# it is removed from this list, so the list can only shrink honestly.
NOT_YET: dict[str, str] = {}

"""The conformance suite's fixtures live in the ``case_<kind>`` modules, which the root
conftest loads as plugins (pytest only takes ``pytest_plugins`` there)."""

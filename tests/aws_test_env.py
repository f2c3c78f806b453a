"""Names of the test bucket and tables (imported by conftest.py and by helper modules of tests)."""

TEST_RESOURCES = {
    "SYNAPSCRIBE_BUCKET": "synapscribe-test",
    "SYNAPSCRIBE_CONNECTIONS_TABLE": "synapscribe-test-connections",
    "SYNAPSCRIBE_LECTURES_TABLE": "synapscribe-test-lectures",
    "SYNAPSCRIBE_SESSIONS_TABLE": "synapscribe-test-sessions",
    "SYNAPSCRIBE_LIMITS_TABLE": "synapscribe-test-limits",
}

"""Runs last (by name): nothing any action run printed or wrote in this
session contains the API key or a session token, in any encoding."""

from support.action import SECRETS, TRANSCRIPTS, leaked, masked_values


def test_no_action_run_printed_a_secret() -> None:
    assert TRANSCRIPTS, "no action ran before this check"
    assert SECRETS, "the test server's API key was not registered"
    checked = 0
    for transcript in TRANSCRIPTS:
        # The action announces each secret once in an `::add-mask::` line, the
        # runner's instruction to hide it: that line is the one exception.
        tokens = {value for value in masked_values(transcript) if len(value) > 20}
        body = "\n".join(line for line in transcript.splitlines() if not line.startswith("::add-mask::"))
        for secret in SECRETS | tokens:
            assert not leaked(secret, body)
            checked += 1
    assert checked >= len(TRANSCRIPTS)

"""The one exception type for a user's mistake."""


class ConfigError(ValueError):
    """Bad user input: an unknown name, a value out of range, a malformed config or loss.

    The message is one line that says what is wrong and what is allowed. The command line turns
    it into exit code 2 without a traceback; anything else that escapes is an internal error.
    """

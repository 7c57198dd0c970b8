"""The one error type the CLI turns into a single clear line and a non-zero exit."""


class DistGNNError(Exception):
    """User-facing error: bad input, bad configuration or a failed peer. Its message is one line."""

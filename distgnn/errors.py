"""The error types the CLI turns into a single clear line and a non-zero exit."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type's name when it has none): what a one-line report
    quotes of an exception raised by torch, numpy or a user's code."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class DistGNNError(Exception):
    """User-facing error: bad input, bad configuration or a failed peer. Its message is one line."""

    exit_code = 2


class AgreedError(DistGNNError):
    """An error every rank of a job raises with the same message (after agreeing on it through a
    collective); the CLI prints it once per node, from local rank 0."""


class PeerFailedError(DistGNNError):
    """This rank stopped because another rank failed or went silent; the root cause is that rank's error.
    Exit code 3, so a launcher reporting the first failure picks the root cause (exit code 2)."""

    exit_code = 3


class TrainingInterrupted(Exception):
    """Training stopped on a signal after ``epoch`` finished epochs; ``checkpoint``: the newest complete
    checkpoint (rank 0's view) or None. The worker prints it as one line and exits 128 + signal."""

    def __init__(self, epoch: int, checkpoint: str | None, signum: int) -> None:
        super().__init__(f"interrupted at epoch {epoch}; last checkpoint: {checkpoint or 'none'}")
        self.epoch, self.checkpoint, self.signum = epoch, checkpoint, signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

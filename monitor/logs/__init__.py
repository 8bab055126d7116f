"""One ``training_log_*.txt`` file, v2 or v1, read incrementally into columns of completed epochs."""

from monitor.logs.parser import EpochRows, LogParser, ParseResult, stack_ragged

__all__ = ["EpochRows", "LogParser", "ParseResult", "stack_ragged"]

"""The one exception type that the command line turns into a one-line error message."""


class StnbenchError(Exception):
    """A problem with the user's input or environment.

    The message is a single line that names the offending thing (a file, a config key,
    a model name) and says what is wrong with it, so that ``stnbench`` can print it
    without a traceback.
    """

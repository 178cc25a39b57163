"""The error every user-facing check raises: one line naming the field."""


class GramJaxError(ValueError):
  """Bad input: a config field, file, dataset or argument that is not allowed.

  The command line prints the message as one line and exits with status 2.
  """

"""The error every user-facing check raises: one line naming the field."""


class GramJaxError(ValueError):
  """Bad input: a config field, file, dataset or argument that is not allowed.

  The command line prints the message as one line and exits with status 2.
  """


def parse_int(text, flag: str, minimum: int = 1) -> int:
  """An integer command-line value, or one GramJaxError line naming `flag`."""
  try:
    value = int(str(text).strip())
  except ValueError:
    value = None
  if value is None or value < minimum:
    raise GramJaxError(f"{flag}: {text!r} is not allowed; allowed: an "
                       f"integer >= {minimum}")
  return value


def parse_shape(text, flag: str = "--input-shape") -> tuple:
  """``"8,8,1"`` -> ``(8, 8, 1)``, or one GramJaxError line naming `flag`."""
  parts = [p.strip() for p in str(text).split(",")]
  if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
    raise GramJaxError(f"{flag}: {text!r} is not allowed; allowed: H,W,C "
                       "as three positive integers, e.g. 32,32,3")
  return tuple(int(p) for p in parts)

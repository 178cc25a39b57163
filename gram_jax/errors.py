"""The error every user-facing check raises: one line naming the field."""


class GramJaxError(ValueError):
  """Bad input: a config field, file, dataset or argument that is not allowed.

  The command line prints the message as one line and exits with status 2.
  """


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
BOOL_ALLOWED = "true, false, 1, 0, yes or no (any case)"


def parse_bool(value, field: str, error: type = GramJaxError) -> bool:
  """A boolean from a config or command-line value, strictly.

  Args:
    value: a real ``bool``, or text: true/false, 1/0 or yes/no in any case,
      surrounding spaces ignored.
    field: the name the error message starts with, e.g. ``"recipe.augment"``.
    error: the `GramJaxError` subclass to raise (the caller's config error).

  Returns:
    The boolean.

  Raises:
    error: one line naming `field` and the allowed values, for anything else
      (including other text, numbers and None).

  Examples:
    >>> parse_bool("Yes", "config.x"), parse_bool(False, "config.x")
    (True, False)
  """
  if isinstance(value, bool):
    return value
  if isinstance(value, str):
    text = value.strip().lower()
    if text in _TRUE:
      return True
    if text in _FALSE:
      return False
  raise error(f"{field}: {value!r} is not allowed; allowed: {BOOL_ALLOWED}")


def parse_int(text, flag: str, minimum: int = 1) -> int:
  """An integer command-line value, or one GramJaxError line naming `flag`."""
  try:
    value = int(str(text).strip())
  except ValueError:
    value = None
  if value is None or value < minimum:
    raise GramJaxError(
        f"{flag}: {text!r} is not allowed; allowed: an integer >= {minimum}"
    )
  return value


def parse_shape(text, flag: str = "--input-shape") -> tuple:
  """``"8,8,1"`` -> ``(8, 8, 1)``, or one GramJaxError line naming `flag`."""
  parts = [p.strip() for p in str(text).split(",")]
  if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
    raise GramJaxError(
        f"{flag}: {text!r} is not allowed; allowed: H,W,C "
        "as three positive integers, e.g. 32,32,3"
    )
  return tuple(int(p) for p in parts)

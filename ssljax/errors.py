"""The one exception type for bad input.

Config values, missing data and damaged checkpoints raise `InputError` with a
message that names the problem and the fix; `ssljax.main` prints that message
alone instead of a traceback.
"""


class InputError(ValueError):
  """Bad input from the user; the message says what to do."""

"""The persistent XLA cache of the command line: on by default, in a known
place, and off on request."""

import os
import subprocess
import sys

import pytest

from gram_jax import cli
from gram_jax.errors import GramJaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = (
    "import jax; from gram_jax import cli; "
    "rest = cli.compilation_cache(['search', '--x']); "
    "assert rest == ['search', '--x'], rest; "
    "print(jax.config.jax_compilation_cache_dir or '')"
)


def _probe(env_extra):
  env = {
      k: v for k, v in os.environ.items() if k != "GRAM_JAX_COMPILATION_CACHE"
  }
  env.update(env_extra, PYTHONPATH=ROOT)
  out = subprocess.run(
      [sys.executable, "-c", _PROBE],
      env=env,
      check=True,
      capture_output=True,
      text=True,
  ).stdout
  return out.strip().splitlines()[-1] if out.strip() else ""


def test_cache_is_on_by_default_under_the_user_cache_dir(tmp_path):
  got = _probe({"XDG_CACHE_HOME": str(tmp_path)})
  assert got == str(tmp_path / "gram_jax" / "xla")
  assert os.path.isdir(got)


@pytest.mark.parametrize("value", ["off", "OFF", "none", "0"])
def test_cache_off_turns_it_off(tmp_path, value):
  got = _probe(
      {"XDG_CACHE_HOME": str(tmp_path), "GRAM_JAX_COMPILATION_CACHE": value}
  )
  assert got == ""
  assert not os.path.exists(tmp_path / "gram_jax")


def test_unusable_cache_dir_is_one_line_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  with pytest.raises(GramJaxError, match="--compilation-cache: cannot use"):
    cli.compilation_cache(
        ["search", "--compilation-cache", str(blocker / "sub")]
    )
  with pytest.raises(GramJaxError, match="allowed: a directory or off"):
    cli.compilation_cache(["search", "--compilation-cache="])

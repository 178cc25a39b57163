"""The shared strict parsers of config and command-line values."""

import pytest

from gram_jax import errors
from gram_jax import fulltrain
from gram_jax.search import config as config_lib


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        (" yes ", True),
    ],
)
def test_parse_bool_accepts_booleans_and_their_text(value, expected):
  assert errors.parse_bool(value, "config.x") is expected


@pytest.mark.parametrize(
    "value", ["maybe", "", "on", "off", "t", "2", 1, 0, None, 1.0]
)
def test_parse_bool_rejects_anything_else_naming_the_field(value):
  with pytest.raises(errors.GramJaxError) as e:
    errors.parse_bool(value, "recipe.flag")
  msg = str(e.value)
  assert msg.startswith(f"recipe.flag: {value!r} is not allowed; allowed: ")
  assert "true" in msg and "false" in msg and "\n" not in msg


def test_parse_bool_raises_the_callers_error_class():
  with pytest.raises(config_lib.ConfigError, match="config.proxy.per_class"):
    errors.parse_bool("maybe", "config.proxy.per_class", config_lib.ConfigError)


def test_boolean_overrides_are_strict():
  d = config_lib.SearchConfig().to_dict()
  for text, expected in [("yes", True), ("0", False), ("True", True)]:
    out = config_lib.apply_overrides(
        config_lib.SearchConfig().to_dict(),
        [f"--config.proxy.per_class={text}"],
    )
    assert out["proxy"]["per_class"] is expected
  with pytest.raises(
      config_lib.ConfigError,
      match=r"config.proxy.per_class: 'ture' is not allowed",
  ):
    config_lib.apply_overrides(d, ["--config.proxy.per_class=ture"])


def test_recipe_overrides_of_other_types_are_unchanged():
  r = fulltrain.recipe_for(
      "digits", ["--recipe.epochs=3", "--recipe.stem=conv3x3_16/2"]
  )
  assert r.epochs == 3 and r.stem == ("conv3x3_16/2",)

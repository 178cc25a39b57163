"""`gram_jax.depthwise`: the shifted-sum lowering is the convolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax.depthwise import current_impl, depthwise_conv, depthwise_impl
from gram_jax.errors import GramJaxError
from gram_jax.models.layers import DepthwiseConv


@pytest.mark.parametrize(
    "h,w,k,stride",
    [
        (7, 7, 3, 1),
        (8, 8, 3, 2),
        (7, 5, 3, 2),
        (6, 6, 5, 1),
        (9, 9, 5, 2),
        (1, 1, 3, 1),
        (3, 3, 5, 2),
    ],
)
def test_shift_equals_conv_values_and_gradients(h, w, k, stride):
  x = jax.random.normal(jax.random.key(0), (2, h, w, 4))
  kernel = jax.random.normal(jax.random.key(1), (k, k, 1, 4))
  cot = None
  results = {}
  for impl in ("conv", "shift"):
    with depthwise_impl(impl):
      y = depthwise_conv(x, kernel, stride)
      if cot is None:
        cot = jax.random.normal(jax.random.key(2), y.shape)
      grads = jax.grad(
          lambda a, b: jnp.sum(depthwise_conv(a, b, stride) * cot), (0, 1)
      )(x, kernel)
    results[impl] = (y, *grads)
  assert results["conv"][0].shape == (2, -(-h // stride), -(-w // stride), 4)
  for got, want in zip(results["shift"], results["conv"]):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_auto_is_shift_on_the_cpu_and_the_context_restores():
  assert jax.default_backend() != "cpu" or current_impl() == "shift"
  with depthwise_impl("conv"):
    assert current_impl() == "conv"
    with depthwise_impl("shift"):
      assert current_impl() == "shift"
    assert current_impl() == "conv"
  with pytest.raises(GramJaxError, match="depthwise impl: 'fast'.*auto, conv"):
    with depthwise_impl("fast"):
      pass


def test_kernel_that_does_not_fit_is_refused():
  with pytest.raises(GramJaxError, match=r"expected \[k, k, 1, 4\]"):
    depthwise_conv(jnp.zeros((1, 4, 4, 4)), jnp.zeros((3, 3, 1, 3)), 1)


def test_module_has_nn_convs_parameter_and_output():
  """Same parameter name, shape and initial values as the grouped nn.Conv it
  replaces (checkpoints and init seeds carry over), same outputs."""
  x = jax.random.normal(jax.random.key(3), (2, 9, 9, 6))
  init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
  ours = DepthwiseConv(3, 2, kernel_init=init)
  ref = nn.Conv(
      6,
      (3, 3),
      strides=(2, 2),
      padding="SAME",
      feature_group_count=6,
      use_bias=False,
      kernel_init=init,
  )
  v_ours = ours.init(jax.random.key(4), x)
  v_ref = ref.init(jax.random.key(4), x)
  assert jax.tree.structure(v_ours) == jax.tree.structure(v_ref)
  np.testing.assert_array_equal(
      v_ours["params"]["kernel"], v_ref["params"]["kernel"]
  )
  np.testing.assert_allclose(
      ours.apply(v_ours, x), ref.apply(v_ref, x), rtol=1e-5, atol=1e-5
  )


def test_environment_variable_sets_the_default(monkeypatch):
  monkeypatch.setenv("GRAM_JAX_DEPTHWISE", "conv")
  assert current_impl() == "conv"
  with depthwise_impl("shift"):  # an explicit block wins
    assert current_impl() == "shift"
  monkeypatch.setenv("GRAM_JAX_DEPTHWISE", "fast")
  with pytest.raises(GramJaxError, match="GRAM_JAX_DEPTHWISE: 'fast'"):
    current_impl()


def test_conv_bn_family_shares_one_module():
  """GRAM's, MobileNetV2's and Single-Path's conv blocks are one module:
  the same variable names, the depthwise case included."""
  from gram_jax.models import layers, mobile  # pylint: disable=import-outside-toplevel
  from gram_jax.singlepath import superkernel  # pylint: disable=import-outside-toplevel

  x = jnp.ones((1, 6, 6, 4))
  for cls in (layers.ConvBNAct, mobile.ConvBN, superkernel.ConvBN):
    assert issubclass(cls, layers.ConvBN)
    v = cls(4, 3).init(jax.random.key(0), x, train=False)
    assert set(v["params"]) == {"conv", "bn"}
  dw = mobile.ConvBN(4, 3, groups=4).init(jax.random.key(0), x, train=False)
  assert dw["params"]["conv"]["kernel"].shape == (3, 3, 1, 4)
  with pytest.raises(GramJaxError, match="activation: 'gelu'.*elu, relu"):
    layers.ConvBN(4, activation="gelu").init(jax.random.key(0), x, train=False)

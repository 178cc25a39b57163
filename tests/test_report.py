import json
import os

import jax

from gram_jax import arch
from gram_jax import cli
from gram_jax import metagraph as mg
from gram_jax.space import SearchSpace


def test_report_writes_drawing_pareto_and_summary(tmp_path, capsys):
  space = SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=6, width=0.25)
  g = mg.init(space, jax.random.key(0), init_weight=0.6)
  spec = arch.from_masks(
      space, g.ops, mg.sample(g, jax.random.key(1)), num_classes=10
  )
  spec.save(str(tmp_path / "arch.json"))
  (tmp_path / "config.json").write_text(json.dumps({"dataset": "digits"}))
  for name, top1, macs in [("a", 0.9, 1e6), ("b", 0.95, 2e6)]:
    os.makedirs(tmp_path / name)
    (tmp_path / name / "result.json").write_text(
        json.dumps({"top1": top1, "macs": macs, "params": 1000})
    )
  assert cli.main(["report", "--workdir", str(tmp_path)]) == 0
  for f in ["arch.png", "pareto.png", "summary.md"]:
    assert (tmp_path / f).stat().st_size > 0
  summary = (tmp_path / "summary.md").read_text()
  assert "| b | 95.00 | 2.000 |" in summary and "47.50" in summary
  capsys.readouterr()
  assert cli.main(["report", "--workdir", str(tmp_path / "a")]) == 2
  assert "has no arch.json" in capsys.readouterr().err

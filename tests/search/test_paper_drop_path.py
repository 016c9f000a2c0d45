"""The paper space gives each branch its model's published drop-path rate (issue 13)."""

from __future__ import annotations

import pytest

from piip_search.config import load_config
from piip_search.search import SearchSpace, space_path


@pytest.mark.parametrize("name,rates", [("piip-tsb-1120-896-448", [0.15, 0.05, 0.05]),
                                        ("piip-sbl-1568-1120-672", [0.4, 0.15, 0.05])])
def test_enqueued_published_model_keeps_its_drop_path(name, rates):
    space = SearchSpace.from_yaml(space_path("paper"), check_proxy=False)
    cfg = load_config(name)
    rebuilt = space.config_from_params(space.params_from_config(cfg))
    assert [b.drop_path_rate for b in rebuilt.branches] == [b.drop_path_rate for b in cfg.branches] == rates

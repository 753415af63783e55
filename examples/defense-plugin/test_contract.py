"""The benchmark's defense contract, run on this plugin: `pytest test_contract.py` before publishing."""
from __future__ import annotations

import pytest
from mammo_noise_defense import GaussianNoiseAugmentation

from benchmark.testing import ContractError, check_defense


def test_the_defense_keeps_the_contract() -> None:
    check_defense(GaussianNoiseAugmentation)  # default options
    check_defense(GaussianNoiseAugmentation, options={"sigma": 0.05})


def test_option_typos_and_bad_values_are_refused() -> None:
    with pytest.raises(ContractError, match="did you mean 'sigma'"):
        check_defense(GaussianNoiseAugmentation, options={"sigam": 0.05})
    with pytest.raises(ContractError, match=r"options\.sigma: must be >= 0"):
        check_defense(GaussianNoiseAugmentation, options={"sigma": -0.1})

"""The shared argument checks: what passes, what comes back, and the message."""

import numpy as np
import pytest

from embedviz._check import check_choice, check_int, check_number
from embedviz.errors import InputError


def test_integers_of_any_integral_type_pass_as_int():
    for value in (3, np.int64(3), np.uint8(3)):
        got = check_int("n", value, low=1, high=3)
        assert got == 3 and type(got) is int


@pytest.mark.parametrize("value", [True, 2.0, "2", None, 0, 4, np.float64(2)])
def test_integers_out_of_range_or_of_other_types_fail_naming_the_value(value):
    with pytest.raises(InputError, match=r"^n: expected an integer from 1 to 3, got "):
        check_int("n", value, low=1, high=3)


def test_numbers_pass_as_float_and_bounds_are_kept():
    assert check_number("t", np.float32(0.5), 0, 1) == 0.5
    assert type(check_number("t", 1, 0, 1)) is float
    assert check_number("t", 0, 0) == 0.0  # closed below by default
    with pytest.raises(InputError, match=r"^t: expected a number > 0, got 0$"):
        check_number("t", 0, 0, low_open=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "5", -1])
def test_numbers_that_are_not_finite_numbers_in_range_fail(value):
    with pytest.raises(InputError, match=r"^t: expected a number >= 0, got "):
        check_number("t", value, 0)


def test_none_passes_only_when_allowed():
    assert check_number("t", None, 0, allow_none=True) is None
    with pytest.raises(InputError, match="or None"):
        check_number("t", -1, 0, allow_none=True)
    with pytest.raises(InputError, match=r"^t: expected a number >= 0, got None$"):
        check_number("t", None, 0)


def test_choice_lists_what_is_allowed():
    assert check_choice("m", "a", ("a", "b")) == "a"
    with pytest.raises(InputError, match=r"^m: expected one of 'a', 'b', got 'c'$"):
        check_choice("m", "c", ("a", "b"))


def test_choice_gives_the_member_and_refuses_what_cannot_be_compared():
    got = check_choice("dims", np.float64(3.0), (2, 3))
    assert got == 3 and type(got) is int
    with pytest.raises(InputError, match=r"^dims: expected one of 2, 3, got array"):
        check_choice("dims", np.array([2, 3]), (2, 3))
    with pytest.raises(InputError, match=r"^flag: expected one of 1, 0, got True$"):
        check_choice("flag", True, (1, 0))

"""The schedule study's rule for the CPU Table 1's length (benchmarks/schedule_study.py)."""

import pandas as pd
import schedule_study


def test_the_length_is_where_a_doubling_stops_paying_a_tenth() -> None:
    # 2 -> 5 epochs (1.32 doublings) lowers the error from 10 to 4 (50% a doubling); 5 -> 10
    # from 4 to 3 (25%); 10 -> 20 from 3 to 2.8 (6.7%): the pick is 10.
    errors = pd.Series({2: 10.0, 5: 4.0, 10: 3.0, 20: 2.8, 40: 2.7})
    assert schedule_study.pick_length(errors) == 10


def test_a_length_is_judged_per_doubling_not_per_step() -> None:
    # From 2 to 5 epochs the error falls by 12%, more than a tenth, but over 1.32 doublings:
    # 9.2% a doubling, so 2 epochs already suffice.
    assert schedule_study.pick_length(pd.Series({2: 5.0, 5: 4.4, 10: 4.3})) == 2


def test_an_error_still_falling_at_the_longest_length_has_no_pick() -> None:
    assert schedule_study.pick_length(pd.Series({2: 8.0, 5: 4.0, 10: 2.0})) is None


def test_a_length_not_yet_run_is_left_out_of_the_pick() -> None:
    # RTS without its 40-epoch run, tabled beside R's five lengths: 10 -> 20 pays 5%.
    errors = pd.Series({2: 10.0, 5: 4.0, 10: 3.0, 20: 2.85, 40: float("nan")})
    assert schedule_study.pick_length(errors) == 10

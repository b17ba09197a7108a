"""UIServer's and run_ui's arguments (review 6, findings 11 and 15)."""

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.ui import commands
from embedviz.ui.server import UIServer


def test_numpy_numbers_are_accepted():
    ui = UIServer(
        port=np.int64(0), max_body_bytes=np.int64(4096), refresh_interval=np.float32(0.25)
    )
    assert (type(ui.port), ui.port) == (int, 0)
    assert ui.receiver.max_body_bytes == 4096 and type(ui.receiver.max_body_bytes) is int
    assert ui.refresh_interval == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, "port: expected an integer from 0 to 65535, got 70000"),
        ({"port": "9000"}, "port: expected an integer from 0 to 65535, got '9000'"),
        ({"max_body_bytes": 10}, "max_body_bytes: expected an integer >= 1024, got 10"),
        ({"refresh_interval": 5}, "refresh_interval: expected a number from 0.05 to 1.0, got 5"),
        ({"refresh_interval": "x"}, "refresh_interval: expected a number from 0.05 to 1.0"),
        ({"host": ""}, "host: expected an address such as 127.0.0.1, got ''"),
    ],
)
def test_bad_arguments_are_one_message(kwargs, message):
    with pytest.raises(InputError, match=f"^{message}"):
        UIServer(**kwargs)


def test_run_ui_refuses_one_path_given_as_a_string(tmp_path):
    """A string is iterable: it was read as one file per character."""
    path = str(tmp_path / "runs.db")
    with pytest.raises(InputError, match=r"paths: expected a list of statistics files.*run_ui\(\["):
        commands.run_ui(path, port=0)


def test_run_ui_refuses_a_token_that_is_not_a_string(tmp_path):
    with pytest.raises(InputError, match="^--token: expected a non-empty string, got bytes"):
        commands.run_ui([str(tmp_path / "runs.db")], port=0, token=b"0123456789abcdef")

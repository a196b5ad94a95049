"""Names, versions and lockfile pins, read one way everywhere (app/env/versions.py)."""

import pytest

from app.env.lockfiles import LOCK_DIR, lock_path
from app.env.versions import (
    Pin,
    at_least,
    canonical_name,
    drift,
    installed_version,
    installed_versions,
    lock_pins,
    read_pins,
    same_version,
)

HASH_A, HASH_B = "a" * 64, "b" * 64


def test_a_local_build_is_its_own_version_and_orders_after_its_release():
    assert not same_version("2.13.0+cpu", "2.13.0") and same_version("2.13.0+cpu", "2.13.0+cpu")
    assert at_least("2.13.0+cpu", "2.13.0") and at_least(
        "2.13.0+cpu", "2.12.1"
    )  # digit tuples said (2, 13) < (2, 13, 0)
    assert not at_least("2.12.1+cpu", "2.13.0")
    assert same_version("1.0", "1.0.0") and not same_version(None, "1.0") and same_version(None, None)


@pytest.mark.parametrize(
    ("driver", "ok"),
    [
        ("525.60.13", True),
        ("525.105.17", True),
        ("580.95.05", True),
        ("525.60.9", False),
        ("470.1", False),
        ("N/A", False),
    ],
)
def test_driver_versions_compare_by_number_and_an_unreadable_one_meets_no_floor(driver, ok):
    assert at_least(driver, "525.60.13") is ok  # 105 > 60: by number, not by text


def test_uv_lock_blocks_join_their_hash_lines_and_skip_comments():
    text = (
        "# input-sha256: x\n"
        f"foo-bar==1.2 \\\n    --hash=sha256:{HASH_A} \\\n    --hash=sha256:{HASH_B}\n    # via\n    #   baz\n"
        f"torch==2.13.0+cpu \\\n    --hash=sha256:{HASH_A}\n    # via foo-bar\n"
        f'extra[x]==3.0 ; python_version >= "3.8" \\\n    --hash=sha256:{HASH_B}\n'
    )
    pins, problems = read_pins(text)
    assert problems == []
    assert pins == {
        "foo-bar": Pin("foo-bar", "1.2", frozenset({HASH_A, HASH_B})),
        "torch": Pin("torch", "2.13.0+cpu", frozenset({HASH_A})),
        "extra": Pin("extra", "3.0", frozenset({HASH_B})),
    }


def test_anything_but_one_exact_pin_is_a_problem():
    text = f"baz>=1 \\\n    --hash=sha256:{HASH_A}\nqux==1.* \\\n    --hash=sha256:{HASH_A}\n--index-url https://x\nok==1\n"
    pins, problems = read_pins(text)
    assert list(pins) == ["ok"] and pins["ok"].hashes == frozenset()
    assert problems == ["not an exact pin: baz>=1", "not an exact pin: qux==1.*", "not an exact pin: --index-url"]


def test_names_are_pep503_whichever_way_a_lock_or_a_dist_spells_them():
    assert canonical_name("Typing_Extensions") == canonical_name("typing.extensions") == "typing-extensions"
    assert lock_pins("Typing_Extensions==4.1\nPyYAML==6.0\n") == {"typing-extensions": "4.1", "pyyaml": "6.0"}
    assert drift({"typing-extensions": "4.1"}, {"typing-extensions": "4.1"}) == []
    assert installed_version("typing_extensions") == installed_versions()["typing-extensions"]


def test_drift_names_missing_and_other_versions():
    pins = lock_pins(lock_path("dev-cpu").read_text())
    installed = installed_versions()
    assert drift(pins) == drift(pins, installed) == []  # this venv is installed from dev-cpu
    installed["torch"] = "2.13.0"  # the same release, but not the +cpu build the lock names
    del installed["numpy"]
    assert drift(pins, installed) == [
        f"numpy: locked {pins['numpy']}, installed nothing",
        "torch: locked 2.13.0+cpu, installed 2.13.0",
    ]


@pytest.mark.parametrize("lock", sorted(p.name for p in LOCK_DIR.glob("*.txt")))
def test_every_lock_is_exact_pins_and_installs_packaging(lock):
    """Every requirement is one hashed `==` pin, and `packaging` (which this module needs) is one of them."""
    pins, problems = read_pins((LOCK_DIR / lock).read_text())
    assert problems == [] and all(pin.hashes for pin in pins.values())
    assert "packaging" in pins

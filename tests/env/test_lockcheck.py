"""The lock-vs-index check's logic, offline: target tags, pins, dependency closure with extras and markers.
(`repro lock --index`, run by .ci/run, does the same against PyPI.)"""

from dataclasses import replace

from packaging.tags import Tag

from app.env.lockcheck import installable, read_pins, target, unmet
from app.env.versions import Pin


def test_target_tags_follow_glibc_and_python():
    old, env = target("3.12", "x86_64-manylinux_2_28")
    new, _ = target("3.12", "x86_64-manylinux_2_39")
    wheel_231 = Tag("cp38", "abi3", "manylinux_2_31_x86_64")  # how vllm ships
    assert wheel_231 not in old and wheel_231 in new
    assert Tag("cp312", "cp312", "manylinux_2_28_x86_64") in old and Tag("py3", "none", "any") in old
    assert Tag("cp311", "cp311", "manylinux_2_28_x86_64") not in old and env["python_version"] == "3.12"
    f = {"filename": "x-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "requires-python": ">=3.13"}
    assert not installable(f, old, "3.12") and installable({**f, "requires-python": ">=3.10"}, old, "3.12")
    assert not installable({"filename": "x-1.0.tar.gz"}, old, "3.12")  # an sdist would need a build


def test_read_pins_takes_exact_hashed_pins_only():
    hashed = "{} \\\n    --hash=sha256:{}\n"
    text = "# header\n" + hashed.format("foo-bar==1.2", "a" * 64) + hashed.format("baz>=1", "b" * 64)
    pins, problems = read_pins(text)
    assert list(pins) == ["foo-bar"] and pins["foo-bar"].hashes == {"a" * 64}
    assert problems == ["not an exact pin: baz>=1"]


def test_unmet_follows_extras_and_markers():
    _, env = target("3.12", "x86_64-manylinux_2_39")
    pins = {n: Pin(n, v) for n, v in {"app": "1.0", "lib": "2.0", "old": "0.5"}.items()}
    deps = {
        "app": ["lib>=2", "old<1", 'tomli; python_version < "3.11"', 'plugin; extra == "x"'],
        "lib": [],
        "old": [],
    }
    assert unmet(pins, deps, env, ["app"], set()) == []
    assert unmet(pins, deps, env, ["app[x]"], set()) == ["plugin (needed by app) is not in the lock"]
    assert unmet(pins, deps, env, ["app[x]"], {"plugin"}) == []  # deliberately left out (CPU locks' CUDA builds)
    pins["lib"] = replace(pins["lib"], version="1.9")
    assert unmet(pins, deps, env, ["app"], set()) == ["lib==1.9 does not satisfy lib>=2 (needed by app)"]

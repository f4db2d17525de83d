"""engine/protocol.py: one JSON line per message, and the generate request checks."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from engine import protocol
from engine.errors import BAD_IMAGE, BAD_PROMPT, BAD_REQUEST, KilnError

ROOT = Path(__file__).resolve().parents[2]


def refused(msg: dict) -> KilnError:
    with pytest.raises(KilnError) as info:
        protocol.validate_generate(msg)
    return info.value


# ---------------------------------------------------------------- encode / decode
def test_encode_is_one_ascii_line_that_decodes_back():
    msg = {"type": "generate", "id": "j1", "prompt": "une chaise\nrouge é ✓", "seed": 7}
    line = protocol.encode(msg)
    assert "\n" not in line and line.isascii()
    assert protocol.decode(line) == msg
    assert protocol.decode(line.encode("utf-8") + b"\n") == msg


def test_encode_turns_paths_and_array_likes_into_json():
    class FakeArray:
        def tolist(self):
            return [1, 2]

    line = protocol.encode({"type": "result", "glb": Path("/a/b.glb"), "n": FakeArray()})
    assert json.loads(line) == {"type": "result", "glb": "/a/b.glb", "n": [1, 2]}
    with pytest.raises(ValueError):
        protocol.encode({"no": "type"})


@pytest.mark.parametrize("line, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not an object"),
    ('"ping"', "not an object"),
    ('{"id": "x"}', 'no "type"'),
    ('{"type": "explode"}', "Unknown message type 'explode'"),
    ('{"type": 3}', "Unknown message type 3"),
    ("   ", "empty"),
])
def test_decode_refuses_bad_lines_with_a_sentence(line, words):
    with pytest.raises(KilnError) as info:
        protocol.decode(line)
    assert info.value.code == BAD_REQUEST
    assert words in info.value.message
    assert info.value.message.endswith(".")


def test_decode_refuses_a_number_too_long_for_int_with_a_sentence():
    """Over 4,300 digits int() itself raises; decode must still answer in words."""
    line = '{"type": "generate", "id": "j1", "prompt": "a", "seed": ' + "9" * 5000 + "}"
    with pytest.raises(KilnError) as info:
        protocol.decode(line)
    assert info.value.code == BAD_REQUEST
    assert "5000 digits" in info.value.message and info.value.message.endswith(".")
    assert len(info.value.message) < 300


def test_request_id_is_read_from_lines_that_decode_refuses():
    huge = "9" * 5000
    assert protocol.request_id('{"type": "generate", "id": "j1", "seed": ' + huge + "}") \
        == "j1"
    assert protocol.request_id(b'{"type": "explode", "id": 7}') == "7"
    assert protocol.request_id('{"type": "generate", "id": ' + huge + "}") is None
    assert protocol.request_id("{not json") is None
    assert protocol.request_id("[" * 100_000) is None


def test_decode_limits_types_to_the_allowed_side():
    assert protocol.decode('{"type":"ping"}', allowed=protocol.CLIENT_TYPES)["type"] == "ping"
    with pytest.raises(KilnError) as info:
        protocol.decode('{"type":"ready"}', allowed=protocol.CLIENT_TYPES)
    assert "generate" in info.value.message  # lists what is allowed


def test_builders_make_messages_of_known_types():
    built = [protocol.ready("0.1", "cpu", "m"), protocol.progress("j", "sample", 1, 4),
             protocol.result("j", "/x.glb", "/x.json", {}), protocol.error("j", "c", "m"),
             protocol.cancelled("j"), protocol.generate("j", prompt="p")]
    for msg in built:
        assert protocol.decode(protocol.encode(msg)) == msg
    assert protocol.ready("0.1", "cpu", "m")["protocol"] == protocol.PROTOCOL_VERSION


# ---------------------------------------------------------------- validate_generate
def test_validate_normalises_a_text_request():
    got = protocol.validate_generate({"type": "generate", "id": 5, "prompt": "  a red chair ",
                                      "seed": 7.0, "guidance": 3, "steps": 12})
    assert got["id"] == "5" and got["mode"] == "text" and got["prompt"] == "a red chair"
    assert got["seed"] == 7 and isinstance(got["seed"], int)
    assert got["guidance"] == 3.0 and isinstance(got["guidance"], float)
    assert got["texture_mode"] == "uv" and got["image"] is None and got["out"] is None
    assert "faces" not in got and "resolution" not in got  # model defaults apply


@pytest.mark.parametrize("prompt", [None, "", "   \n\t"])
def test_empty_prompt_is_refused_with_the_exact_sentence(prompt):
    err = refused({"type": "generate", "prompt": prompt})
    assert err.code == BAD_PROMPT
    assert err.message == ("The prompt is empty: type what you want to make, e.g. "
                           "'a red chair'.")


@pytest.mark.parametrize("field, value, words", [
    ("seed", -1, '"seed" field (the random seed) is -1'),
    ("seed", 2**32, "from 0 to 4294967295"),
    ("steps", 0, '"steps"'),
    ("steps", 201, "from 1 to 200"),
    ("steps", 2.5, "whole number"),
    ("guidance", 30.5, "from 0.0 to 30.0"),
    ("guidance", float("nan"), "not a number"),
    ("resolution", 16, "from 32 to 512"),
    ("faces", 99, "from 100 to 500000"),
    ("texture", 8192, "from 64 to 4096"),
    ("seed", "7", "must be a number, got str"),
    ("steps", True, "must be a number, got bool"),
    ("guidance", 10**400, "from 0.0 to 30.0"),
    ("guidance", float("inf"), "from 0.0 to 30.0"),
    ("seed", float("inf"), "whole number"),
])
def test_numbers_out_of_range_name_the_field_and_the_range(field, value, words):
    err = refused({"type": "generate", "prompt": "a chair", field: value})
    assert err.code == BAD_REQUEST
    assert words in err.message and f'"{field}"' in err.message


@pytest.mark.parametrize("value", [10**5000, 10**400, float("1" * 400 + ".0")],
                         ids=["5000-digit-int", "400-digit-int", "400-digit-float"])
def test_huge_numbers_get_a_short_sentence_not_a_crash(value):
    for name in ("seed", "guidance"):
        err = refused({"type": "generate", "prompt": "a chair", name: value})
        assert err.code == BAD_REQUEST and f'"{name}"' in err.message
        assert "use a value from" in err.message and len(err.message) < 200, err.message


def test_edges_of_every_range_are_accepted(tmp_path):
    picture = tmp_path / "ref.png"
    picture.write_bytes(b"png")
    for name, (_, low, high, _) in protocol.NUMBER_FIELDS.items():
        source = {"image": str(picture)} if name == "refine_steps" else {"prompt": "a"}
        for value in (low, high):                   # refine needs a picture (test_modes.py)
            got = protocol.validate_generate({**source, name: value})
            assert got[name] == value


@pytest.mark.parametrize("msg, code, words", [
    ({"prompt": "a", "mode": "video"}, BAD_REQUEST, "use one of text, image"),
    ({"prompt": "a", "texture_mode": "ptex"}, BAD_REQUEST, "use one of uv, vertex"),
    ({"prompt": "a", "stepz": 3}, BAD_REQUEST, "Unknown field 'stepz'"),
    ({"prompt": 5}, BAD_REQUEST, '"prompt" field must be a string'),
    ({"prompt": "a", "id": ""}, BAD_REQUEST, '"id" field'),
    ({"prompt": "a", "out": "x.obj"}, BAD_REQUEST, "does not end in .glb"),
    ({"prompt": "a" * (protocol.MAX_PROMPT_CHARS + 1)}, BAD_PROMPT,
     f"at most {protocol.MAX_PROMPT_CHARS}"),
    ({"mode": "image"}, BAD_IMAGE, "Image mode needs a picture"),
])
def test_other_bad_fields_are_refused(msg, code, words):
    err = refused(msg)
    assert err.code == code and words in err.message


@pytest.mark.parametrize("prompt, position", [("\ud800", 1), ("a red \udfff chair", 7),
                                              ("caf\udce9", 4)],
                         ids=["lone-high", "lone-low", "undecodable-argv-byte"])
def test_a_lone_surrogate_in_the_prompt_is_refused_with_a_sentence(prompt, position):
    """Half of a UTF-16 pair (JSON "\\ud800", or a byte argv could not decode) is no
    character: the tokenizer raised TypeError on it, which reached the user as
    "internal". Refused, not replaced, so the user sees what was sent."""
    line = json.dumps({"type": "generate", "prompt": prompt})    # how it arrives
    err = refused(protocol.decode(line))
    assert err.code == BAD_PROMPT and f"at position {position}" in err.message
    assert "type or paste the prompt again" in err.message
    with pytest.raises(KilnError):
        protocol.check_prompt(prompt)
    assert protocol.check_prompt(" a red \U0001F600 chair ") == "a red \U0001F600 chair"


def test_faces_0_means_no_limit_and_other_small_budgets_are_refused():
    assert protocol.validate_generate({"prompt": "a mug", "faces": 0})["faces"] == 0
    assert "0 means no limit" in protocol.NUMBER_FIELDS["faces"][3]
    err = refused({"prompt": "a mug", "faces": 50})
    assert err.code == BAD_REQUEST and "0 means no limit" in err.message
    assert "from 100 to 500000" in err.message
    err = refused({"prompt": "a mug", "steps": 0})        # no other field takes 0 so
    assert "out of range" in err.message


@pytest.mark.parametrize("field, code", [("image", BAD_IMAGE), ("out", BAD_REQUEST),
                                         ("model", BAD_REQUEST)])
def test_a_nul_character_in_a_path_is_refused(tmp_path, field, code):
    msg = {"type": "generate", "prompt": "a", field: str(tmp_path / "a\x00b.glb")}
    err = refused(msg)
    assert err.code == code and f'"{field}" path' in err.message
    assert "NUL character" in err.message and err.message.endswith(".")


def test_image_mode_checks_the_file(tmp_path):
    picture = tmp_path / "ref.png"
    picture.write_bytes(b"\x89PNG fake")
    got = protocol.validate_generate({"image": str(picture)})  # mode inferred
    assert got["mode"] == "image" and got["image"] == str(picture.resolve())

    err = refused({"mode": "image", "image": str(tmp_path / "missing.png")})
    assert err.code == BAD_IMAGE and "does not exist" in err.message
    err = refused({"mode": "image", "image": str(tmp_path)})
    assert err.code == BAD_IMAGE and "is a folder" in err.message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads any file; checked in a subprocess below")
def test_unreadable_image_is_refused(tmp_path):
    picture = tmp_path / "locked.png"
    picture.write_bytes(b"x")
    picture.chmod(0)
    err = refused({"mode": "image", "image": str(picture)})
    assert err.code == BAD_IMAGE and "cannot be read" in err.message


SYSTEM_PYTHON = "/usr/bin/python3"  # protocol.py is stdlib only; the venv's may be private


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0
                    or not os.path.exists(SYSTEM_PYTHON), reason="needs root to drop")
def test_unreadable_image_is_refused_as_an_unprivileged_user():
    """As root every file is readable, so ask an unprivileged user in a subprocess."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        os.chmod(folder, 0o755)
        picture = Path(folder) / "locked.png"
        picture.write_bytes(b"x")
        picture.chmod(0)
        hidden = Path(folder) / "private" / "ref.png"
        hidden.parent.mkdir(mode=0o700)
        hidden.write_bytes(b"x")
        for path in (picture, hidden):
            code, message = _validate_as_nobody({"mode": "image", "image": str(path)})
            assert code == BAD_IMAGE and "cannot be read" in message, message


def _validate_as_nobody(msg: dict):
    code = ("import json,sys; from engine import protocol\n"
            "try:\n protocol.validate_generate(json.loads(sys.argv[1]))\n"
            "except Exception as e: print(json.dumps([e.code, e.message]))")
    out = subprocess.run([SYSTEM_PYTHON, "-c", code, json.dumps(msg)], cwd=ROOT, user=65534,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_addon_side_modules_need_only_the_standard_library(venv_python):
    """protocol, client and errors load in a Python without the engine's packages."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "import engine.protocol, engine.client, engine.errors; "
            "heavy = {'torch', 'numpy', 'bpy'} & set(sys.modules); "
            "assert not heavy, heavy")
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else venv_python
    out = subprocess.run([python, "-I", "-c", code], cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_extractor_is_checked_and_defaults_to_the_models_choice():
    got = protocol.validate_generate({"type": "generate", "prompt": "a mug"})
    assert got["extractor"] is None          # the pipeline takes config.sampling.extractor
    got = protocol.validate_generate({"type": "generate", "prompt": "a mug",
                                      "extractor": "flexicubes"})
    assert got["extractor"] == "flexicubes"
    err = refused({"type": "generate", "prompt": "a mug", "extractor": "dmtet"})
    assert err.code == BAD_REQUEST and "use one of mc, flexicubes" in err.message

from pathlib import Path

import pytest

from siplink.ua.config import Config, ConfigError, load, loads, override

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_loads_with_every_section():
    cfg = load(ROOT / "conf" / "siplink.toml")
    assert cfg.sip.listen == "127.0.0.1:5070"
    assert cfg.account().user == "alice" and cfg.account("alice").proxy.endswith(":25060")
    assert cfg.ice.ta_ms == 50 and cfg.ice.nomination == "regular"
    assert cfg.media.codecs == ["PCMU", "PCMA"] and cfg.media.ptime == 20
    assert cfg.logging.level == "warn"


def test_defaults_without_a_file():
    cfg = load(None)
    assert isinstance(cfg, Config)
    assert cfg.ice.addresses == ["127.0.0.1"]
    assert cfg.account().user == "siplink"
    assert cfg.account().password is None  # no credentials unless configured


def test_wrong_type_names_key_and_line():
    text = "[sip]\nlisten = \"x:1\"\n\n[ice]\nlite = false\nta_ms = \"fast\"\n"
    with pytest.raises(ConfigError) as e:
        loads(text, path="my.toml")
    assert e.value.key == "ice.ta_ms" and e.value.line == 6
    assert "my.toml:6" in str(e.value) and "integer" in str(e.value)


def test_unknown_key_names_key_and_line():
    with pytest.raises(ConfigError) as e:
        loads("[media]\nptime = 20\ncodec = [\"PCMU\"]\n")
    assert e.value.key == "media.codec" and e.value.line == 3
    assert "unknown key" in str(e.value)


def test_bad_choice_in_array_of_tables():
    text = "[[accounts]]\nname = \"a\"\n\n[[accounts]]\nname = \"b\"\ntransport = \"sctp\"\n"
    with pytest.raises(ConfigError) as e:
        loads(text)
    assert e.value.key == "accounts.transport" and e.value.line == 6


def test_toml_syntax_error_has_line():
    with pytest.raises(ConfigError) as e:
        loads("[ice]\nta_ms = 20\nlite = = true\n")
    assert e.value.line == 3 and "not valid TOML" in str(e.value)


def test_semantic_checks():
    with pytest.raises(ConfigError, match="codec"):
        loads("[media]\ncodecs = [\"G729\"]\n")
    with pytest.raises(ConfigError, match="relay"):
        loads("[ice]\npolicy = \"relay\"\n")
    with pytest.raises(ConfigError, match="duplicate"):
        loads("[[accounts]]\nname = \"a\"\n[[accounts]]\nname = \"a\"\n")


def test_password_not_in_repr():
    cfg = loads("[[accounts]]\nname = \"a\"\npassword = \"hunter2\"\n")
    assert "hunter2" not in repr(cfg)


def test_override_applies_and_checks_type():
    cfg = load(None)
    override(cfg, "ice.ta_ms", 20)
    override(cfg, "ice.nomination", None)  # flag not given: unchanged
    assert cfg.ice.ta_ms == 20 and cfg.ice.nomination == "regular"
    with pytest.raises(ConfigError):
        override(cfg, "ice.nomination", "sometimes")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")

"""The typed settings loader: precedence, strictness, type conversion."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from trustwire.errors import DocumentError, InvalidArgument, NotFound
from trustwire.runtime import load_settings


class Mode(enum.Enum):
    STRICT = "strict"
    LENIENT = "lenient"


@dataclass(frozen=True)
class Tls:
    cert: Path = Path("/etc/tw/cert.pem")
    verify: bool = True


@dataclass(frozen=True)
class Server:
    host: str = "0.0.0.0"
    port: int = 8443
    tls: Tls = field(default_factory=Tls)


@dataclass(frozen=True)
class Settings:
    server: Server = field(default_factory=Server)
    log_level: Literal["DEBUG", "INFO", "WARNING"] = "INFO"
    timeout_s: float = 5.0
    peers: tuple[str, ...] = ()
    mode: Mode = Mode.STRICT
    state_dir: Path | None = None


@dataclass(frozen=True)
class Required:
    trust_domain: str
    port: int = 1


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_only() -> None:
    assert load_settings(Settings, environ={}) == Settings()


def test_precedence_env_over_file_over_defaults(tmp_path: Path) -> None:
    file = write(
        tmp_path / "s.yaml",
        "server:\n  port: 9000\n  host: file-host\nlog_level: WARNING\npeers: [a, b]\n",
    )
    settings = load_settings(
        Settings,
        file=file,
        environ={"TRUSTWIRE_SERVER__PORT": "9100", "OTHER": "ignored"},
    )
    assert settings.server.port == 9100  # env beats file
    assert settings.server.host == "file-host"  # file beats default
    assert settings.server.tls == Tls()  # untouched section keeps its defaults
    assert settings.log_level == "WARNING"
    assert settings.peers == ("a", "b")
    assert settings.timeout_s == 5.0


def test_nested_sections_from_env_and_conversions() -> None:
    settings = load_settings(
        Settings,
        environ={
            "TRUSTWIRE_SERVER__TLS__VERIFY": "false",
            "TRUSTWIRE_SERVER__TLS__CERT": "/tmp/c.pem",
            "TRUSTWIRE_TIMEOUT_S": "2.5",
            "TRUSTWIRE_PEERS": "p1, p2,,p3",
            "TRUSTWIRE_MODE": "lenient",
            "TRUSTWIRE_STATE_DIR": "/var/lib/tw",
            "TRUSTWIRE_LOG_LEVEL": "DEBUG",
        },
    )
    assert settings.server.tls == Tls(cert=Path("/tmp/c.pem"), verify=False)
    assert settings.timeout_s == 2.5
    assert settings.peers == ("p1", "p2", "p3")
    assert settings.mode is Mode.LENIENT
    assert settings.state_dir == Path("/var/lib/tw")
    assert settings.log_level == "DEBUG"


def test_json_file_and_custom_prefix(tmp_path: Path) -> None:
    file = write(tmp_path / "s.json", json.dumps({"server": {"tls": {"verify": False}}}))
    settings = load_settings(
        Settings,
        file=file,
        environ={"TRUSTWIRE_POLICY_TIMEOUT_S": "1", "TRUSTWIRE_OTHER_THING": "x"},
        prefix="TRUSTWIRE_POLICY_",
    )
    assert settings.server.tls.verify is False
    assert settings.timeout_s == 1.0


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    assert load_settings(Settings, file=write(tmp_path / "s.yaml", ""), environ={}) == Settings()


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    file = write(tmp_path / "s.yaml", "server:\n  prot: 1\n")
    with pytest.raises(DocumentError) as raised:
        load_settings(Settings, file=file, environ={})
    error = raised.value
    assert isinstance(error, InvalidArgument)
    assert error.reason == "UNKNOWN_SETTING"
    assert error.field == "server.prot"
    assert str(file) in error.message
    assert "server.prot" in error.message


def test_unknown_top_level_key_in_file(tmp_path: Path) -> None:
    file = write(tmp_path / "s.yaml", "log_levle: DEBUG\n")
    with pytest.raises(DocumentError, match="log_levle") as raised:
        load_settings(Settings, file=file, environ={})
    assert raised.value.source == str(file)


def test_unknown_env_variable_fails_naming_it() -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings(Settings, environ={"TRUSTWIRE_SERVER__PROT": "1"})
    assert raised.value.reason == "UNKNOWN_SETTING"
    assert raised.value.field == "TRUSTWIRE_SERVER__PROT"
    assert "TRUSTWIRE_SERVER__PORT" in raised.value.message  # lists what is known


def test_env_variable_naming_a_section_is_unknown() -> None:
    with pytest.raises(InvalidArgument, match="TRUSTWIRE_SERVER"):
        load_settings(Settings, environ={"TRUSTWIRE_SERVER": "x"})


@pytest.mark.parametrize(
    ("yaml_text", "field_path", "expected"),
    [
        ("server:\n  port: eighty\n", "server.port", "expected int"),
        ("server:\n  port: true\n", "server.port", "expected int"),
        ("server:\n  port: 80.5\n", "server.port", "expected int"),
        ("server:\n  host: 42\n", "server.host", "expected str"),
        ("server:\n  tls:\n    verify: 'yes'\n", "server.tls.verify", "expected bool"),
        ("timeout_s: soon\n", "timeout_s", "expected float"),
        ("peers: a\n", "peers", "expected list of str"),
        ("peers: [a, 1]\n", "peers", "expected list of str"),
        ("log_level: TRACE\n", "log_level", "expected one of 'DEBUG', 'INFO', 'WARNING'"),
        ("mode: sloppy\n", "mode", "expected one of 'strict', 'lenient'"),
        ("server: 8443\n", "server", "expected a mapping"),
        ("state_dir: 3\n", "state_dir", "path"),
    ],
)
def test_type_errors_in_file_name_field_and_type(
    tmp_path: Path, yaml_text: str, field_path: str, expected: str
) -> None:
    file = write(tmp_path / "s.yaml", yaml_text)
    with pytest.raises(DocumentError) as raised:
        load_settings(Settings, file=file, environ={})
    assert raised.value.field == field_path
    assert raised.value.reason == "INVALID_SETTING"
    assert expected in raised.value.message
    assert str(file) in raised.value.message


@pytest.mark.parametrize(
    ("variable", "value", "field_path", "expected"),
    [
        ("TRUSTWIRE_SERVER__PORT", "eighty", "server.port", "expected int"),
        ("TRUSTWIRE_SERVER__TLS__VERIFY", "maybe", "server.tls.verify", "expected bool"),
        ("TRUSTWIRE_TIMEOUT_S", "soon", "timeout_s", "expected float"),
        ("TRUSTWIRE_LOG_LEVEL", "debug", "log_level", "expected one of"),
    ],
)
def test_type_errors_in_env_name_variable_field_and_type(
    variable: str, value: str, field_path: str, expected: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings(Settings, environ={variable: value})
    assert raised.value.field == field_path
    assert raised.value.metadata["variable"] == variable
    assert variable in raised.value.message
    assert expected in raised.value.message


def test_null_for_optional_and_empty_env_for_optional(tmp_path: Path) -> None:
    file = write(tmp_path / "s.yaml", "state_dir: /x\n")
    assert load_settings(Settings, file=file, environ={}).state_dir == Path("/x")
    overridden = load_settings(Settings, file=file, environ={"TRUSTWIRE_STATE_DIR": ""})
    assert overridden.state_dir is None


def test_missing_required_setting() -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings(Required, environ={})
    assert raised.value.reason == "MISSING_SETTING"
    assert "TRUSTWIRE_TRUST_DOMAIN" in raised.value.message
    assert load_settings(Required, environ={"TRUSTWIRE_TRUST_DOMAIN": "td"}) == Required("td")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_settings(Settings, file=tmp_path / "absent.yaml", environ={})
    with pytest.raises(DocumentError, match="not valid YAML"):
        load_settings(Settings, file=write(tmp_path / "bad.yaml", "a: [\n"), environ={})
    with pytest.raises(DocumentError, match="mapping"):
        load_settings(Settings, file=write(tmp_path / "list.yaml", "- 1\n"), environ={})


def test_rejects_non_dataclass() -> None:
    with pytest.raises(TypeError):
        load_settings(dict, environ={})

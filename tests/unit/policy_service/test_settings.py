"""Policy settings: certificate renewal (``identity``) and its validation."""

from __future__ import annotations

import pytest

from trustwire.errors import InvalidArgument
from trustwire_policy.settings import load

TLS = {
    "TRUSTWIRE_POLICY_TLS__CERTIFICATE": "/etc/trustwire/policy/cert.pem",
    "TRUSTWIRE_POLICY_TLS__KEY": "/etc/trustwire/policy/key.pem",
    "TRUSTWIRE_POLICY_TLS__CLIENT_CA": "/etc/trustwire/policy/bundle.pem",
}


def test_renewal_is_off_unless_an_identity_address_is_set() -> None:
    assert not load(environ=TLS).identity.enabled


def test_identity_endpoint_from_the_environment() -> None:
    settings = load(
        environ={
            **TLS,
            "TRUSTWIRE_POLICY_IDENTITY__ADDRESS": "identity:8443",
            "TRUSTWIRE_POLICY_IDENTITY__SERVER_NAME": "identity.internal",
        }
    )
    assert settings.identity.enabled
    assert (settings.identity.address, settings.identity.server_name) == (
        "identity:8443",
        "identity.internal",
    )


def test_renewal_without_tls_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"needs tls\.certificate") as caught:
        load(environ={"TRUSTWIRE_POLICY_IDENTITY__ADDRESS": "identity:8443"})
    assert caught.value.metadata["field"] == "identity.address"


def test_an_identity_address_without_port_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="host:port") as caught:
        load(environ={**TLS, "TRUSTWIRE_POLICY_IDENTITY__ADDRESS": "identity"})
    assert caught.value.metadata["field"] == "identity.address"

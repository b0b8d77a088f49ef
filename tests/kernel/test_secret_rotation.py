"""Rotating a secret with nothing refused on the way: every process first accepts the new
secret (`*_ACCEPTED_SECRETS`), then signs with it while still accepting the old one, and drops
the old one once what it signed has expired. At each step, whatever a process of the step
before or after signs, this one accepts; a secret never accepted is refused throughout."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.kernel.auth import MemberTokenCodec, Scope, ServiceTokens
from services.kernel.clock import utcnow
from services.kernel.errors import Unauthorized
from services.kernel.settings import Settings
from services.marketing.exports import links
from services.marketing.exports.errors import ExportLinkExpired, ExportLinkInvalid

BRAND = uuid.UUID("0190a000-0000-7000-8000-000000000001")
MEMBER = uuid.UUID("0190a000-0000-7000-8000-000000000002")
EXPORT = uuid.UUID("0190a000-0000-7000-8000-000000000003")
OLD, NEW, STRANGER = "old-" + "o" * 40, "new-" + "n" * 40, "stranger-" + "s" * 40


def _steps(tmp_path: Path, variable: str) -> list[Settings]:
    """The rotation of `variable` (jwt, service or export_link), step by step: before, the new
    secret accepted, the new secret signing with the old accepted, after. The JWT secret stays
    OLD while another secret rotates."""

    def step(signing: str, accepted: list[str]) -> Settings:
        fields: dict[str, object] = {"data_dir": tmp_path, "jwt_secret": SecretStr(OLD)}
        fields[f"{variable}_secret"] = SecretStr(signing)
        fields[f"{variable}_accepted_secrets"] = [SecretStr(s) for s in accepted]
        return Settings.model_validate(fields)

    return [step(OLD, []), step(OLD, [NEW]), step(NEW, [OLD]), step(NEW, [])]


def _neighbours(steps: list[Settings]) -> list[tuple[Settings, Settings]]:
    """(signer, verifier) pairs that run side by side during a rolling deploy: a step and the
    one after it, both ways, and each step with itself."""
    pairs = [(s, s) for s in steps]
    for before, after in itertools.pairwise(steps):
        pairs += [(before, after), (after, before)]
    return pairs


def test_member_tokens_pass_between_neighbouring_steps_of_a_rotation(tmp_path: Path) -> None:
    steps = _steps(tmp_path, "jwt")
    for signer, verifier in _neighbours(steps):
        token = MemberTokenCodec(signer).issue(BRAND, MEMBER, timedelta(minutes=5))
        assert MemberTokenCodec(verifier).verify(token).member_id == MEMBER

    # The steps two apart share no secret: what the first signed, the last refuses.
    old_token = MemberTokenCodec(steps[0]).issue(BRAND, MEMBER, timedelta(minutes=5))
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        MemberTokenCodec(steps[3]).verify(old_token)
    stranger = Settings(data_dir=tmp_path, jwt_secret=SecretStr(STRANGER))
    forged = MemberTokenCodec(stranger).issue(BRAND, MEMBER, timedelta(minutes=5))
    for verifier in steps:
        with pytest.raises(Unauthorized, match="Signature verification failed"):
            MemberTokenCodec(verifier).verify(forged)
    # A token signed with a secret still accepted, but expired, is expired, not invalid.
    expired = MemberTokenCodec(steps[0]).issue(BRAND, MEMBER, timedelta(minutes=-5))
    with pytest.raises(Unauthorized, match="expired"):
        MemberTokenCodec(steps[2]).verify(expired)


def test_service_tokens_pass_between_neighbouring_steps_of_a_rotation(tmp_path: Path) -> None:
    scopes = frozenset({Scope.RECOMMENDER_READ})
    for signer, verifier in _neighbours(_steps(tmp_path, "service")):
        token = ServiceTokens(signer).issue("marketing", BRAND, scopes)
        assert ServiceTokens(verifier).verify(token).service == "marketing"
    steps = _steps(tmp_path, "service")
    with pytest.raises(Unauthorized, match="not valid"):
        ServiceTokens(steps[3]).verify(ServiceTokens(steps[0]).issue("marketing", BRAND, scopes))


def test_service_tokens_keyed_from_the_jwt_secret_follow_its_rotation(tmp_path: Path) -> None:
    """With no service secret of its own, the service tokens' key is derived from the JWT
    secret: rotating that one rotates it, and the accepted JWT secrets keep it accepted."""
    steps = _steps(tmp_path, "jwt")
    scopes = frozenset({Scope.RECOMMENDER_READ})
    for signer, verifier in _neighbours(steps):
        token = ServiceTokens(signer).issue("marketing", BRAND, scopes)
        assert ServiceTokens(verifier).verify(token).brand_id == BRAND
    # A member token, even signed with an accepted secret, is never a service token.
    member_token = MemberTokenCodec(steps[1]).issue(BRAND, MEMBER, timedelta(minutes=5))
    with pytest.raises(Unauthorized):
        ServiceTokens(steps[2]).verify("kfs_" + member_token)


def test_export_links_pass_between_neighbouring_steps_of_a_rotation(tmp_path: Path) -> None:
    for signer, verifier in _neighbours(_steps(tmp_path, "export_link")):
        expires, signature = links.sign(signer, EXPORT)
        links.verify(verifier, EXPORT, expires, signature)
    steps = _steps(tmp_path, "export_link")
    expires, signature = links.sign(steps[0], EXPORT)
    with pytest.raises(ExportLinkInvalid):
        links.verify(steps[3], EXPORT, expires, signature)
    with pytest.raises(ExportLinkInvalid):
        links.verify(steps[2], uuid.uuid4(), expires, signature)
    expires, signature = links.sign(steps[1], EXPORT, now=utcnow() - timedelta(days=1))
    with pytest.raises(ExportLinkExpired):
        links.verify(steps[2], EXPORT, expires, signature)


def test_accepted_secrets_are_read_from_the_environment_as_json_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINFOLK_JWT_ACCEPTED_SECRETS", f'["{NEW}", "{STRANGER}"]')
    monkeypatch.setenv("KINFOLK_SERVICE_ACCEPTED_SECRETS", f'["{NEW}"]')
    settings = Settings(data_dir=tmp_path)
    assert [s.get_secret_value() for s in settings.jwt_accepted_secrets] == [NEW, STRANGER]
    assert [s.get_secret_value() for s in settings.service_accepted_secrets] == [NEW]
    assert settings.export_link_accepted_secrets == []
    assert NEW not in repr(settings)  # secrets stay out of logs

"""JwtVerifier against a real OIDC issuer on loopback HTTP (tests/gateway/issuer.py): no mocks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from keel.config.gateway import ClaimsConfig, GatewayConfig, JwtIssuerConfig
from keel.gateway.jwks import REFETCH_INTERVAL, RETRY_WITHOUT_KEYS
from keel.gateway.jwt import JwtVerifier, TokenRefused, looks_like_jwt
from keel.gateway.principal import Principal
from tests.gateway.issuer import AUDIENCE, OidcIssuer, b64url, compact, new_key


@dataclass
class Clock:
    """Unix time that only moves when told to."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock(float(int(time.time())))


@pytest.fixture
def idp(clock: Clock) -> Iterator[OidcIssuer]:
    with OidcIssuer(clock=clock) as issuer:
        yield issuer


MakeVerifier = Callable[..., JwtVerifier]


@pytest.fixture
async def make_verifier(clock: Clock) -> AsyncIterator[MakeVerifier]:
    made: list[JwtVerifier] = []

    def make(
        *issuers: JwtIssuerConfig, roles: Mapping[str, Sequence[str]] | None = None, **_: Any
    ) -> JwtVerifier:
        verifier = JwtVerifier(issuers, roles or {}, clock=clock)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


def config_for(idp: OidcIssuer, **overrides: Any) -> JwtIssuerConfig:
    return JwtIssuerConfig.model_validate({"issuer": idp.issuer, "audience": AUDIENCE, **overrides})


@pytest.fixture
def verifier(idp: OidcIssuer, make_verifier: MakeVerifier) -> JwtVerifier:
    return make_verifier(config_for(idp))


async def refusal(verifier: JwtVerifier, token: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        await verifier.authenticate(token)
    assert str(caught.value) == "invalid token"  # never says why
    return caught.value


# -- accepted tokens ------------------------------------------------------------------------------


async def test_a_valid_token_is_its_principal(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    principal = await verifier.authenticate(idp.token(sub="ada", tenant="acme", scope="runs:write runs:read"))

    assert principal == Principal(
        kind="user",
        id="ada",
        tenant_id="acme",
        scopes=frozenset({"runs:write", "runs:read"}),
        roles=(),
        credential="jwt",
        issuer=idp.issuer,
    )
    assert principal.claims["sub"] == "ada"
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)

    # The hot path: the key is known, nothing more is fetched.
    for _ in range(20):
        await verifier.authenticate(idp.token(sub="bob", tenant="globex"))
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


async def test_ec_keys_and_a_configured_jwks_url(
    idp: OidcIssuer, make_verifier: MakeVerifier, clock: Clock
) -> None:
    idp.rotate("EC")
    verifier = make_verifier(config_for(idp, jwks_url=idp.jwks_url))
    principal = await verifier.authenticate(idp.token())
    assert principal.tenant_id == "acme"
    assert idp.discovery_fetches == 0  # jwks_url given: no discovery
    assert idp.jwks_fetches == 1


async def test_eddsa_when_allowed(idp: OidcIssuer, make_verifier: MakeVerifier) -> None:
    idp.rotate("OKP")
    assert (await refusal(make_verifier(config_for(idp)), idp.token())).reason == "algorithm_not_allowed"
    verifier = make_verifier(config_for(idp, algorithms=["EdDSA"]))
    assert (await verifier.authenticate(idp.token())).id == "ada"


async def test_scopes_via_roles_and_unknown_scopes_grant_nothing(
    idp: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    roles = GatewayConfig.model_validate(
        {"roles": {"operator": ["approvals:decide", "runs:read"], "writer": ["runs:write"]}}
    ).roles
    verifier = make_verifier(config_for(idp), roles=roles)

    principal = await verifier.authenticate(
        idp.token(scope="runs:read everything:forever", roles=["operator", "ghost"])
    )
    assert principal.scopes == {"runs:read", "approvals:decide"}
    assert principal.roles == ("operator", "ghost")

    as_list = await verifier.authenticate(idp.token(scope=["prompts:write"], roles="writer"))
    assert as_list.scopes == {"prompts:write", "runs:write"}
    assert as_list.roles == ("writer",)

    nothing = await verifier.authenticate(idp.token(scope=None, roles=None))
    assert nothing.scopes == frozenset()


def urls(**claims: str) -> dict[str, Any]:
    """Claims named by URL (namespaced, as Auth0 requires), which have dots in their names."""
    return {f"https://keel.test/{name}": value for name, value in claims.items()}


async def test_claim_mapping_with_nested_and_dotted_names(
    idp: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    claims = ClaimsConfig(
        subject="preferred_username",
        tenant="https://keel.test/tenant",  # a top-level claim whose name has dots
        scopes="scp",
        roles="realm_access.roles",  # nested (Keycloak)
        kind="https://keel.test/kind",
    )
    verifier = make_verifier(config_for(idp, claims=claims.model_dump()), roles={"admins": ["admin"]})
    principal = await verifier.authenticate(
        idp.token(
            preferred_username="svc-reporting",
            tenant=None,
            scope=None,
            scp=["runs:read"],
            realm_access={"roles": ["admins", "offline_access"]},
            **urls(tenant="initech", kind="service"),
        )
    )
    assert (principal.kind, principal.id, principal.tenant_id) == ("service", "svc-reporting", "initech")
    assert principal.scopes == {"runs:read", "admin"}

    bad_kind = await refusal(
        verifier,
        idp.token(
            preferred_username="svc-reporting",
            **urls(tenant="initech", kind="root"),
        ),
    )
    assert (bad_kind.reason, bad_kind.detail) == ("missing_claim", "https://keel.test/kind")


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        ({"sub": "reporting-job", "client_id": "reporting-job"}, "service"),  # RFC 9068
        ({"sub": "reporting-job", "azp": "reporting-job"}, "service"),
        ({"sub": "abc@clients", "azp": "abc", "gty": "client-credentials"}, "service"),  # Auth0
        ({"sub": "0f3c", "idtyp": "app"}, "service"),  # Microsoft Entra
        ({"sub": "ada", "azp": "web-app", "client_id": "web-app"}, "user"),
    ],
)
async def test_kind_without_a_kind_claim(
    idp: OidcIssuer, verifier: JwtVerifier, claims: dict[str, Any], kind: str
) -> None:
    assert (await verifier.authenticate(idp.token(**claims))).kind == kind


async def test_audience_list_and_clock_skew_within_leeway(
    idp: OidcIssuer, verifier: JwtVerifier, clock: Clock
) -> None:
    now = int(clock())
    token = idp.token(aud=["https://other.test", AUDIENCE], exp=now - 20, nbf=now + 20, iat=now + 20)
    assert (await verifier.authenticate(token)).id == "ada"


# -- refused tokens -----------------------------------------------------------------------------


async def test_expired(idp: OidcIssuer, verifier: JwtVerifier, clock: Clock) -> None:
    token = idp.token(exp=int(clock()) + 60)
    await verifier.authenticate(token)
    clock.advance(60 + 30)  # exp + leeway
    refused = await refusal(verifier, token)
    assert (refused.reason, refused.issuer) == ("expired", idp.issuer)


async def test_not_yet_valid(idp: OidcIssuer, verifier: JwtVerifier, clock: Clock) -> None:
    now = int(clock())
    assert (await refusal(verifier, idp.token(nbf=now + 31))).reason == "not_yet_valid"
    assert (await refusal(verifier, idp.token(iat=now + 31))).reason == "not_yet_valid"


async def test_wrong_audience(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    assert (await refusal(verifier, idp.token(aud="https://other.test"))).reason == "wrong_audience"
    assert (await refusal(verifier, idp.token(aud=["https://other.test"]))).reason == "wrong_audience"
    assert (await refusal(verifier, idp.token(aud=None))).reason == "missing_claim"


async def test_unknown_issuer_is_refused_without_any_fetch(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    for iss in ("https://evil.test", idp.issuer + "/", idp.issuer.upper(), None, 42):
        refused = await refusal(verifier, idp.token(iss=iss))
        assert (refused.reason, refused.issuer) == ("unknown_issuer", None)
    assert (idp.discovery_fetches, idp.jwks_fetches) == (0, 0)


async def test_wrong_issuer_a_token_signed_by_another_configured_issuer(
    idp: OidcIssuer, clock: Clock, make_verifier: MakeVerifier
) -> None:
    with OidcIssuer(clock=clock, keys=[new_key("EC")]) as other:
        verifier = make_verifier(config_for(idp), config_for(other))
        await verifier.authenticate(idp.token())  # idp's keys are cached
        await verifier.authenticate(other.token())

        # idp signs a token claiming to come from `other`
        refused = await refusal(verifier, idp.token(iss=other.issuer))
        assert (refused.reason, refused.issuer) == ("wrong_issuer", other.issuer)


async def test_alg_none_is_refused(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    await verifier.authenticate(idp.token())
    for alg in ("none", "None", "NONE", ""):
        token = compact({"alg": alg, "kid": idp.signing_key.kid}, idp.claims())
        assert looks_like_jwt(token)
        refused = await refusal(verifier, token)
        assert (refused.reason, refused.issuer) == ("algorithm_not_allowed", idp.issuer)
    assert (await refusal(verifier, compact({"kid": idp.signing_key.kid}, idp.claims()))).reason == (
        "algorithm_not_allowed"
    )


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    idp: OidcIssuer, verifier: JwtVerifier
) -> None:
    """RS/HS key confusion: the attacker knows the public key and uses it as an HMAC secret."""
    await verifier.authenticate(idp.token())
    public = idp.signing_key.as_pem(private=False)
    jwk_json = json.dumps(idp.jwks()["keys"][0]).encode()
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        for secret in (public, jwk_json):
            header = {"alg": alg, "typ": "JWT", "kid": idp.signing_key.kid}
            unsigned = compact(header, idp.claims(scope="admin")).rsplit(".", 1)[0]
            token = unsigned + "." + b64url(hmac.new(secret, unsigned.encode(), digest).digest())
            assert (await refusal(verifier, token)).reason == "algorithm_not_allowed"


async def test_algorithms_outside_the_allowlist_and_keys_that_do_not_fit(
    idp: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    ec = new_key("EC")
    rsa = idp.signing_key
    idp.published.append(ec)
    verifier = make_verifier(config_for(idp, algorithms=["RS256", "ES256"]))

    # RS384 is a fine algorithm, but not allowed for this issuer
    assert (await refusal(verifier, idp.token(alg="RS384"))).reason == "algorithm_not_allowed"
    # an EC signature presented as made by the RSA key's kid, and the other way round
    assert (
        await refusal(verifier, idp.token(key=ec, header={"kid": rsa.kid}))
    ).reason == "algorithm_not_allowed"
    forged = idp.token(key=rsa, header={"kid": ec.kid})
    assert (await refusal(verifier, forged)).reason == "algorithm_not_allowed"
    assert (await verifier.authenticate(idp.token(key=ec))).id == "ada"


async def test_a_jwk_declared_for_another_alg_is_not_used(
    idp: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    key = idp.signing_key
    idp.published = [type(key).import_key({**key.as_dict(private=True), "alg": "PS256"})]
    verifier = make_verifier(config_for(idp, algorithms=["RS256", "PS256"]))
    assert (await refusal(verifier, idp.token(alg="RS256"))).reason == "algorithm_not_allowed"
    assert (await verifier.authenticate(idp.token(alg="PS256"))).id == "ada"


async def test_rotation_refetches_once_and_unknown_kids_do_not_hammer_the_idp(
    idp: OidcIssuer, verifier: JwtVerifier, clock: Clock
) -> None:
    await verifier.authenticate(idp.token())
    assert idp.jwks_fetches == 1

    idp.rotate("RSA", retire_old=True)
    clock.advance(5)
    principal = await verifier.authenticate(idp.token())  # an unknown kid: one refetch finds it
    assert principal.id == "ada"
    assert idp.jwks_fetches == 2

    stranger = new_key("RSA")  # never published
    clock.advance(REFETCH_INTERVAL - 1)
    for _ in range(10):
        refused = await refusal(verifier, idp.token(key=stranger))
        assert (refused.reason, refused.issuer) == ("unknown_key", idp.issuer)
    assert idp.jwks_fetches == 2  # within 30 s of the last refetch: none
    await verifier.authenticate(idp.token())  # known kids still work, without fetching
    assert idp.jwks_fetches == 2

    clock.advance(1)
    assert (await refusal(verifier, idp.token(key=stranger))).reason == "unknown_key"
    assert idp.jwks_fetches == 3  # 30 s later, one more
    assert idp.discovery_fetches == 1


async def test_concurrent_requests_share_one_fetch(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    idp.jwks_delay = 0.2
    tokens = [idp.token(sub=f"user-{n}") for n in range(25)]
    principals = await asyncio.gather(*(verifier.authenticate(token) for token in tokens))
    assert [p.id for p in principals] == [f"user-{n}" for n in range(25)]
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)

    # After a rotation, concurrent requests bearing the new kid share one refetch too.
    idp.rotate("EC")
    tokens = [idp.token(sub=f"user-{n}") for n in range(25)]
    principals = await asyncio.gather(*(verifier.authenticate(token) for token in tokens))
    assert len(principals) == 25
    assert idp.jwks_fetches == 2


async def test_the_jwks_is_refetched_when_the_cache_expires(
    idp: OidcIssuer, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier(config_for(idp, jwks_cache=60))
    await verifier.authenticate(idp.token())
    clock.advance(59)
    await verifier.authenticate(idp.token())
    assert idp.jwks_fetches == 1
    clock.advance(1)
    await verifier.authenticate(idp.token())
    assert idp.jwks_fetches == 2
    assert idp.discovery_fetches == 1  # the discovered jwks_uri is remembered


@pytest.mark.parametrize("part", ["signature", "payload", "header"])
async def test_tampered_tokens(idp: OidcIssuer, verifier: JwtVerifier, part: str) -> None:
    header, payload, signature = idp.token(scope="runs:read").split(".")
    if part == "signature":
        raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
        raw[-7] ^= 0x01
        token = f"{header}.{payload}.{b64url(bytes(raw))}"
    elif part == "payload":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims.update(scope="runs:read admin", tenant="globex")
        token = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    else:
        fields = json.loads(base64.urlsafe_b64decode(header + "=="))
        fields["typ"] = "JWT"
        token = f"{b64url(json.dumps(fields).encode())}.{payload}.{signature}"
    refused = await refusal(verifier, token)
    assert (refused.reason, refused.issuer) == ("bad_signature", idp.issuer)


async def test_a_truncated_signature_is_a_bad_signature(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    token = idp.token()
    assert (await refusal(verifier, token[:-10])).reason == "bad_signature"
    assert (await refusal(verifier, token.rsplit(".", 1)[0] + ".")).reason == "bad_signature"
    idp.rotate("EC")
    assert (await refusal(verifier, idp.token()[:-4])).reason == "bad_signature"


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"tenant": None}, "tenant"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "  "}, "tenant"),
        ({"tenant": 7}, "tenant"),
        ({"tenant": ["acme"]}, "tenant"),
        ({"tenant": "x" * 257}, "tenant"),
        ({"sub": None}, "sub"),
        ({"sub": ""}, "sub"),
        ({"exp": None}, "exp"),
    ],
)
async def test_missing_claims(
    idp: OidcIssuer, verifier: JwtVerifier, claims: dict[str, Any], detail: str
) -> None:
    refused = await refusal(verifier, idp.token(**claims))
    assert (refused.reason, refused.detail) == ("missing_claim", detail)


async def test_time_claims_of_the_wrong_type_are_malformed(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    assert (await refusal(verifier, idp.token(exp="tomorrow"))).reason == "malformed"
    assert (await refusal(verifier, idp.token(exp=True))).reason == "malformed"
    assert (await refusal(verifier, idp.token(aud={"x": 1}))).reason == "malformed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "keel_abcdefghijkl_" + "a" * 43,
        "not a token",
        "a.b",
        "a.b.c.d.e",
        "e30.e30.",  # {} and {}: no issuer
        "W10.e30.",  # a header that is a list
        "e30.bm90IGpzb24.",  # 'not json'
        "e30.e30.a",  # a signature of 1 character: not base64url
        "x" * 20_000 + ".e30.e30",
    ],
)
async def test_malformed(verifier: JwtVerifier, token: str) -> None:
    refused = await refusal(verifier, token)
    assert refused.reason in ("malformed", "unknown_issuer")
    assert refused.reason == ("unknown_issuer" if token == "e30.e30." else "malformed")


async def test_duplicate_claims_and_crit_headers_are_malformed(
    idp: OidcIssuer, verifier: JwtVerifier
) -> None:
    payload = b64url(b'{"iss": "%s", "iss": "https://evil.test"}' % idp.issuer.encode())
    assert (await refusal(verifier, f"e30.{payload}.")).reason == "malformed"
    crit = compact(
        {"alg": "RS256", "kid": idp.signing_key.kid, "crit": ["exp"], "exp": 1}, idp.claims(), b"sig"
    )
    assert (await refusal(verifier, crit)).reason == "malformed"
    nan = b64url(b'{"iss": "%s", "exp": NaN}' % idp.issuer.encode())
    assert (await refusal(verifier, f"e30.{nan}.")).reason == "malformed"


def test_looks_like_jwt() -> None:
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln")
    assert looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")  # unsigned: still a JWT, refused later
    assert not looks_like_jwt("keel_abcdefghijkl_" + "a" * 43)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d.e")  # JWE: not accepted
    assert not looks_like_jwt("a=.b.c")
    assert not looks_like_jwt("a.b.c\n")


# -- when the identity provider misbehaves ------------------------------------------------------


async def test_jwks_down_with_a_warm_cache_keeps_working(
    idp: OidcIssuer, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier(config_for(idp, jwks_cache=60))
    await verifier.authenticate(idp.token())
    assert idp.requests == 2  # discovery, JWKS
    idp.down = True

    clock.advance(61)  # the cache is stale: a refetch is tried, fails, the cached keys stay
    assert (await verifier.authenticate(idp.token())).id == "ada"
    assert idp.requests == 3
    clock.advance(REFETCH_INTERVAL - 1)
    for _ in range(5):
        await verifier.authenticate(idp.token())
    assert idp.requests == 3  # no retry within 30 s of the failure
    # A rotated key cannot be learnt while the IdP is down, but the refusal is quick and bounded.
    clock.advance(1)
    idp.rotate("RSA")
    assert (await refusal(verifier, idp.token())).reason == "unknown_key"
    assert idp.requests == 4  # one attempt (discovery again: the jwks_uri may have moved)
    assert (await refusal(verifier, idp.token())).reason == "unknown_key"
    assert idp.requests == 4

    idp.down = False
    clock.advance(REFETCH_INTERVAL)
    assert (await verifier.authenticate(idp.token())).id == "ada"  # back up: the new key is learnt
    assert idp.requests == 6
    assert verifier.keys_of(idp.issuer).fetches == 4


async def test_jwks_down_with_no_cache(idp: OidcIssuer, verifier: JwtVerifier, clock: Clock) -> None:
    idp.down = True
    refused = await refusal(verifier, idp.token())
    assert (refused.reason, refused.issuer) == ("jwks_unavailable", idp.issuer)
    assert idp.discovery_fetches == 1
    assert (await refusal(verifier, idp.token())).reason == "jwks_unavailable"
    assert idp.discovery_fetches == 1  # refused at once, no retry within RETRY_WITHOUT_KEYS

    idp.down = False
    clock.advance(RETRY_WITHOUT_KEYS)
    assert (await verifier.authenticate(idp.token())).id == "ada"
    assert (idp.discovery_fetches, idp.jwks_fetches) == (2, 1)


async def test_an_unreachable_issuer_is_jwks_unavailable(make_verifier: MakeVerifier, clock: Clock) -> None:
    with OidcIssuer(clock=clock) as gone:
        config = config_for(gone)
        token = gone.token()
    verifier = make_verifier(config)  # the port is closed now
    assert (await refusal(verifier, token)).reason == "jwks_unavailable"


async def test_discovery_naming_another_issuer_is_refused(idp: OidcIssuer, verifier: JwtVerifier) -> None:
    idp.discovery_issuer = "https://evil.test"
    refused = await refusal(verifier, idp.token())
    assert (refused.reason, refused.issuer) == ("jwks_unavailable", idp.issuer)
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 0)  # its jwks_uri was never followed


async def test_a_jwks_with_symmetric_and_weak_keys_offers_them_to_no_one(
    idp: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    from joserfc.errors import SecurityWarning
    from joserfc.jwk import OctKey, RSAKey

    with pytest.warns(SecurityWarning):
        weak = RSAKey.generate_key(1024, parameters={"kid": "weak"}, auto_kid=False, private=True)
    secret = OctKey.import_key(b"s" * 32, parameters={"kid": "shared"})
    idp.published = [*idp.published, weak, secret]  # type: ignore[list-item]
    verifier = make_verifier(config_for(idp))
    await verifier.authenticate(idp.token())
    assert (await refusal(verifier, idp.token(key=weak))).reason == "unknown_key"
    hs = compact({"alg": "HS256", "kid": "shared"}, idp.claims())
    assert (await refusal(verifier, hs)).reason == "algorithm_not_allowed"

"""The built-in OAuth2 authorization server: Authlib's RFC 6749 / 7636 / 7009 / 9068 pieces on Keel's
store. HTTP is `keel.api.oauth`; this module turns one parsed request into one response.

Grants:
- `client_credentials` (RFC 6749 4.4): a confidential client authenticates (HTTP Basic or form
  fields); the token's principal is the client itself (`sub` = `client_id`, a service) in the
  client's tenant, with the requested scopes among the client's (all of them when none is asked for;
  `invalid_scope` when none of the requested ones is allowed). No refresh token.
- `authorization_code` (RFC 6749 4.1) with PKCE (RFC 7636), S256 only and always required. The code
  lives `CODE_TTL` seconds, is single use (a second use is refused and revokes the tokens the first
  one gave), and is bound to its client and exact redirect URI (which must be sent, and be one of
  the client's registered URIs, compared exactly). A failed exchange (wrong verifier, wrong
  redirect URI) uses the code up too. The token's principal is the user (`sub` = user id) in the
  user's tenant; a user may only authorize clients of their own tenant. Scopes: those requested (or
  all the client's), limited to the client's and to what the user's roles grant (`gateway.roles`);
  the others are dropped. Consent is implicit: clients are registered by the operator (`keel clients
  create`), so they are first-party.
- `refresh_token` (RFC 6749 6): issued with every authorization-code token. Each refresh token is
  single use and is replaced by a new one (rotation); presenting a used one again revokes its whole
  family (every refresh token descended from the same code, and the access tokens issued with them
  that are still valid). Scopes are those of the grant, or fewer if asked, and again limited to the
  user's current roles; a disabled user or a revoked client can no longer refresh.

Revocation (RFC 7009): a refresh token revokes its family; an access token is deny-listed by `jti`
until it expires (`keel.gateway.oauth.verifier` checks the list).

Authlib is synchronous; Keel's store is asyncio. Each request is handled by Authlib in a worker
thread (`anyio.to_thread`), whose database calls run on the event loop (`anyio.from_thread`).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import anyio.from_thread
import anyio.to_thread
from authlib.oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AccessDeniedError,
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.util import scope_to_list  # type: ignore[import-untyped]
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator  # type: ignore[import-untyped]
from joserfc import jws
from joserfc.jwk import KeySet

from keel.config.gateway import GatewayConfig, duration_seconds
from keel.gateway.jwt import TokenRefused, looks_like_jwt
from keel.gateway.keys import SCOPES
from keel.gateway.oauth.keys import ALGORITHM, SigningKeys
from keel.gateway.oauth.verifier import IssuerVerifier, expiry_of
from keel.gateway.principal import scopes_of
from keel.gateway.sessions import SignedInUser
from keel.store.identity import IdentityStore, User
from keel.store.oauth import (
    AuthorizationCode,
    FamilyRevocation,
    OAuthClient,
    RefreshToken,
    new_family_id,
    new_secret,
)

CODE_TTL = 60.0
"""Seconds an authorization code can be exchanged."""

GRANT_TYPES_SUPPORTED = ("authorization_code", "client_credentials", "refresh_token")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

T = TypeVar("T")


# -- requests and outcomes -----------------------------------------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self._datalist = {key: list(items) for key, items in values.items()}
        self._data = {key: items[0] for key, items in values.items() if items}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class KeelOAuthRequest(OAuth2Request):  # type: ignore[misc]
    """One HTTP request, parsed, as Authlib sees it. `uri` is the request's URL under the configured
    public issuer URL (what clients see behind a proxy), which is what Authlib's https check reads.
    The remaining attributes are Keel's record of what happened, for the audit log."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        query: Mapping[str, list[str]],
        form: Mapping[str, list[str]],
    ) -> None:
        super().__init__(method, uri, headers=headers)  # case-insensitive (Starlette Headers)
        self._args = {key: items[0] for key, items in query.items() if items}
        self._form = {key: items[0] for key, items in form.items() if items}
        self.payload = _Payload(form if method == "POST" else query)
        self.seen_client: OAuthClient | None = None
        self.failure: str | None = None
        self.revoked: list[tuple[str, float]] = []  # access tokens revoked meanwhile: (jti, exp)

    def note_revoked(self, revocation: FamilyRevocation) -> None:
        self.revoked.extend((jti, at.timestamp()) for jti, at in revocation.access_tokens)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class Outcome:
    """An answer (`status`, `body`, `headers`) and what the audit log needs to know about it."""

    status: int
    body: Any
    headers: list[tuple[str, str]]
    grant_type: str | None = None
    client: OAuthClient | None = None
    user: User | SignedInUser | None = None
    scope: str | None = None
    error: str | None = None
    failure: str | None = None
    sign_in: bool = False  # /oauth/authorize: nobody is signed in
    revoked: list[tuple[str, float]] = field(default_factory=list)  # access tokens revoked: (jti, exp)
    extra: dict[str, Any] = field(default_factory=dict)


# -- Authlib models ------------------------------------------------------------------------------


class ClientModel(ClientMixin):  # type: ignore[misc]
    def __init__(self, record: OAuthClient, keel: OAuthServer) -> None:
        self.record = record
        self._keel = keel

    def get_client_id(self) -> str:
        return self.record.id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is required in every authorization request

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = set(self.record.scopes) or set(SCOPES)
        if scope is None:
            return " ".join(s for s in SCOPES if s in allowed)
        requested = set(scope_to_list(scope) or ())
        if not requested:
            return ""
        granted = [s for s in SCOPES if s in requested and s in allowed]
        return " ".join(granted) if granted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.record.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self._keel.store.client_secret_matches(self.record, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.record.confidential:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.record.grant_type == "authorization_code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "refresh_token":
            return self.record.grant_type == "authorization_code"
        return grant_type == self.record.grant_type


class UserModel:
    def __init__(self, user: User | SignedInUser) -> None:
        self.user = user

    def get_user_id(self) -> str:
        return self.user.id


class CodeModel(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, record: AuthorizationCode) -> None:
        self.record = record
        self.code_challenge = record.code_challenge
        self.code_challenge_method = record.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)


class RefreshModel(TokenMixin):  # type: ignore[misc]
    def __init__(self, record: RefreshToken, value: str) -> None:
        self.record = record
        self.value = value

    def check_client(self, client: ClientModel) -> bool:
        return self.record.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)


class AccessTokenModel(TokenMixin):  # type: ignore[misc]
    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims

    def check_client(self, client: ClientModel) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))


# -- grants ----------------------------------------------------------------------------------------


def _keel(grant: Any) -> OAuthServer:
    keel: OAuthServer = grant.server.keel
    return keel


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]


class AuthorizationCodeWithPkce(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: KeelOAuthRequest) -> None:
        keel = _keel(self)
        user = request.user.user
        client: OAuthClient = request.client.record
        granted = keel.narrow_to_roles(request.scope, user.roles)
        data = request.payload.data
        keel.call(
            keel.store.save_code,
            code,
            client_id=client.id,
            user_id=user.id,
            tenant_id=user.tenant_id,
            redirect_uri=request.payload.redirect_uri,
            scopes=granted,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            ttl=CODE_TTL,
        )

    def query_authorization_code(self, code: str, client: ClientModel) -> CodeModel | None:
        keel = _keel(self)
        use = keel.call(keel.store.consume_code, code, client_id=client.get_client_id())
        if use.code is None:
            self.request.note_revoked(use.revoked)
            self.request.failure = (
                "authorization code used again: the tokens it gave are revoked"
                if use.reused
                else "unknown or expired authorization code"
            )
            return None
        return CodeModel(use.code)

    def delete_authorization_code(self, authorization_code: CodeModel) -> None:
        return None  # consumed (marked used) when it was looked up

    def authenticate_user(self, authorization_code: CodeModel) -> UserModel | None:
        keel = _keel(self)
        record = authorization_code.record
        user = keel.active_user(record.user_id, record.tenant_id)
        if user is None:
            self.request.failure = "the user is disabled or gone"
        return user


class S256Pkce(CodeChallenge):  # type: ignore[misc]
    """PKCE, required for every authorization code, with S256 only (no `plain`)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class RotatingRefreshTokens(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        keel = _keel(self)
        request: KeelOAuthRequest = self.request
        client = self._validate_request_client()
        request.client = client
        value = request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        stored: RefreshToken | None = keel.call(keel.store.find_refresh_token, value)
        if stored is None or stored.client_id != client.get_client_id():
            request.failure = "unknown refresh token"
            raise InvalidGrantError()
        if stored.revoked_at is not None or stored.family_revoked:
            request.failure = "revoked refresh token"
            raise InvalidGrantError()
        if stored.used_at is not None:
            request.note_revoked(keel.call(keel.store.revoke_family, stored.family_id))
            request.failure = "refresh token used again: its family is revoked"
            raise InvalidGrantError()
        if stored.expires_at <= keel.store.clock():
            request.failure = "expired refresh token"
            raise InvalidGrantError()
        token = RefreshModel(stored, value)
        self._validate_token_scope(token)
        if not keel.call(keel.store.consume_refresh_token, value):
            # Used (or revoked) between the look-up and now: a concurrent use of the same token.
            request.note_revoked(keel.call(keel.store.revoke_family, stored.family_id))
            request.failure = "refresh token used concurrently: its family is revoked"
            raise InvalidGrantError()
        request.refresh_token = token

    def authenticate_user(self, refresh_token: RefreshModel) -> UserModel | None:
        record = refresh_token.record
        return _keel(self).active_user(record.user_id, record.tenant_id)

    def create_token_response(self) -> tuple[int, Any, Any]:
        refresh_token: RefreshModel = self.request.refresh_token
        user = self.authenticate_user(refresh_token)
        if user is None:
            self.request.failure = "the user is disabled or gone"
            raise InvalidGrantError()
        token = self.issue_token(user, refresh_token)
        self.request.user = user
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def issue_token(self, user: UserModel, refresh_token: RefreshModel) -> dict[str, Any]:
        scope = self.request.payload.scope or refresh_token.get_scope()
        granted = _keel(self).narrow_to_roles(scope, user.user.roles)
        token: dict[str, Any] = self.generate_token(
            user=user, scope=" ".join(granted), include_refresh_token=True
        )
        return token

    def revoke_old_credential(self, refresh_token: RefreshModel) -> None:
        return None  # consumed when it was validated


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        keel: OAuthServer = self.server.keel
        if looks_like_jwt(token_string):
            try:
                principal = keel.call(keel.verifier.verify, token_string)
            except TokenRefused:
                return None  # not ours, expired or already revoked: nothing to do (RFC 7009 2.2)
            return AccessTokenModel(principal.claims)
        stored = keel.call(keel.store.find_refresh_token, token_string)
        return RefreshModel(stored, token_string) if stored is not None else None

    def revoke_token(self, token: Any, request: KeelOAuthRequest) -> None:
        keel: OAuthServer = self.server.keel
        if isinstance(token, AccessTokenModel):
            claims = token.claims
            keel.call(
                keel.store.revoke_access_token,
                claims["jti"],
                tenant_id=claims["tenant"],
                expires_at=expiry_of(claims),
            )
            request.revoked.append((claims["jti"], float(claims["exp"])))
        else:
            request.note_revoked(keel.call(keel.store.revoke_family, token.record.family_id))


class AccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens: `typ: at+jwt`, ES256, signed with the current key (its `kid` in the
    header); claims iss, aud, sub, client_id, tenant, scope, jti, iat, exp (and roles for a user)."""

    def __init__(self, keel: OAuthServer) -> None:
        ttl = int(keel.access_token_ttl)
        super().__init__(
            keel.issuer,
            alg=ALGORITHM,
            refresh_token_generator=lambda **_: new_secret(),
            expires_generator=lambda client, grant_type: ttl,
        )
        self._keel = keel

    def get_jwks(self) -> KeySet:
        current = self._keel.call(self._keel.keys.current)
        return KeySet([current.key])

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return self._keel.audience

    def get_jti(self, client: Any, grant_type: Any, user: Any, scope: Any) -> str:
        return secrets.token_urlsafe(16)

    def get_extra_claims(
        self, client: ClientModel, grant_type: str, user: UserModel | None, scope: Any
    ) -> dict[str, Any]:
        if user is None:
            return {"tenant": client.record.tenant_id}
        return {"tenant": user.user.tenant_id, "roles": list(user.user.roles)}


class _Authlib(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, keel: OAuthServer) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.keel = keel
        self.register_token_generator("default", AccessTokens(keel))
        self.register_grant(ClientCredentials)
        self.register_grant(AuthorizationCodeWithPkce, [S256Pkce(required=True)])
        self.register_grant(RotatingRefreshTokens)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> ClientModel | None:
        record = self.keel.call(self.keel.store.get_client, client_id)
        current = self.keel.current_request()
        if current is not None and record is not None:
            current.seen_client = record
        if record is None or record.revoked_at is not None:
            return None
        return ClientModel(record, self.keel)

    def save_token(self, token: dict[str, Any], request: KeelOAuthRequest) -> None:
        self.keel.save_token(token, request)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, KeelOAuthRequest):
            raise TypeError("expected a KeelOAuthRequest")
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


# -- the server ------------------------------------------------------------------------------------


class OAuthServer:
    """The authorization server of one Keel process: `token`, `authorize`, `revoke` (each run in a
    worker thread), `metadata` and `jwks`. Owns `store`; `aclose` closes it."""

    def __init__(self, config: GatewayConfig, store: IdentityStore, *, secret: bytes) -> None:
        issuer = config.issuer
        if issuer.issuer is None:
            raise ValueError("gateway.issuer.issuer is required")
        self.issuer: str = issuer.issuer
        self.audience = issuer.audience
        self.access_token_ttl = duration_seconds(issuer.access_token_ttl)
        self.refresh_token_ttl = duration_seconds(issuer.refresh_token_ttl)
        self.store = store
        self.role_scopes = {role: tuple(scopes) for role, scopes in config.roles.items()}
        self.keys = SigningKeys(
            store,
            rotation=duration_seconds(issuer.key_rotation),
            access_token_ttl=self.access_token_ttl,
            secret=secret,
        )
        self.verifier = IssuerVerifier(issuer, store, deny_cache=0)
        self._authlib = _Authlib(self)
        self._local = threading.local()

    # -- helpers used by the grants (in the worker thread) -------------------------------------

    def call(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a coroutine function of the store on the event loop, from the worker thread."""

        async def run() -> T:
            return await function(*args, **kwargs)

        return anyio.from_thread.run(run)

    def current_request(self) -> KeelOAuthRequest | None:
        request: KeelOAuthRequest | None = getattr(self._local, "request", None)
        return request

    def narrow_to_roles(self, scope: str | None, roles: tuple[str, ...]) -> list[str]:
        """The scopes of `scope` that the roles grant (`gateway.roles`), in `SCOPES` order."""
        requested = set(scope_to_list(scope) or ())
        allowed = scopes_of((), roles, self.role_scopes)
        return [s for s in SCOPES if s in requested and s in allowed]

    def active_user(self, user_id: str, tenant_id: str) -> UserModel | None:
        user: User | None = self.call(self.store.get_user, user_id, tenant_id=tenant_id)
        return UserModel(user) if user is not None and user.active else None

    def save_token(self, token: dict[str, Any], request: KeelOAuthRequest) -> None:
        refresh = token.get("refresh_token")
        if not refresh:
            return
        claims = json.loads(jws.extract_compact(token["access_token"].encode()).payload)
        user = request.user.user
        client: OAuthClient = request.client.record
        if request.refresh_token is not None:
            family_id = request.refresh_token.record.family_id
        else:
            family_id = new_family_id()
            self.call(self.store.set_code_family, request.authorization_code.record.id, family_id)
        self.call(
            self.store.save_refresh_token,
            refresh,
            family_id=family_id,
            client_id=client.id,
            user_id=user.id,
            tenant_id=user.tenant_id,
            scopes=scope_to_list(token.get("scope")) or [],
            ttl=self.refresh_token_ttl,
            access_jti=claims["jti"],
            access_expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )

    # -- endpoints ---------------------------------------------------------------------------------

    async def token(self, request: KeelOAuthRequest) -> Outcome:
        """POST /oauth/token."""
        return await anyio.to_thread.run_sync(self._token, request)

    def _token(self, request: KeelOAuthRequest) -> Outcome:
        self._local.request = request
        try:
            status, body, headers = self._authlib.create_token_response(request)
        finally:
            self._local.request = None
        outcome = self._outcome(request, status, body, headers)
        outcome.grant_type = request.payload.grant_type
        return outcome

    async def revoke(self, request: KeelOAuthRequest) -> Outcome:
        """POST /oauth/revoke."""
        return await anyio.to_thread.run_sync(self._revoke, request)

    def _revoke(self, request: KeelOAuthRequest) -> Outcome:
        self._local.request = request
        try:
            status, body, headers = self._authlib.create_endpoint_response("revocation", request)
        finally:
            self._local.request = None
        return self._outcome(request, status, body, headers)

    async def authorize(self, request: KeelOAuthRequest, user: SignedInUser | None) -> Outcome:
        """GET /oauth/authorize, for `user` (None: nobody is signed in)."""
        return await anyio.to_thread.run_sync(self._authorize, request, user)

    def _authorize(self, request: KeelOAuthRequest, user: SignedInUser | None) -> Outcome:
        self._local.request = request
        try:
            try:
                grant = self._authlib.get_consent_grant(request, end_user=UserModel(user) if user else None)
            except OAuth2Error as error:
                status, body, headers = self._authlib.handle_error_response(request, error)
                return self._outcome(request, status, body, headers)
            client: OAuthClient = request.client.record
            if user is None:
                return Outcome(0, None, [], client=client, sign_in=True)
            if user.tenant_id != client.tenant_id:
                denied = AccessDeniedError(
                    "this client belongs to another tenant", redirect_uri=grant.redirect_uri
                )
                denied.state = request.payload.state
                status, body, headers = self._authlib.handle_error_response(request, denied)
                outcome = self._outcome(request, status, body, headers)
                outcome.user = user
                return outcome
            status, body, headers = self._authlib.create_authorization_response(
                request, grant_user=UserModel(user), grant=grant
            )
            outcome = self._outcome(request, status, body, headers)
            outcome.user = user
            return outcome
        finally:
            self._local.request = None

    def _outcome(
        self, request: KeelOAuthRequest, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> Outcome:
        client = request.client.record if isinstance(request.client, ClientModel) else request.seen_client
        user = request.user.user if isinstance(request.user, UserModel) else None
        error = body.get("error") if isinstance(body, dict) and status >= 400 else None
        if error is None and status == 302:
            location = dict(headers).get("Location", "")
            if "error=" in location and "code=" not in location:
                error = "redirected_error"
        return Outcome(
            status,
            body,
            headers,
            client=client,
            user=user,
            scope=body.get("scope") if isinstance(body, dict) else None,
            error=error,
            failure=request.failure,
            revoked=list(request.revoked),
        )

    async def metadata(self) -> dict[str, Any]:
        """The RFC 8414 authorization server metadata (also served as openid-configuration)."""
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/oauth/jwks",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES_SUPPORTED),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": list(SCOPES),
            "access_token_signing_alg_values_supported": [ALGORITHM],
        }

    async def jwks(self) -> dict[str, Any]:
        """The JWKS: every published public key (a key is made if there is none yet)."""
        await self.keys.current()
        return await self.keys.jwks()

    async def aclose(self) -> None:
        await self.store.close()


__all__ = ["CODE_TTL", "KeelOAuthRequest", "OAuthServer", "Outcome"]

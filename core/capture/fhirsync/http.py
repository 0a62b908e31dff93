"""HTTP to the FHIR server: authentication, Retry-After and one re-authentication on 401.

fhirpy's SyncFHIRClient sends each request with `requests.request` and a fixed
Authorization header, so it can neither wait out a 429/503 nor fetch a new token after a
401, and it hands back parsed resources, not the page's bytes that are kept for audit. This
client is a `requests.Session` with those three things:

- auth "bearer": the token is read from the environment variable named in [fhir] token_env
  (read again after a 401, so a rotated token is picked up);
- auth "smart": SMART Backend Services. Authlib's OAuth2Session runs the client-credentials
  grant with an RFC 7523 private_key_jwt client assertion (iss = sub = client_id,
  aud = the token URL, a fresh jti, exp 5 minutes ahead, the key id in the header), signed by
  joserfc with RS384 or ES384. The token URL is [fhir] token_url, or the `token_endpoint` of
  <base_url>/.well-known/smart-configuration;
- 429 and 503 are retried after their Retry-After (seconds or an HTTP date, parsed by
  urllib3's Retry and capped at [fhir] max_retry_after_seconds), at most MAX_RETRIES times;
- a 401 fetches a new token once and retries; any other failure raises FhirError naming the
  method, the URL and the status.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from core.capture.fhirsync.config import FhirConfig

log = logging.getLogger(__name__)

MAX_RETRIES = 5
"""429/503 answers retried in a row for one request before giving up."""
ASSERTION_LIFETIME_S = 300  # SMART Backend Services: exp no more than 5 minutes ahead
TOKEN_LEEWAY_S = 30  # a token this close to its expiry is renewed before use
FHIR_JSON = "application/fhir+json"


class FhirError(RuntimeError):
    """The FHIR server (or its token endpoint) could not be used; the message says where."""


def _outcome(response: requests.Response) -> str:
    """The first OperationOutcome diagnostics (or the start of the body) of a failure."""
    try:
        doc = response.json()
        issues = doc.get("issue") or []
        text = "; ".join(str(i.get("diagnostics") or i.get("details", {}).get("text") or
                             i.get("code") or "") for i in issues if isinstance(i, dict))
        if text:
            return text[:300]
        if doc.get("error"):
            return f"{doc['error']}: {doc.get('error_description') or ''}"[:300]
    except ValueError:
        pass
    return response.text[:300].strip()


def load_signing_key(config: FhirConfig) -> tuple[Any, str]:
    """(joserfc key, algorithm) from the PEM file: RS384 for RSA, ES384 for EC (P-384)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from joserfc.jwk import ECKey, RSAKey

    path = config.private_key_file
    if path is None:
        raise FhirError("[fhir] private_key_file is needed with auth = \"smart\"")
    try:
        pem = path.read_bytes()
        parsed = load_pem_private_key(pem, password=None)
    except OSError as exc:
        raise FhirError(f"cannot read the SMART private key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise FhirError(f"the SMART private key {path} is not an unencrypted PEM private "
                        f"key: {exc}") from None
    if isinstance(parsed, rsa.RSAPrivateKey):
        return RSAKey.import_key(pem), config.algorithm or "RS384"
    if isinstance(parsed, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(pem), config.algorithm or "ES384"
    raise FhirError(f"the SMART private key {path} must be an RSA or EC key (RS384 / ES384)")


class FhirClient:
    """GETs against one FHIR server with its authentication; `sleep` is swappable only so
    that a test can count the waits (it still waits: the default is time.sleep)."""

    def __init__(self, config: FhirConfig, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.session = requests.Session()
        self.session.headers["Accept"] = FHIR_JSON
        self._sleep = sleep
        self._token: str | None = None
        self._token_expires: float | None = None  # time.monotonic() deadline
        self._key: tuple[Any, str] | None = None
        self.retries = 0  # 429/503 waits, for the report
        self.tokens_fetched = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- authentication ------------------------------------------------------------------

    def _authorization(self) -> dict[str, str]:
        if self.config.auth == "none":
            return {}
        expired = (self._token_expires is not None
                   and time.monotonic() >= self._token_expires - TOKEN_LEEWAY_S)
        if self._token is None or expired:
            self._token = self._new_token()
        return {"Authorization": f"Bearer {self._token}"}

    def _new_token(self) -> str:
        if self.config.auth == "bearer":
            name = self.config.token_env or ""
            token = os.environ.get(name, "").strip()
            if not token:
                raise FhirError(f"the FHIR bearer token is missing: set the environment "
                                f"variable {name} ([fhir] token_env)")
            self.tokens_fetched += 1
            return token
        return self._smart_token()

    def token_url(self) -> str:
        """[fhir] token_url, else the token_endpoint the server's SMART configuration names."""
        if self.config.token_url:
            return self.config.token_url
        url = f"{self.config.base_url}/.well-known/smart-configuration"
        response = self._send(url, None, {"Accept": "application/json"})
        if response.status_code != 200:
            raise FhirError(f"no token_url configured and GET {url} answered HTTP "
                            f"{response.status_code}: {_outcome(response)}")
        try:
            endpoint = response.json()["token_endpoint"]
        except (ValueError, KeyError, TypeError):
            raise FhirError(f"GET {url} has no token_endpoint; set [fhir] token_url") from None
        self.config = _with_token_url(self.config, str(endpoint))
        return str(endpoint)

    def _smart_token(self) -> str:
        from authlib.integrations.requests_client import OAuth2Session
        from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign

        if self._key is None:
            self._key = load_signing_key(self.config)
        key, alg = self._key
        kid = self.config.key_id

        class ShortLivedAssertion(PrivateKeyJWT):
            """RFC 7523 private_key_jwt as SMART wants it: exp 5 min ahead, kid in header."""

            def sign(self, auth: Any, token_endpoint: str) -> Any:
                return private_key_jwt_sign(
                    auth.client_secret, client_id=auth.client_id,
                    token_endpoint=token_endpoint, alg=self.alg,
                    header={"kid": kid, "typ": "JWT"}, expires_in=ASSERTION_LIFETIME_S)

        url = self.token_url()
        oauth = OAuth2Session(self.config.client_id, client_secret=key,
                              token_endpoint_auth_method="private_key_jwt")
        oauth.register_client_auth_method(ShortLivedAssertion(url, alg=alg))
        try:
            token = oauth.fetch_token(url, grant_type="client_credentials",
                                      scope=self.config.scope,
                                      timeout=self.config.timeout_seconds)
        except Exception as exc:  # Authlib's OAuthError, a refused connection, bad JSON
            raise FhirError(f"the SMART token request to {url} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
        finally:
            oauth.close()
        access = token.get("access_token")
        if not access:
            raise FhirError(f"the SMART token response of {url} has no access_token")
        expires_in = token.get("expires_in")
        self._token_expires = (time.monotonic() + float(expires_in)
                               if isinstance(expires_in, int | float) else None)
        self.tokens_fetched += 1
        log.info("fhir-sync: new SMART access token from %s (expires_in=%s)", url, expires_in)
        return str(access)

    # --- requests ----------------------------------------------------------------------

    def _send(self, url: str, params: dict[str, str] | None,
              headers: dict[str, str]) -> requests.Response:
        try:
            return self.session.get(url, params=params, headers=headers,
                                    timeout=self.config.timeout_seconds)
        except requests.RequestException as exc:
            raise FhirError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc

    def retry_after(self, response: requests.Response, attempt: int) -> float:
        """Seconds to wait before retrying a 429/503: its Retry-After (seconds or an HTTP
        date), else 1, 2, 4 ... seconds; never more than max_retry_after_seconds."""
        cap = self.config.max_retry_after_seconds
        header = response.headers.get("Retry-After")
        if header:
            try:
                return min(float(Retry().parse_retry_after(header)), cap)
            except InvalidHeader:
                log.warning("fhir-sync: unreadable Retry-After %r from %s", header,
                            response.url)
        return float(min(2 ** (attempt - 1), cap))

    def get(self, url: str, params: dict[str, str] | None = None) -> requests.Response:
        """A successful (2xx) GET of `url`, after waiting out 429/503 and one 401."""
        attempt = 0
        reauthenticated = False
        while True:
            response = self._send(url, params, self._authorization())
            status = response.status_code
            if status == 401 and self.config.auth != "none" and not reauthenticated:
                reauthenticated = True
                log.warning("fhir-sync: HTTP 401 for GET %s; fetching a new token and "
                            "retrying once", response.url)
                self._token = None
                continue
            if status in (429, 503) and attempt < MAX_RETRIES:
                attempt += 1
                wait = self.retry_after(response, attempt)
                self.retries += 1
                log.warning("fhir-sync: HTTP %d for GET %s; retry %d of %d in %.1f s",
                            status, response.url, attempt, MAX_RETRIES, wait)
                self._sleep(wait)
                continue
            if not 200 <= status < 300:
                hint = (" (after a new token)" if status == 401 and reauthenticated
                        else f" (after {attempt} retries)" if attempt else "")
                raise FhirError(f"the FHIR server answered HTTP {status} for GET "
                                f"{response.url}{hint}: {_outcome(response)}")
            return response


def _with_token_url(config: FhirConfig, url: str) -> FhirConfig:
    from dataclasses import replace

    return replace(config, token_url=url)

"""The router's per-version latency samples and counts (`/samples` on its admin port).

`parse` checks the router's answer (bounded: a hostile or broken answer is refused, never
trusted), `merge` folds the buckets of a window [since, until) into one set of counts and one
latency sample, and `fetch` reads them over HTTP. The judge compares two such merged samples:
a canary's and its stable version's over the same window, or a version's and its own from
before the deployment.

Merging keeps the sample uniform over the window's requests. Each bucket holds a uniform
sample of its own requests, but buckets differ in traffic: a bucket of 5,000 requests keeps
1,000 latencies (one in five), a quiet one of 200 keeps all 200. Concatenating them would
over-represent quiet buckets. `merge` instead takes from each bucket a share of the merged
sample proportional to its request count (largest remainders), at most what it holds, so each
request of the window is (nearly) equally likely to be in the result; the merged size is the
largest that every bucket can supply at that rate, capped at `limit`.
"""

from __future__ import annotations

import random
from typing import Annotated
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_SAMPLES_PER_WINDOW = 1000  # the router's PER_BUCKET
MAX_WINDOWS = 10_000  # more than any bucket width keeps (180 buckets); a bound on hostility
MERGED_LIMIT = 20_000
HTTP_TIMEOUT = 5.0


class SampleWindow(BaseModel):
    """One bucket of one version: its requests in [start, end), latencies in microseconds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    start: float
    end: float
    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    latencies_us: list[Annotated[int, Field(ge=0)]] = Field(max_length=MAX_SAMPLES_PER_WINDOW)


class VersionSamples(BaseModel):
    """The router's answer for one version."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str
    bucket_seconds: float = Field(gt=0)
    history_seconds: float = Field(gt=0)
    since: float
    until: float
    windows: list[SampleWindow] = Field(max_length=MAX_WINDOWS)


class MergedSamples(BaseModel):
    """A version's requests over [since, until): exact counts and a uniform latency sample."""

    version: str
    since: float
    until: float
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = Field(default_factory=list)
    windows: int = 0  # buckets that held traffic


class SamplesError(Exception):
    """The samples could not be read; the message says why."""


def parse(text: str | bytes) -> VersionSamples:
    """The router's `/samples` answer, checked; ValueError when it is not one."""
    try:
        found = VersionSamples.model_validate_json(text)
    except ValidationError as err:
        raise ValueError(f"not a samples answer: {err.errors()[0]['msg']}") from None
    for w in found.windows:
        if w.errors > w.requests or len(w.latencies_us) > w.requests or w.end <= w.start:
            raise ValueError(f"inconsistent window starting at {w.start}")
    return found


def _shares(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` by largest remainders (sums to `total`)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    shares = [int(x) for x in exact]
    short = total - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)[:short]:
        shares[i] += 1
    return shares


def merge(
    samples: VersionSamples,
    since: float,
    until: float,
    *,
    limit: int = MERGED_LIMIT,
    seed: int | None = None,
) -> MergedSamples:
    """The buckets starting in [since, until) as one: counts summed, latencies subsampled in
    proportion to each bucket's requests (see the module's docstring)."""
    chosen = [
        w for w in samples.windows if since <= w.start < until and w.requests > 0 and w.latencies_us
    ]
    merged = MergedSamples(
        version=samples.version,
        since=since,
        until=until,
        requests=sum(w.requests for w in samples.windows if since <= w.start < until),
        errors=sum(w.errors for w in samples.windows if since <= w.start < until),
        windows=len(chosen),
    )
    if not chosen:
        return merged
    traffic = sum(w.requests for w in chosen)
    # The rate every bucket can keep up: the smallest share of its requests it holds.
    rate = min(len(w.latencies_us) / w.requests for w in chosen)
    size = min(limit, int(traffic * rate + 1e-9))
    shares = _shares(size, [w.requests for w in chosen])
    rand = random.Random(seed)  # noqa: S311 - sampling, not secrets
    for w, n in zip(chosen, shares, strict=True):
        kept = w.latencies_us if n >= len(w.latencies_us) else rand.sample(w.latencies_us, n)
        merged.latencies_ms.extend(us / 1000.0 for us in kept)
    return merged


async def fetch(
    http: httpx.AsyncClient,
    admin_endpoint: str,
    version: str,
    since: float | None = None,
    until: float | None = None,
    *,
    http_timeout: float = HTTP_TIMEOUT,
) -> VersionSamples:
    """Read `version`'s buckets in [since, until) from the router at `admin_endpoint` (the
    target's state's `admin_endpoint`); None: from the start of its history, up to now."""
    params: dict[str, str] = {"version": version}
    if since is not None:
        params["since"] = repr(float(since))
    if until is not None:
        params["until"] = repr(float(until))
    url = f"{admin_endpoint.rstrip('/')}/samples?{urlencode(params)}"
    try:
        resp = await http.get(url, timeout=http_timeout)
    except httpx.HTTPError as err:
        raise SamplesError(f"cannot read the router's samples at {url}: {err!r}") from err
    if resp.status_code != 200:
        raise SamplesError(
            f"the router at {admin_endpoint} answered {resp.status_code} for samples: "
            f"{resp.text[:300]}"
        )
    try:
        return parse(resp.content)
    except ValueError as err:
        raise SamplesError(f"the router's samples at {url} are unreadable: {err}") from err


async def fetch_merged(
    http: httpx.AsyncClient,
    admin_endpoint: str,
    version: str,
    since: float,
    until: float,
    *,
    limit: int = MERGED_LIMIT,
    seed: int | None = None,
    http_timeout: float = HTTP_TIMEOUT,
) -> MergedSamples:
    """`fetch` then `merge` over the same window [since, until)."""
    found = await fetch(http, admin_endpoint, version, since, until, http_timeout=http_timeout)
    return merge(found, since, until, limit=limit, seed=seed)

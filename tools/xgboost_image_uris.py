"""The SageMaker SDK's built-in XGBoost image URIs: the source of truth for template.yaml.

Runs in the SDK's own environment (.venv-sdk), at build and test time only, and needs no network:

    .venv-sdk/bin/python tools/xgboost_image_uris.py 3.0-5 1.7-1  # JSON {region: {version: uri}}
    .venv-sdk/bin/python tools/xgboost_image_uris.py --mapping 3.0-5 1.7-1  # template Mappings

The template keeps only the account per region and builds the URI with AWS::URLSuffix, so one
account must serve every version and both the training and the inference scope of a region.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence

from sagemaker.core import common_utils, image_uris

FRAMEWORK = "xgboost"
IMAGE_SCOPES = ("training", "inference")


class InconsistentImagesError(RuntimeError):
    """The SDK's images do not fit the template's one-account-per-region map."""


def sdk_regions(versions: Sequence[str]) -> list[str]:
    """The regions the SDK lists for every version in every image scope."""
    config = image_uris.config_for_framework(FRAMEWORK)
    region_sets = [
        set(config[scope]["versions"][version]["registries"])
        for scope in IMAGE_SCOPES
        for version in versions
    ]
    return sorted(set.intersection(*region_sets))


def image_uri(region: str, version: str) -> str:
    """The one image that both trains and serves; raises if the SDK's scopes disagree."""
    uris = {
        image_uris.retrieve(FRAMEWORK, region, version, image_scope=scope) for scope in IMAGE_SCOPES
    }
    if len(uris) != 1:
        raise InconsistentImagesError(f"{region} {version}: scopes name different images {uris}")
    return uris.pop()


def image_uris_by_region(versions: Sequence[str]) -> dict[str, dict[str, str]]:
    return {
        region: {version: image_uri(region, version) for version in versions}
        for region in sdk_regions(versions)
    }


def image_account(uri: str) -> str:
    return uri.split(".", 1)[0]


def accounts_mapping(uris_by_region: dict[str, dict[str, str]]) -> str:
    """The template's XGBoostImageAccounts mapping, one region a line."""
    lines = ["  XGBoostImageAccounts:"]
    for region, uris in uris_by_region.items():
        accounts = {image_account(uri) for uri in uris.values()}
        if len(accounts) != 1:
            raise InconsistentImagesError(f"{region}: versions live in accounts {accounts}")
        lines.append(f'    {region}: {{Account: "{accounts.pop()}"}}')
    return "\n".join(lines)


def read_botocore_endpoints_once() -> None:
    """The SDK re-reads botocore's endpoint data on every retrieve; caching it only saves time."""
    common_utils._botocore_resolver = functools.cache(common_utils._botocore_resolver)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="built-in XGBoost versions, e.g. 3.0-5 1.7-1")
    parser.add_argument("--mapping", action="store_true", help="print the template mapping")
    args = parser.parse_args(argv)
    read_botocore_endpoints_once()
    try:
        uris_by_region = image_uris_by_region(args.versions)
        output = accounts_mapping(uris_by_region) if args.mapping else json.dumps(uris_by_region)
    except InconsistentImagesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

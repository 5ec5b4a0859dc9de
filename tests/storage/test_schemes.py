"""The backend table: one place that names each URL scheme, its backend class and its options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelreg.config import REMOTE_OPTION_KEYS, URL_SCHEMES, RemoteSpec, add_remote, check_remote_url
from modelreg.errors import UsageError
from modelreg.storage import BACKENDS, open_storage
from modelreg.storage.base import StorageBase


def test_config_takes_schemes_and_options_from_the_table():
    assert URL_SCHEMES == tuple(BACKENDS) == ("file", "s3", "ssh")
    assert set(REMOTE_OPTION_KEYS) == {key for info in BACKENDS.values() for key in info.options}
    assert "passphrase" not in REMOTE_OPTION_KEYS  # runtime-only options are never stored


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_row_names_an_importable_backend_class(scheme):
    info = BACKENDS[scheme]
    backend = info.load()
    assert issubclass(backend, StorageBase) and info.url_example.startswith(f"{scheme}://")


@pytest.mark.parametrize("url", ["http://bucket/x", "s3:///prefix", "ssh:///srv", "gs://bucket"])
def test_bad_urls_are_refused_naming_every_form_from_the_table(url):
    with pytest.raises(UsageError) as caught:
        check_remote_url(url)
    for info in BACKENDS.values():
        assert info.url_example in str(caught.value)
    with pytest.raises(UsageError, match="Invalid registry URL"):
        open_storage(RemoteSpec(url=url))


def test_add_remote_refuses_options_of_another_backend_and_unknown_ones(settings):
    with pytest.raises(UsageError, match=r"\['identity_file'\] do not apply to s3:// remotes"):
        add_remote(settings, "team", "s3://bucket/x", options={"identity_file": "~/.ssh/id", "region": None})
    with pytest.raises(UsageError, match="Unknown remote option"):
        add_remote(settings, "team", "s3://bucket/x", options={"colour": "blue"})
    spec = add_remote(settings, "team", "s3://bucket/x",
                      options={"endpoint_url": "http://127.0.0.1:9", "identity_file": None})
    assert spec.options == {"endpoint_url": "http://127.0.0.1:9"}


def test_reading_the_table_imports_no_backend_library():
    code = ("import sys, modelreg.config, modelreg.storage; "
            "modelreg.config.check_remote_url('s3://bucket/x'); "
            "print([m for m in ('boto3', 'botocore', 'paramiko') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

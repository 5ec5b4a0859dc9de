"""The S3 backend's botocore data loader (`modelreg.storage.s3.loader`) answers as botocore's own."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import create_loader

from modelreg.storage.s3.loader import ServiceLoader, new_session


def test_service_membership_matches_the_full_listing():
    ours, stock = new_session().get_component("data_loader"), create_loader()
    assert isinstance(ours, ServiceLoader)
    for type_name in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        full = stock.list_available_services(type_name)
        listed = ours.list_available_services(type_name)
        for name in ("s3", "ec2", "sts", "no-such-service", "", "s3/2006-03-01", "../s3"):
            assert (name in listed) == (name in full), (type_name, name)
        assert list(listed) == full and len(listed) == len(full)


def test_a_client_has_the_stock_model_and_an_unknown_service_is_refused_the_stock_way():
    ours = boto3.session.Session(botocore_session=new_session(), region_name="us-east-1")
    stock = boto3.session.Session(region_name="us-east-1")
    model = ours.client("s3", endpoint_url="http://127.0.0.1:9").meta.service_model
    expected = stock.client("s3", endpoint_url="http://127.0.0.1:9").meta.service_model
    assert model.operation_names == expected.operation_names
    assert model.operation_model("PutObject").input_shape.members.keys() == \
        expected.operation_model("PutObject").input_shape.members.keys()
    with pytest.raises(UnknownServiceError, match="Valid service names are"):
        ours.client("no-such-service")


def test_aws_data_path_is_still_searched_first(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    ours = new_session().get_component("data_loader")
    assert ours.search_paths == create_loader(str(tmp_path)).search_paths
    assert ours.search_paths[0] == str(tmp_path)
    (tmp_path / "made-up" / "2020-01-01").mkdir(parents=True)
    (tmp_path / "made-up" / "2020-01-01" / "service-2.json").write_text("{}")
    assert "made-up" in ours.list_available_services("service-2")


@pytest.mark.parametrize("type_name, service", [("service-2", "s3"), ("endpoint-rule-set-1", "s3"),
                                                ("paginators-1", "s3"), ("endpoints", None), ("_retry", None)])
def test_files_load_as_plain_dicts_equal_in_content_and_order_to_the_stock_ones(type_name, service):
    from collections import OrderedDict

    ours, stock = new_session().get_component("data_loader"), create_loader()
    if service is None:
        mine, theirs = ours.load_data(type_name), stock.load_data(type_name)
    else:
        mine, theirs = ours.load_service_model(service, type_name), stock.load_service_model(service, type_name)

    def same(a, b) -> bool:
        if isinstance(b, OrderedDict):
            return type(a) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in b)
        if isinstance(b, list):
            return isinstance(a, list) and len(a) == len(b) and all(map(same, a, b))
        return a == b

    assert same(mine, theirs)


def test_the_lean_imports_leave_importlib_metadata_unloaded_and_versions_right():
    from tests.helpers import python_prints

    code = ("import sys, modelreg.storage.s3.backend, urllib3.http2\n"
            "print('importlib.metadata' in sys.modules)\n"
            "import importlib.metadata\n"
            "print(urllib3.http2.version('urllib3') == importlib.metadata.version('urllib3'))")
    assert python_prints(code) == ["False", "True"]

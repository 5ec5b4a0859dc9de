"""A botocore data loader that does not list every AWS service to load the S3 model.

To load a service model, botocore first asks its loader for the list of all services
(`list_available_services`) and checks that the one wanted is in it: with ~400
services in botocore's data directory, that is ~400 `listdir` and ~900 `stat` calls,
15-35 ms of every S3 command's start-up (more than parsing S3's model), and botocore
does it twice per client (for the service model and for its endpoint rule set).

`ServiceLoader` answers that question for the one name asked about: its
`list_available_services` returns a `ServiceList` whose `in` checks only that
service's directories, exactly as the full listing would check it, and which lists
every service (the stock way) only when something iterates over it. Everything else,
search paths (`AWS_DATA_PATH` included) and the files loaded, is botocore's own.

It also parses those files into plain dicts (`PlainJSONFileLoader`): botocore's
`json.loads(..., object_pairs_hook=OrderedDict)` builds every object in Python, twice
as slow as the C decoder's dicts (S3's model, endpoint rules and endpoints.json: 62 ms
against 31 ms here), and dicts keep the files' order just the same; nothing in botocore,
boto3 or s3transfer uses what only an OrderedDict has (`move_to_end`, order-sensitive ==).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import botocore.session
from botocore.loaders import JSONFileLoader, Loader, create_loader


class ServiceList:
    """The services that have `type_name` data: membership per name, the full list on demand."""

    def __init__(self, loader: ServiceLoader, type_name: str) -> None:
        self._loader, self._type_name = loader, type_name
        self._all: list[str] | None = None

    def __contains__(self, service_name: object) -> bool:
        if not isinstance(service_name, str) or not service_name or os.sep in service_name:
            return False
        return self._loader.has_service(service_name, self._type_name)

    def _full(self) -> list[str]:
        if self._all is None:
            self._all = Loader.list_available_services(self._loader, self._type_name)
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def __getitem__(self, index):
        return self._full()[index]

    def __eq__(self, other: object) -> bool:
        return list(self) == other

    def __repr__(self) -> str:
        return repr(self._full())


class PlainJSONFileLoader(JSONFileLoader):
    """botocore's file loader, decoding into plain dicts (see the module's docstring)."""

    def _load_file(self, full_path, open_method):
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            payload = fp.read().decode("utf-8")
        return json.loads(payload)


class ServiceLoader(Loader):
    """botocore's `Loader`, with the per-name service check of `ServiceList` and plain-dict files."""

    FILE_LOADER_CLASS = PlainJSONFileLoader

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._service_lists: dict[str, ServiceList] = {}

    def list_available_services(self, type_name):
        """A `ServiceList` (the stock, cached full list is what it iterates over)."""
        if type_name not in self._service_lists:
            self._service_lists[type_name] = ServiceList(self, type_name)
        return self._service_lists[type_name]

    def has_service(self, service_name: str, type_name: str) -> bool:
        """What `service_name in Loader.list_available_services(type_name)` would say, looking
        only under `service_name`: some search path has `<name>/<api version>/<type_name>`."""
        for path in self.search_paths:
            directory = os.path.join(path, service_name)
            if not os.path.isdir(path) or not os.path.isdir(directory):
                continue
            for api_version in os.listdir(directory):
                if self.file_loader.exists(os.path.join(directory, api_version, type_name)):
                    return True
        return False


def new_session(profile: str | None = None) -> botocore.session.Session:
    """A botocore session (of `profile`) whose data loader is a `ServiceLoader` with the stock
    search paths. Raises botocore's ProfileNotFound for an unknown profile, as boto3 did."""
    session = botocore.session.get_session()
    if profile is not None:
        session.set_config_variable("profile", profile)
    stock = create_loader(session.get_config_variable("data_path"))
    session.register_component("data_loader", ServiceLoader(extra_search_paths=list(stock.search_paths),
                                                            include_default_search_paths=False))
    return session
